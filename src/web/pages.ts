import { readFileSync } from 'node:fs';
import Mustache from 'mustache';
import type { CatalogPackage, CatalogRecord } from '../domain/catalog.js';
import { CATALOG_KINDS, CATALOG_SECTION, formatOfName, KIND_RULES, type CatalogKind, type PackageFormat, type PackageKind } from '../domain/kinds.js';
import { isPep440Prerelease } from '../domain/pep440.js';
import { fixedBody, type FixedBody } from '../http/body-cache.js';
import { assetUrl } from '../http/urls.js';
import type { ReleaseGroup } from '../domain/releases.js';
import { isPrerelease } from '../domain/version.js';
import type { PackageRecord } from '../domain/record.js';
import { SHIPPED_WITH_CLI } from '../vetting/reserved-ids.js';
import { humanSize, plural } from './format.js';
import { authJson, catalogUrl, clientSetup, hostName, SETUP_PURPOSE, shellQuote, TOKEN_ENV, type SetupFormat } from '../setup/client-setup.js';
import type { SearchItem } from './search.js';

/**
 * How the `specify` CLI (spec-kit 1.0.1) names each kind: the command group, the verb that installs (or, for
 * integrations, shows) one, and whether `add --from <url>` installs one stored version by its URL. The env var and
 * config file come from KIND_RULES.
 */
const CLI: Record<CatalogKind, { title: string; one: string; many: string; command: string; verb: string; from: boolean }> = {
  extension: { title: 'Extensions', one: 'extension', many: 'extensions', command: 'extension', verb: 'add', from: true },
  preset: { title: 'Presets', one: 'preset', many: 'presets', command: 'preset', verb: 'add', from: true },
  workflow: { title: 'Workflows', one: 'workflow', many: 'workflows', command: 'workflow', verb: 'add', from: true },
  step: { title: 'Workflow steps', one: 'step', many: 'steps', command: 'workflow step', verb: 'add', from: false },
  bundle: { title: 'Bundles', one: 'bundle', many: 'bundles', command: 'bundle', verb: 'install', from: false },
  integration: { title: 'Integrations', one: 'integration', many: 'integrations', command: 'integration', verb: 'info', from: false },
};

/** What a person reads for each stored format. */
const FORMAT_LABEL: Record<PackageFormat, string> = { zip: 'zip', 'tar.gz': 'tar.gz', yaml: 'YAML' };

/** The command that installs (integrations: shows) `id` from `url`, a catalog of its kind; bundles have no variable. */
function installLine(kind: CatalogKind, id: string, url: string): string {
  const { envVar } = KIND_RULES[kind];
  const { command, verb } = CLI[kind];
  return `${envVar ? `${envVar}=${url} ` : ''}specify ${command} ${verb} ${id}`;
}

/** `N extensions · N presets …`, every catalog kind. */
function kindCounts(count: (kind: CatalogKind) => number): string[] {
  return CATALOG_KINDS.map((kind) => plural(count(kind), CLI[kind].one, CLI[kind].many));
}

/** A step file's URL: served from the vetted package under its sha256, the path one encoded segment (as the catalog writes it). */
function stepFileUrl(base: string, record: CatalogRecord, path: string): string {
  return `${base}/files/${record.sha256}/${encodeURIComponent(path)}`;
}

const LINKS = [
  ['homepage', 'Homepage'],
  ['repository', 'Repository'],
  ['documentation', 'Documentation'],
  ['changelog', 'Changelog'],
] as const;

export interface HomeContent {
  counts: { templates: number; releases: number } & Record<CatalogKind, number>;
  query: string;
  results: readonly SearchItem[];
  /** The catalog snapshots, newest first. */
  snapshots: readonly { name: string; created_at: string }[];
}

/** What a package page shows beyond the package itself: what holds each version, and the packages a bundle pins. */
export interface PackageContext {
  /** `bundle acme-team 1.0.0`, `snapshot 2026-12`: what keeps a version from deletion (service.holdersOf). */
  holdersOf(record: CatalogRecord): readonly string[];
  /** The stored package of that kind and id, if any. */
  find(kind: CatalogKind, id: string): CatalogPackage | undefined;
}

export interface ListContent {
  /** Template releases, highest version first. */
  releases: readonly ReleaseGroup[];
  /** Templates that belong to no release. */
  untagged: readonly PackageRecord[];
  catalogs: readonly { kind: CatalogKind; packages: readonly CatalogPackage[] }[];
  /** The one kind shown, or every kind. */
  kind: PackageKind | undefined;
}

