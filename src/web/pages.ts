import { readFileSync } from 'node:fs';
import Mustache from 'mustache';
import type { CatalogPackage } from '../domain/catalog.js';
import { CATALOG_SECTION, type CatalogKind, type PackageKind } from '../domain/kinds.js';
import { isPep440Prerelease } from '../domain/pep440.js';
import { fixedBody, type FixedBody } from '../http/body-cache.js';
import { assetUrl } from '../http/urls.js';
import type { ReleaseGroup } from '../domain/releases.js';
import { isPrerelease } from '../domain/version.js';
import type { PackageRecord } from '../domain/record.js';
import { humanSize, plural } from './format.js';
import { authJson, clientSetup, hostName, SETUP_PURPOSE, TOKEN_ENV, type SetupFormat } from '../setup/client-setup.js';
import type { SearchItem } from './search.js';

/** How the `specify` CLI names each kind: its command, and the variable that points it at one catalog. */
const CLI: Record<CatalogKind, { title: string; command: string; envVar: string }> = {
  extension: { title: 'Extensions', command: 'extension', envVar: 'SPECKIT_CATALOG_URL' },
  preset: { title: 'Presets', command: 'preset', envVar: 'SPECKIT_PRESET_CATALOG_URL' },
  workflow: { title: 'Workflows', command: 'workflow', envVar: 'SPECKIT_WORKFLOW_CATALOG_URL' },
  step: { title: 'Workflow steps', command: 'workflow step', envVar: 'SPECKIT_STEP_CATALOG_URL' },
  bundle: { title: 'Bundles', command: 'bundle', envVar: '' },
  integration: { title: 'Integrations', command: 'integration', envVar: 'SPECKIT_INTEGRATION_CATALOG_URL' },
};

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
  packagePage(pkg: CatalogPackage, base: string): string;
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
    home({ counts, query, results }, base) {
      const summary = [
        `${plural(counts.templates, 'template')} in ${plural(counts.releases, 'release')}`,
        plural(counts.extension, 'extension'),
        plural(counts.preset, 'preset'),
        plural(counts.workflow, 'workflow'),
      ].join(' · ');
      const catalogLines = (Object.keys(CLI) as CatalogKind[])
        .map((kind) => `${CLI[kind].envVar}=${base}/catalogs/${CATALOG_SECTION[kind]}.json specify ${CLI[kind].command} add <id>`)
        .join('\n');
      const shown = results.slice(0, 100);
      const content = Mustache.render(home, {
        base,
        q: query,
        summary,
        resultCount: query ? `${plural(results.length, 'result')} for “${query}”` : results.length === 0 ? 'Nothing published yet.' : `Everything here (${results.length})`,
        results: shown.map((item) => ({ ...item, tagLine: item.tags.join(' · ') })),
        init: `specify init my-project --template-url ${base}/latest --ai claude --script sh`,
        catalogLines,
      });
      return page(query ? `“${query}”` : 'Search', base, content);
    },

    packagesList({ releases, untagged, catalogs, kind }, base) {
      const templateCount = releases.reduce((n, r) => n + r.records.length, 0) + untagged.length;
      const count = (k: CatalogKind) => catalogs.find((c) => c.kind === k)?.packages.length ?? 0;
      const summary = [
        `${plural(templateCount, 'template')} in ${plural(releases.length, 'release')}`,
        plural(count('extension'), 'extension'),
        plural(count('preset'), 'preset'),
        plural(count('workflow'), 'workflow'),
      ].join(' · ');
      // What /latest serves comes first: releases by version, pre-releases after them.
      const ordered = [...releases.filter((r) => !isPrerelease(r.tag)), ...releases.filter((r) => isPrerelease(r.tag))];
      const showTemplates = kind === undefined || kind === 'template';
      const content = Mustache.render(
        list,
        {
          base,
          summary,
          all: kind === undefined,
          kindLinks: (['template', 'extension', 'preset', 'workflow'] as const).map((k) => ({
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
          catalogs: catalogs.map(({ kind: k, packages }) => {
            const section = CATALOG_SECTION[k];
            return {
              ...CLI[k],
              section,
              catalogUrl: `${base}/catalogs/${section}.json`,
              none: packages.length === 0,
              hasPackages: packages.length > 0,
              packages: packages.map((p) => ({
                kind: k,
                id: p.id,
                name: p.served.catalog.name,
                version: p.served.catalog.version,
                description: p.served.catalog.description,
                author: p.served.catalog.author,
                downloads: plural(p.versions.reduce((n, r) => n + r.downloadCount, 0), 'download'),
                others: p.versions.length > 1 ? plural(p.versions.length, 'version') : null,
                pageUrl: `${base}/packages/${k}/${encodeURIComponent(p.id)}`,
                command: CLI[k].command,
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

    packagePage(pkg, base) {
      const meta = pkg.served.catalog;
      const cli = CLI[pkg.kind];
      const catalogUrl = `${base}/catalogs/${CATALOG_SECTION[pkg.kind]}.json`;
      const requires = [meta.requires?.speckit_version && `spec-kit ${meta.requires.speckit_version}`, ...(meta.requires?.tools ?? []).map((t) => `${t.name}${t.version ? ` ${t.version}` : ''}${t.required === false ? ' (optional)' : ''}`)]
        .filter(Boolean)
        .join(', ');
      const provides = Object.entries(meta.provides ?? {})
        .filter(([, n]) => n > 0)
        .map(([what, n]) => `${n} ${n === 1 ? what.replace(/s$/, '') : what}`)
        .join(', ');
      const content = Mustache.render(packageTemplate, {
        base,
        kind: pkg.kind,
        kindTitle: cli.title,
        id: pkg.id,
        name: meta.name,
        description: meta.description,
        version: meta.version,
        author: meta.author,
        license: meta.license,
        category: meta.category,
        effect: meta.effect,
        requires,
        provides,
        contents: (meta.contents ?? []).map((c) => ({ what: c.what, name: c.name })),
        hasContents: (meta.contents ?? []).length > 0,
        tagLine: (meta.tags ?? []).join(' · '),
        links: LINKS.filter(([field]) => meta[field]).map(([field, label]) => ({ label, url: meta[field] })),
        downloads: pkg.versions.reduce((n, r) => n + r.downloadCount, 0).toLocaleString('en'),
        install: `${cli.envVar}=${catalogUrl} specify ${cli.command} add ${pkg.id}`,
        versions: pkg.versions.map((record, index) => ({
          index,
          version: record.catalog.version,
          served: record === pkg.served,
          prerelease: isPep440Prerelease(record.catalog.version),
          size: humanSize(record.size),
          uploaded: record.updatedAt.slice(0, 10),
          downloads: record.downloadCount.toLocaleString('en'),
          plural: record.downloadCount === 1 ? '' : 's',
          sha256: record.sha256,
          shortSha: record.sha256.slice(0, 12),
          file: record.name,
          url: assetUrl(base, record.name),
          install: `specify ${cli.command} add ${pkg.id} --from ${assetUrl(base, record.name)}`,
        })),
      });
      return page(`${meta.name} (${pkg.kind})`, base, content);
    },
  };
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The pages' script and style sheet, read once. */
export function loadStaticFiles(): Record<'app.js' | 'app.css', FixedBody> {
  const read = (name: string) => readFileSync(new URL(`./static/${name}`, import.meta.url));
  return {
    'app.js': fixedBody('text/javascript; charset=utf-8', read('app.js')),
    'app.css': fixedBody('text/css; charset=utf-8', read('app.css')),
  };
}