export interface WebPages {
  home(content: HomeContent, base: string): string;
  packagePage(pkg: CatalogPackage, base: string, context: PackageContext): string;
  packagesList(content: ListContent, base: string): string;
  /** A release of templates; `latest` when /latest serves it. */
  releasePage(release: ReleaseGroup, latest: boolean, base: string): string;
  /** GET /setup: the CLI's configuration for this server (src/setup/client-setup.ts), live or for a snapshot. */
  setup(content: SetupContent, base: string): string;
}

export interface SetupContent {
  /** The snapshot the files point at, or null for the live catalogs. */
  snapshot: string | null;
  /** The snapshots to choose from, newest first. */
  snapshots: readonly { name: string; created_at: string }[];
  /** Reads need a token: the page then shows auth.json. */
  privateServer: boolean;
  /** The host auth.json names; the base URL's host when omitted. */
  host?: string;
}


/** The pages, from templates read and parsed once. Mustache escapes every value; links come from vetted manifests. */
export function loadWebPages(): WebPages {
  const read = (name: string) => {
    const text = readFileSync(new URL(`./${name}.mustache`, import.meta.url), 'utf8');
    Mustache.parse(text);
    return text;
  };
  const layout = read('layout');
  const home = read('home');
  const packageTemplate = read('package');
  const list = read('packages');
  const releaseTemplate = read('release');
  const setupTemplate = read('setup');
  const partials = { files: read('files') };
  const files = (records: readonly PackageRecord[], base: string) =>
    records.map((r) => ({
      name: r.name,
      url: assetUrl(base, r.name),
      size: humanSize(r.size),
      bytes: r.size,
      downloads: r.downloadCount.toLocaleString('en'),
      sha256: r.sha256,
      shortSha: r.sha256.slice(0, 12),
    }));
  const page = (title: string, base: string, content: string) => Mustache.render(layout, { title, base, content });

  return {
    home({ counts, query, results, snapshots }, base) {
      const summary = [`${plural(counts.templates, 'template')} in ${plural(counts.releases, 'release')}`, ...kindCounts((kind) => counts[kind])].join(' · ');
      const catalogLines = [
        ...CATALOG_KINDS.filter((kind) => KIND_RULES[kind].envVar).map((kind) => installLine(kind, '<id>', catalogUrl(base, kind, null))),
        `# Bundles have no variable: fetch the files from ${base}/setup, then`,
        installLine('bundle', '<id>', catalogUrl(base, 'bundle', null)),
      ].join('\n');
      const shown = results.slice(0, 100);
      const content = Mustache.render(home, {
        base,
        q: query,
        summary,
        resultCount: query ? `${plural(results.length, 'result')} for “${query}”` : results.length === 0 ? 'Nothing published yet.' : `Everything here (${results.length})`,
        results: shown.map((item) => ({ ...item, kindLabel: item.kind === 'step' ? 'workflow step' : item.kind, tagLine: item.tags.join(' · ') })),
        init: `specify init my-project --template-url ${base}/latest --ai claude --script sh`,
        catalogLines,
        hasSnapshots: snapshots.length > 0,
        snapshots: snapshots.map((s) => ({
          name: s.name,
          created: s.created_at.slice(0, 10),
          setupUrl: `${base}/setup?snapshot=${encodeURIComponent(s.name)}`,
          catalogs: CATALOG_KINDS.map((kind) => ({ section: CATALOG_SECTION[kind], url: catalogUrl(base, kind, s.name) })),
        })),
      });
      return page(query ? `“${query}”` : 'Search', base, content);
    },

    packagesList({ releases, untagged, catalogs, kind }, base) {
      const templateCount = releases.reduce((n, r) => n + r.records.length, 0) + untagged.length;
      const count = (k: CatalogKind) => catalogs.find((c) => c.kind === k)?.packages.length ?? 0;
      // One kind shown: count that kind alone (the others were not asked for, so they are not zero).
      const templateSummary = `${plural(templateCount, 'template')} in ${plural(releases.length, 'release')}`;
      const summary =
        kind === undefined ? [templateSummary, ...kindCounts(count)].join(' · ') : kind === 'template' ? templateSummary : plural(count(kind), CLI[kind].one, CLI[kind].many);
      // What /latest serves comes first: releases by version, pre-releases after them.
      const ordered = [...releases.filter((r) => !isPrerelease(r.tag)), ...releases.filter((r) => isPrerelease(r.tag))];
      const showTemplates = kind === undefined || kind === 'template';
      const content = Mustache.render(
        list,
        {
          base,
          summary,
          all: kind === undefined,
          kindLinks: (['template', ...CATALOG_KINDS] as const).map((k) => ({
            kind: k,
            title: k === 'template' ? 'Templates' : CLI[k].title,
            current: k === kind,
          })),
          showTemplates,
          hasTemplates: templateCount > 0,
          latestTag: ordered[0]?.tag ?? 'the newest untagged templates',
          releases: ordered.map((r) => ({
            tag: r.tag,
            anchor: encodeURIComponent(r.tag),
            pinnedUrl: `${base}/releases/tags/${encodeURIComponent(r.tag)}`,
            prerelease: isPrerelease(r.tag),
            pageUrl: `${base}/packages/template/${encodeURIComponent(r.tag)}`,
            packages: files(r.records, base),
          })),
          hasUntagged: untagged.length > 0,
          untagged: { packages: files(untagged, base) },
          setupUrl: `${base}/setup`,
          catalogs: catalogs.map(({ kind: k, packages }) => {
            const rules = KIND_RULES[k];
            const url = catalogUrl(base, k, null);
            return {
              ...CLI[k],
              section: rules.section,
              catalogUrl: url,
              configFile: rules.configFile,
              configUrl: `${base}/setup?format=${encodeURIComponent(rules.configFile)}`,
              envLine: rules.envVar ? installLine(k, '<id>', url) : null,
              isStep: k === 'step',
              isBundle: k === 'bundle',
              isIntegration: k === 'integration',
              config: configYaml(k, url),
              none: packages.length === 0,
              hasPackages: packages.length > 0,
              packages: packages.map((p) => ({
                kind: k,
                id: p.id,
                name: p.served.catalog.name,
                version: p.served.catalog.version,
                description: p.served.catalog.description,
                author: p.served.catalog.author,
                verified: p.served.catalog.verified === true,
                downloads: k === 'integration' ? null : plural(p.versions.reduce((n, r) => n + r.downloadCount, 0), 'download'),
                others: p.versions.length > 1 ? plural(p.versions.length, 'version') : null,
                pageUrl: `${base}/packages/${k}/${encodeURIComponent(p.id)}`,
                command: `specify ${CLI[k].command} ${CLI[k].verb} ${p.id}`,
              })),
            };
          }),
        },
        partials,
      );
      return page('Packages', base, content);
    },

    releasePage(release, latest, base) {
      const pinned = `specify init my-project --template-url ${base}/releases/tags/${encodeURIComponent(release.tag)} --ai claude --script sh`;
      const downloads = release.records.reduce((n, r) => n + r.downloadCount, 0);
      const content = Mustache.render(
        releaseTemplate,
        {
          base,
          tag: release.tag,
          prerelease: isPrerelease(release.tag),
          latest,
          summary: `${plural(release.records.length, 'template')} · ${plural(downloads, 'download')}`,
          pinned,
          packages: files(release.records, base),
        },
        partials,
      );
      return page(`Templates ${release.tag}`, base, content);
    },

    setup({ snapshot, snapshots, privateServer, host }, base) {
      const generated = clientSetup({ base, snapshot, privateServer, host: host ?? base });
      const fileUrl = (format: SetupFormat) => `${base}/setup?${new URLSearchParams(snapshot === null ? { format } : { format, snapshot }).toString()}`;
      const auth = privateServer ? ` -H "Authorization: Bearer $${TOKEN_ENV}"` : '';
      const files = generated.files.filter((f) => f.format !== 'env');
      const fetch = [
        'mkdir -p ~/.specify',
        ...files.map((f) => `curl -fsS${auth} -o ~/.specify/${f.fileName} ${shellQuote(fileUrl(f.format))}`),
        ...(privateServer ? ['chmod 600 ~/.specify/auth.json'] : []),
      ].join('\n');
      const content = Mustache.render(setupTemplate, {
        base,
        snapshot,
        liveUrl: `${base}/setup`,
        hasSnapshots: snapshots.length > 0,
        snapshots: snapshots.map((s) => ({ name: s.name, created: s.created_at.slice(0, 10), current: s.name === snapshot, url: `${base}/setup?snapshot=${encodeURIComponent(s.name)}` })),
        fetch,
        files: files.map((f) => ({
          anchor: f.format.replace(/[^a-z0-9-]/g, '-'),
          fileName: f.fileName,
          where: `~/.specify/${f.fileName}`,
          purpose: SETUP_PURPOSE[f.format].replaceAll('`', ''),
          text: f.text,
          url: fileUrl(f.format),
        })),
        envText: generated.byFormat.env?.text ?? '',
        envUrl: fileUrl('env'),
        privateServer,
        host: hostName(host ?? base),
        tokenEnv: TOKEN_ENV,
        authBasic: privateServer ? authJson(host ?? base, 'basic-pat') : '',
      });
      return page(snapshot === null ? 'Set up' : `Set up, snapshot ${snapshot}`, base, content);
    },

    packagePage(pkg, base, context) {
      const meta = pkg.served.catalog;
      const cli = CLI[pkg.kind];
      const rules = KIND_RULES[pkg.kind];
      const url = catalogUrl(base, pkg.kind, null);
      const pageUrl = (kind: CatalogKind, id: string) => `${base}/packages/${kind}/${encodeURIComponent(id)}`;
      const requires = [meta.requires?.speckit_version && `spec-kit ${meta.requires.speckit_version}`, ...(meta.requires?.tools ?? []).map((t) => `${t.name}${t.version ? ` ${t.version}` : ''}${t.required === false ? ' (optional)' : ''}`)]
        .filter(Boolean)
        .join(', ');
      const provides = Object.entries(meta.provides ?? {})
        .filter(([, n]) => n > 0)
        .map(([what, n]) => `${n} ${n === 1 ? what.replace(/s$/, '') : what}`)
        .join(', ');
      // What keeps a version from deletion, each linked to where a person reads more.
      const holders = (record: CatalogRecord) =>
        context.holdersOf(record).map((holder) => {
          const [what, name = '', version = ''] = holder.split(' ');
          if (what === 'bundle') return { text: `pinned by bundle ${name} ${version}`, url: `${pageUrl('bundle', name)}#version-${version}` };
          if (what === 'snapshot') return { text: `in snapshot ${name}`, url: `${base}/setup?snapshot=${encodeURIComponent(name)}` };
          return { text: holder, url: null };
        });
      // The snapshots that hold a version: pointing the kind's catalog at one installs that version.
      const snapshotsOf = (record: CatalogRecord) => context.holdersOf(record).flatMap((h) => (h.startsWith('snapshot ') ? [h.slice('snapshot '.length)] : []));
      const components = (record: CatalogRecord) =>
        (record.catalog.components ?? []).map((c) => {
          const stored = context.find(c.kind, c.id);
          const storedVersion = c.version === undefined ? stored?.served : stored?.versions.find((r) => r.catalog.version === c.version);
          const shipped = c.kind !== 'step' && SHIPPED_WITH_CLI[c.kind][c.id] !== undefined;
          return {
            kind: c.kind,
            id: c.id,
            version: c.version ?? 'any (steps may be unpinned)',
            url: stored ? `${pageUrl(c.kind, c.id)}${storedVersion ? `#version-${storedVersion.catalog.version}` : ''}` : null,
            where: storedVersion ? 'stored here' : shipped && !stored ? 'ships with the spec-kit CLI' : stored ? `not stored here at this version (${stored.served.catalog.version} is)` : 'not stored here',
          };
        });
      const content = Mustache.render(packageTemplate, {
        base,
        kind: pkg.kind,
        kindTitle: cli.title,
        kindLabel: pkg.kind === 'step' ? 'workflow step' : pkg.kind,
        listUrl: `${base}/packages?kind=${pkg.kind}`,
        id: pkg.id,
        name: meta.name,
        description: meta.description,
        version: meta.version,
        verified: meta.verified === true,
        author: meta.author,
        license: meta.license,
        category: meta.category,
        effect: meta.effect,
        role: meta.role,
        requires,
        provides: pkg.kind === 'bundle' ? null : provides,
        contents: (meta.contents ?? []).map((c) => ({ what: c.what, name: c.name })),
        hasContents: (meta.contents ?? []).length > 0,
        tagLine: (meta.tags ?? []).join(' · '),
        links: LINKS.filter(([field]) => meta[field]).map(([field, label]) => ({ label, url: meta[field] })),
        downloads: pkg.kind === 'integration' ? null : pkg.versions.reduce((n, r) => n + r.downloadCount, 0).toLocaleString('en'),
        install: installLine(pkg.kind, pkg.id, url),
        catalogUrl: url,
        section: rules.section,
        configFile: rules.configFile,
        envVar: rules.envVar,
        setupUrl: `${base}/setup`,
        isStep: pkg.kind === 'step',
        isBundle: pkg.kind === 'bundle',
        isIntegration: pkg.kind === 'integration',
        versions: pkg.versions.map((record, index) => {
          const format = formatOfName(record.name);
          const served = record === pkg.served;
          const snapshots = snapshotsOf(record);
          const heldBy = holders(record);
          const stepFiles = (record.catalog.files ?? []).map((f) => ({ path: f.path, url: stepFileUrl(base, record, f.path), size: humanSize(f.size), bytes: f.size, sha256: f.sha256, shortSha: f.sha256.slice(0, 12) }));
          const parts = components(record);
          // An older version installs by its URL where the CLI takes one, else from a snapshot that holds it.
          const install = cli.from
            ? `specify ${cli.command} add ${pkg.id} --from ${assetUrl(base, record.name)}`
            : !served && snapshots[0] !== undefined && pkg.kind !== 'bundle'
              ? installLine(pkg.kind, pkg.id, catalogUrl(base, pkg.kind, snapshots[0]))
              : null;
          return {
            index,
            version: record.catalog.version,
            served,
            verified: record.catalog.verified === true,
            prerelease: isPep440Prerelease(record.catalog.version),
            format: FORMAT_LABEL[format],
            size: humanSize(record.size),
            uploaded: record.updatedAt.slice(0, 10),
            downloads: pkg.kind === 'integration' ? null : `${record.downloadCount.toLocaleString('en')} download${record.downloadCount === 1 ? '' : 's'}`,
            sha256: record.sha256,
            shortSha: record.sha256.slice(0, 12),
            file: record.name,
            url: rules.download === null ? null : assetUrl(base, record.name),
            install,
            installFromSnapshot: install !== null && !cli.from,
            snapshotName: snapshots[0],
            bundleSnapshot: pkg.kind === 'bundle' && !served && snapshots[0] !== undefined ? { name: snapshots[0], url: `${base}/setup?snapshot=${encodeURIComponent(snapshots[0])}` } : null,
            held: heldBy.length > 0,
            heldBy,
            // Absent: approved on upload. Pending and rejected versions are not offered, and their downloads answer 403.
            approval: record.approval && record.approval.state !== 'approved' ? { pending: record.approval.state === 'pending', rejected: record.approval.state === 'rejected', by: record.approval.by, at: record.approval.at.slice(0, 10), reason: record.approval.reason } : null,
            approvedBy: record.approval?.state === 'approved' ? `${record.approval.by}, ${record.approval.at.slice(0, 10)}` : null,
            provenance: record.provenance ? { source: record.provenance.source, url: record.provenance.url } : null,
            hasFiles: stepFiles.length > 0,
            fileCount: plural(stepFiles.length, 'file'),
            files: stepFiles,
            hasComponents: parts.length > 0,
            componentCount: plural(parts.length, 'component'),
            components: parts,
          };
        }),
      });
      return page(`${meta.name} (${pkg.kind === 'step' ? 'workflow step' : pkg.kind})`, base, content);
    },
  };
}

function configYaml(kind: CatalogKind, url: string): string {
  const entry = kind === 'bundle' ? ['schema_version: "1.0"', 'catalogs:', '  - id: release-server', `    url: ${url}`, '    priority: 1', '    install_policy: install-allowed'] : ['catalogs:', '  - name: release-server', `    url: ${url}`, '    priority: 1', '    install_allowed: true'];
  return entry.join('\n');
}

/** The pages' script and style sheet, read once. */
export function loadStaticFiles(): Record<'app.js' | 'app.css', FixedBody> {
  const read = (name: string) => readFileSync(new URL(`./static/${name}`, import.meta.url));
  return {
    'app.js': fixedBody('text/javascript; charset=utf-8', read('app.js')),
    'app.css': fixedBody('text/css; charset=utf-8', read('app.css')),
  };
}
