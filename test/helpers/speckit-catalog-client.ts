import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { eq as pep440Eq, valid as pep440Valid } from '@renovatebot/pep440';
import tar from 'tar-stream';
import { parse } from 'yaml';
import yauzl from 'yauzl';

/**
 * What upstream `specify` does with catalogs (../shared/docs/speckit-catalogs.md and speckit-kinds.md), written from
 * the docs and the CLI's behaviour, independently of the server's code. `catalogAdd` is `specify <kind> add <id>`
 * against one catalog; `stepAdd`, `integrationSearch`/`integrationInfo` and `bundleInstall` cover the other kinds, and
 * take either one catalog URL or a stack of catalogs as speckit-config.ts resolves them.
 */

type Kind = 'extension' | 'preset' | 'workflow';
export type PackageKind = Kind;
const SECTION = { extension: 'extensions', preset: 'presets', workflow: 'workflows', step: 'steps', integration: 'integrations', bundle: 'bundles' } as const;
const MiB = 1024 * 1024;
const MAX_DOWNLOAD = 50 * MiB;
const MAX_CATALOG = 8 * MiB;
const MAX_ENTRIES = 512;
const MAX_MEMBER = 10 * MiB;
const MAX_TOTAL = 50 * MiB;
const MAX_WORKFLOW_YAML = 5 * MiB;
const MAX_STEP_FILES = 512;
const MAX_STEP_BYTES = 50 * MiB;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1']);

/**
 * Headers for every request, or, as the CLI does with auth.json, the header sets to try for a URL in order (the
 * next one on 401/403; speckit-config.ts's `auth` gives them, ending with `{}`).
 */
export type RequestHeaders = Record<string, string> | ((url: string) => readonly Record<string, string>[]);

/** One catalog of a stack (speckit-config.ts's CatalogSource fits). */
export interface CatalogRef {
  url: string;
  installAllowed: boolean;
  name?: string;
  priority?: number;
}
/** One catalog URL (install allowed, as an env var gives it) or a whole stack. */
export type Catalogs = string | readonly CatalogRef[];

export interface Installed {
  /** `.specify/<kind>s/<manifest id>/` under the project. */
  path: string;
  manifest: Record<string, Record<string, unknown>>;
  entry: Record<string, unknown>;
}

/**
 * `specify <kind> add <id>` with one catalog: fetch the catalog (https, or http on loopback), require schema_version
 * and the kind's map (workflows: a map or a list of objects with `id`), take the entry by id (extensions: else by
 * exact case-insensitive name), require the fields the CLI reads, download (≤ 50 MiB), check sha256 before writing
 * anything (workflows: archives only), tell the format from the URL's suffix, else the Content-Type, else the bytes,
 * and require it to match the bytes; extract safely (zip or tar.gz; a workflow may be a bare workflow.yml), find the
 * manifest at the root or in the only top-level directory, require its id to equal the catalog key (and, as we want
 * of the CLI, its version to equal the catalog's), and copy the folder into the project.
 */
export async function catalogAdd(catalogUrl: string, kind: Kind, idOrName: string, project: string, headers: RequestHeaders = {}): Promise<Installed> {
  const entries = await fetchCatalogEntries(catalogUrl, SECTION[kind], headers);
  let key = entries.has(idOrName) ? idOrName : undefined;
  if (!key && kind === 'extension') key = [...entries.keys()].find((k) => String(entries.get(k)!.name).toLowerCase() === idOrName.toLowerCase());
  if (!key) throw new Error(`'${idOrName}' not found in catalog`);
  return installPackage(kind, key, entries.get(key)!, project, headers);
}

async function installPackage(kind: Kind, key: string, entry: Record<string, unknown>, project: string, headers: RequestHeaders): Promise<Installed> {
  if (kind === 'extension') for (const field of ['name', 'version', 'description']) if (!(field in entry)) throw new Error(`KeyError: '${field}'`);
  const url = (kind === 'workflow' ? entry.url : entry.download_url) as unknown;
  if (!url) throw new Error(`${kind} has no download URL`);
  if (typeof url !== 'string') throw new Error(`${kind} has a malformed download URL`);
  checkUrl(url, `${kind} download URL`);
  const download = await get(url, headers, `${kind} download`, MAX_DOWNLOAD);
  if (download.status !== 200) throw new Error(`Failed to download ${kind} from ${url}: HTTP Error ${download.status}`);
  const bytes = download.bytes;

  const declared = formatOfName(download.finalUrl) ?? formatOfName(url);
  const fromType = formatOfContentType(download.contentType);
  if (declared && fromType && declared !== fromType) throw new Error(`Archive format mismatch: filename declares ${declared} but Content-Type declares ${fromType}`);
  let format = declared ?? fromType;
  if (kind === 'workflow' && !format) {
    format = sniff(bytes);
    if (!format) return installWorkflowYaml(key, entry, bytes, project);
  }
  if (kind !== 'workflow' || format) checkSha256(entry, bytes);
  const actual = sniff(bytes);
  if (!actual) throw new Error(format ? `Archive format mismatch: expected ${format}, got invalid/unsupported data` : 'Unsupported archive format; expected .zip, .tar.gz, or .tgz');
  if (format && actual !== format) throw new Error(`Archive format mismatch: expected ${format}, got ${actual}`);

  const staging = await mkdtemp(join(tmpdir(), 'speckit-client-'));
  try {
    if (actual === 'zip') await safeExtractZip(bytes, staging);
    else await safeExtractTarGz(bytes, staging);
    const manifestName = `${kind}.yml`;
    const root = await packageRoot(staging, manifestName);
    const manifest = parse(await readFile(join(root, manifestName), 'utf8')) as Record<string, Record<string, unknown>>;
    checkManifest(kind, manifest, key, entry);
    const path = join(project, '.specify', SECTION[kind], key);
    await mkdir(dirname(path), { recursive: true });
    await rename(root, path);
    return { path, manifest, entry };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function installWorkflowYaml(key: string, entry: Record<string, unknown>, bytes: Buffer, project: string): Promise<Installed> {
  if (bytes.length > MAX_WORKFLOW_YAML) throw new Error(`response exceeds the ${MAX_WORKFLOW_YAML}-byte workflow size limit`);
  const manifest = parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, Record<string, unknown>>;
  checkManifest('workflow', manifest, key, entry);
  const path = join(project, '.specify', 'workflows', key);
  await mkdir(path, { recursive: true });
  await writeFile(join(path, 'workflow.yml'), bytes);
  return { path, manifest, entry };
}

function checkManifest(kind: Kind, manifest: Record<string, Record<string, unknown>>, key: string, entry: Record<string, unknown>): void {
  if (typeof manifest !== 'object' || manifest === null) throw new Error(`${kind}.yml must be a YAML mapping`);
  const id = manifest[kind]?.id;
  if (id !== key) throw new Error(`manifest id ${String(id)} does not match catalog key ${key}`);
  if (manifest[kind]?.version !== entry.version) throw new Error(`manifest version ${String(manifest[kind]?.version)} is not the catalog's ${String(entry.version)}`);
}

async function packageRoot(staging: string, manifestName: string): Promise<string> {
  const top = await readdir(staging, { withFileTypes: true });
  if (top.some((d) => d.isFile() && d.name === manifestName)) return staging;
  const dirs = top.filter((d) => d.isDirectory());
  if (dirs.length !== 1) throw new Error(`No ${manifestName} found in package`);
  const root = join(staging, dirs[0]!.name);
  if (!(await readdir(root)).includes(manifestName)) throw new Error(`No ${manifestName} found in package`);
  return root;
}

// ---- Workflow steps ---------------------------------------------------------------------------------------------

export interface InstalledStep {
  /** `.specify/workflows/steps/<id>/` under the project. */
  path: string;
  /** Relative paths written: step.yml, __init__.py, then the extra files. */
  files: string[];
  stepYml: Record<string, unknown>;
  entry: Record<string, unknown>;
  warnings: string[];
}

/**
 * `specify workflow step add <id>`: the entry from the merged step catalogs (a map, or a list of objects with `id`);
 * install allowed; `step_yml_url` wins over `url`; `init_url`, else the step.yml URL with its trailing `step.yml`
 * replaced by `__init__.py`; `extra_files` a mapping of relative path to URL (anything else is ignored with a warning);
 * at most 512 files and 50 MiB; no sha256 at all; step.yml's `step.type_key` must equal the id.
 */
export async function stepAdd(catalogs: Catalogs, id: string, project: string, headers: RequestHeaders = {}): Promise<InstalledStep> {
  const found = await lookup(catalogs, 'steps', id, headers);
  if (!found) throw new Error(`Step type '${id}' not found in catalog`);
  const { entry, source } = found;
  if (!source.installAllowed) throw new Error(`Step type '${id}' is from a discovery-only catalog`);
  const warnings: string[] = [];
  const declared = entry.step_yml_url;
  if (declared !== undefined && declared !== null && typeof declared !== 'string') throw new Error(`Catalog entry for '${id}' has a malformed step.yml URL; expected a non-empty string`);
  const stepYmlUrl = (declared || entry.url) as unknown;
  if (stepYmlUrl === undefined || stepYmlUrl === null || (typeof stepYmlUrl === 'string' && !stepYmlUrl.trim())) throw new Error(`Catalog entry for '${id}' has no URL`);
  if (typeof stepYmlUrl !== 'string') throw new Error(`Catalog entry for '${id}' has a malformed step.yml URL; expected a non-empty string`);
  let initUrl = entry.init_url as unknown;
  if (initUrl !== undefined && initUrl !== null && (typeof initUrl !== 'string' || !initUrl.trim())) throw new Error(`Catalog entry for '${id}' has a malformed __init__.py URL; expected a non-empty string`);
  if (!initUrl) {
    if (!stepYmlUrl.endsWith('step.yml')) throw new Error(`Cannot derive __init__.py URL from '${stepYmlUrl}'`);
    initUrl = `${stepYmlUrl.slice(0, -'step.yml'.length)}__init__.py`;
  }
  let extra = entry.extra_files as unknown;
  if (extra !== undefined && extra !== null && !isObject(extra)) {
    warnings.push("Catalog entry 'extra_files' is not a mapping; additional package files will not be downloaded.");
    extra = {};
  }
  const extras = Object.entries((extra ?? {}) as Record<string, unknown>);
  const required = (p: string) => {
    const parts = p.replaceAll('\\', '/').split('/').filter((s) => s !== '' && s !== '.');
    return parts.length === 1 && ['step.yml', '__init__.py'].includes(parts[0]!.toLowerCase());
  };
  const count = 2 + extras.filter(([p]) => !required(p)).length;
  if (count > MAX_STEP_FILES) throw new Error(`Step package declares ${count} files, exceeding the ${MAX_STEP_FILES}-file limit`);

  const fetchFile = async (url: string) => {
    checkUrl(url, 'step file URL');
    const res = await get(url, headers, 'step file', MAX_DOWNLOAD);
    if (res.status !== 200) throw new Error(`Failed to download step files: HTTP Error ${res.status}`);
    return res.bytes;
  };
  const stepYmlBytes = await fetchFile(stepYmlUrl);
  const initBytes = await fetchFile(initUrl as string);
  let total = stepYmlBytes.length + initBytes.length;
  if (total > MAX_STEP_BYTES) throw new Error(`Step package exceeds the ${MAX_STEP_BYTES}-byte total size limit`);
  const meta = (parse(stepYmlBytes.toString('utf8')) ?? {}) as unknown;
  if (!isObject(meta)) throw new Error('step.yml must be a YAML mapping');
  const step = meta.step ?? {};
  if (!isObject(step)) throw new Error("step.yml 'step' field must be a mapping");
  if (!step.type_key) throw new Error("step.yml missing 'step.type_key' field");
  if (step.type_key !== id) throw new Error(`step.yml type_key (${String(step.type_key)}) does not match catalog ID (${id})`);

  const files = new Map<string, Buffer>([
    ['step.yml', stepYmlBytes],
    ['__init__.py', initBytes],
  ]);
  for (const [rel, url] of extras) {
    if (!rel.trim()) throw new Error("Catalog entry 'extra_files' contains an empty or non-string path key");
    if (required(rel)) continue;
    const parts = rel.split('/');
    if (rel.startsWith('/') || /^[A-Za-z]:/.test(rel) || parts.some((s) => s === '' || s === '.' || s === '..')) throw new Error(`extra_files path '${rel}' is not a valid relative file path`);
    if (typeof url !== 'string' || !url.trim()) throw new Error(`extra_files entry '${rel}' has an empty or non-string URL`);
    const bytes = await fetchFile(url);
    total += bytes.length;
    if (total > MAX_STEP_BYTES) throw new Error(`Step package exceeds the ${MAX_STEP_BYTES}-byte total size limit`);
    files.set(rel, bytes);
  }
  const path = join(project, '.specify', 'workflows', 'steps', id);
  for (const [rel, bytes] of files) {
    const target = resolve(path, rel);
    if (!target.startsWith(path + sep)) throw new Error(`extra_files path '${rel}' is outside the step package directory`);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, bytes);
  }
  return { path, files: [...files.keys()], stepYml: meta, entry, warnings };
}

// ---- Integrations (search and info only) ------------------------------------------------------------------------

/** `specify integration search [query]`: entries whose id, name, description or tags contain the query. */
export async function integrationSearch(catalogs: Catalogs, query = '', headers: RequestHeaders = {}): Promise<Record<string, unknown>[]> {
  const merged = await mergedEntries(catalogs, 'integrations', headers);
  const q = query.toLowerCase();
  return [...merged.values()].filter((e) => !q || [e.id, e.name, e.description, ...(Array.isArray(e.tags) ? e.tags : [])].map((v) => String(v ?? '')).join(' ').toLowerCase().includes(q));
}

/** `specify integration info <id>`: the entry, or null. Nothing is ever downloaded for an integration. */
export async function integrationInfo(catalogs: Catalogs, id: string, headers: RequestHeaders = {}): Promise<Record<string, unknown> | null> {
  return (await mergedEntries(catalogs, 'integrations', headers)).get(id) ?? null;
}

// ---- Bundles ----------------------------------------------------------------------------------------------------

/** A bundle source (speckit-config.ts's BundleSource fits). */
export interface BundleSourceRef {
  id: string;
  url: string;
  priority: number;
  installAllowed: boolean;
}

export interface BundleInstallOptions {
  /** The bundle sources (sorted here by priority, then id), or one bundle catalog URL. */
  sources: string | readonly BundleSourceRef[];
  /** The catalogs configured for each component kind: a bundle's components come from these, never the bundle catalog. */
  stacks: { extension: Catalogs; preset: Catalogs; workflow: Catalogs; step: Catalogs };
  headers?: RequestHeaders;
  /** Components that ship with the CLI, by id, with their shipped version (e.g. extensions `agent-context`). */
  shipped?: { extensions?: Record<string, string>; presets?: Record<string, string> };
}

export interface InstalledComponent {
  kind: 'extensions' | 'presets' | 'steps' | 'workflows';
  id: string;
  version: string | null;
  /** Installed from its kind's catalog, or taken from the CLI's own assets. */
  how: 'catalog' | 'shipped';
  path: string | null;
}

export interface InstalledBundle {
  manifest: Record<string, unknown>;
  entry: Record<string, unknown>;
  source: BundleSourceRef;
  components: InstalledComponent[];
}

/**
 * `specify bundle install <id>`: the first source by priority that holds the id (an unreadable source on the way is
 * an error; `builtin://community` counts as unreadable, as when offline); install allowed; download_url (https) to a
 * zip with bundle.yml at its root or a bare bundle.yml (no tar.gz); sha256 if present; the manifest's id and version
 * must equal the entry's and its structure be valid (extension, preset and workflow components pinned to semver).
 * Then each component in order (extensions, presets, steps, workflows): a shipped extension or preset only if pinned to
 * its shipped version; anything else looked up by id in the catalogs configured for its kind, refused when the
 * version there differs from the pin (a workflow pin is skipped when its catalogs cannot be read; steps are not
 * pinned), and installed. Stops at the first failure and removes what it installed.
 */
export async function bundleInstall(id: string, project: string, options: BundleInstallOptions): Promise<InstalledBundle> {
  const headers = options.headers ?? {};
  const sources: BundleSourceRef[] = typeof options.sources === 'string' ? [{ id: 'catalog', url: options.sources, priority: 1, installAllowed: true }] : [...options.sources].sort((a, b) => a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  let found: { entry: Record<string, unknown>; source: BundleSourceRef } | undefined;
  for (const source of sources) {
    const entries = await bundleCatalog(source, headers);
    const entry = entries.get(id);
    if (entry) {
      found = { entry, source };
      break;
    }
  }
  if (!found) throw new Error(`Bundle '${id}' was not found in any configured catalog.`);
  const { entry, source } = found;
  if (!source.installAllowed) throw new Error(`Bundle '${id}' resolves only from a discovery-only source ('${source.id}'); it cannot be installed from there.`);
  const url = String(entry.download_url ?? '').trim();
  if (!url) throw new Error(`Catalog entry '${id}' has no download_url; cannot resolve its manifest.`);
  checkUrl(url, `bundle '${id}' download URL`);
  const res = await get(url, headers, 'bundle download', MAX_DOWNLOAD);
  if (res.status !== 200) throw new Error(`Failed to download bundle '${id}' from ${url}: HTTP Error ${res.status}`);
  checkSha256(entry, res.bytes);
  let manifestText: string;
  if (new URL(url).pathname.toLowerCase().endsWith('.zip') || res.bytes.subarray(0, 2).toString('latin1') === 'PK') {
    const staging = await mkdtemp(join(tmpdir(), 'speckit-bundle-'));
    try {
      await safeExtractZip(res.bytes, staging);
      manifestText = await readFile(join(staging, 'bundle.yml'), 'utf8').catch(() => {
        throw new Error(`Downloaded artifact for bundle '${id}' from ${url} is not a valid bundle: no bundle.yml at its root`);
      });
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  } else {
    manifestText = new TextDecoder('utf-8', { fatal: true }).decode(res.bytes);
  }
  const manifest = parse(manifestText) as unknown;
  if (!isObject(manifest) || !isObject(manifest.bundle)) throw new Error("Manifest is missing the required 'bundle' mapping.");
  const meta = manifest.bundle;
  if (text(meta.id) !== String(entry.id)) throw new Error(`Downloaded bundle id mismatch: catalog entry '${String(entry.id)}' points to a manifest for '${text(meta.id)}'.`);
  if (text(meta.version) !== text(entry.version)) throw new Error(`Downloaded bundle version mismatch for '${id}': catalog declares '${text(entry.version)}', but the manifest declares '${text(meta.version)}'.`);
  const components = bundleComponents(manifest);

  const done: InstalledComponent[] = [];
  try {
    for (const c of components) {
      const label = c.kind === 'extensions' ? 'Extension' : c.kind === 'presets' ? 'Preset' : c.kind === 'workflows' ? 'Workflow' : 'Step';
      if (c.kind === 'extensions' || c.kind === 'presets') {
        const shippedVersion = options.shipped?.[c.kind]?.[c.id];
        if (shippedVersion !== undefined) {
          assertPinned(label, c.id, c.version, shippedVersion);
          done.push({ ...c, how: 'shipped', path: null });
          continue;
        }
        const kind = c.kind === 'extensions' ? 'extension' : 'preset';
        const hit = await lookup(options.stacks[kind], c.kind, c.id, headers);
        if (!hit) throw new Error(`${label} '${c.id}' not found in any catalog.`);
        if (!hit.source.installAllowed) throw new Error(`${label} '${c.id}' is from a discovery-only catalog; installation is not allowed.`);
        assertPinned(label, c.id, c.version, hit.entry.version);
        const installed = await installPackage(kind, c.id, hit.entry, project, headers);
        done.push({ ...c, how: 'catalog', path: installed.path });
      } else if (c.kind === 'steps') {
        const installed = await stepAdd(options.stacks.step, c.id, project, headers);
        done.push({ ...c, how: 'catalog', path: installed.path });
      } else {
        if (c.version) {
          let info: Record<string, unknown> | null = null;
          try {
            info = (await lookup(options.stacks.workflow, 'workflows', c.id, headers))?.entry ?? null;
          } catch {
            info = null; // catalog unreadable: the CLI cannot enforce the pin
          }
          if (info) assertPinned(label, c.id, c.version, info.version);
        }
        const hit = await lookup(options.stacks.workflow, 'workflows', c.id, headers);
        if (!hit) throw new Error(`Workflow '${c.id}' not found in catalog`);
        if (!hit.source.installAllowed) throw new Error(`Workflow '${c.id}' is from a discovery-only catalog`);
        const installed = await installPackage('workflow', c.id, hit.entry, project, headers);
        done.push({ ...c, how: 'catalog', path: installed.path });
      }
    }
  } catch (e) {
    for (const c of done.reverse()) if (c.path) await rm(c.path, { recursive: true, force: true });
    throw e;
  }
  return { manifest, entry, source, components: done };
}

/** The CLI's check of a bundle's pin against what the catalog (or the CLI's own asset) offers. */
export function assertPinned(label: string, id: string, pinned: string | null, advertised: unknown): void {
  if (!pinned || advertised === undefined || advertised === null) return;
  const actual = String(advertised).trim();
  if (!actual) return;
  const norm = (v: string) => v.trim().replace(/^[vV]/, '');
  const matches = pep440Valid(norm(actual)) && pep440Valid(norm(pinned)) ? pep440Eq(norm(actual), norm(pinned)) : actual === pinned.trim();
  if (!matches) throw new Error(`${label} '${id}' is pinned to version ${pinned} in the bundle manifest, but the resolved version is ${actual}. Update the bundle's pinned version or the source before installing.`);
}

const SEMVER = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

function bundleComponents(manifest: Record<string, unknown>): Omit<InstalledComponent, 'how' | 'path'>[] {
  const errors: string[] = [];
  const meta = manifest.bundle as Record<string, unknown>;
  if (text(manifest.schema_version) !== '1.0') errors.push(`schema_version '${text(manifest.schema_version) || '<missing>'}' is not supported`);
  for (const field of ['id', 'name', 'version', 'role', 'description', 'author', 'license']) if (!text(meta[field])) errors.push(`Missing required field: bundle.${field}.`);
  const requires = manifest.requires ?? {};
  if (!isObject(requires)) throw new Error("'requires' must be a mapping when present.");
  if (!text(requires.speckit_version)) errors.push('Missing required field: requires.speckit_version.');
  if (text(meta.version) && !SEMVER.test(text(meta.version))) errors.push(`bundle.version '${text(meta.version)}' is not valid semver.`);
  const provides = manifest.provides ?? {};
  if (!isObject(provides)) throw new Error("'provides' must be a mapping when present.");
  const out: Omit<InstalledComponent, 'how' | 'path'>[] = [];
  for (const kind of ['extensions', 'presets', 'steps', 'workflows'] as const) {
    const list = provides[kind] ?? [];
    if (!Array.isArray(list)) throw new Error(`provides.${kind} must be a list when present.`);
    for (const item of list as unknown[]) {
      if (!isObject(item)) throw new Error(`Each provides.${kind} entry must be a mapping.`);
      const id = text(item.id);
      const version = item.version ? String(item.version).trim() : null;
      if (!id) errors.push(`A ${kind.slice(0, -1)} entry is missing its 'id'.`);
      if (kind !== 'steps' && !version) errors.push(`${kind.slice(0, -1)} '${id || '<unknown>'}' must be pinned to a 'version'.`);
      if (version && !SEMVER.test(version)) errors.push(`${kind.slice(0, -1)} '${id}' has invalid version '${version}'.`);
      out.push({ kind, id, version });
    }
  }
  if (errors.length) throw new Error(`Downloaded bundle '${text(meta.id)}' contains an invalid bundle manifest:\n  - ${errors.join('\n  - ')}`);
  return out;
}

async function bundleCatalog(source: BundleSourceRef, headers: RequestHeaders): Promise<Map<string, Record<string, unknown>>> {
  if (source.url === 'builtin://default') return new Map();
  if (source.url.startsWith('builtin://')) throw new Error(`Failed to load catalog '${source.id}' (${source.url}): the built-in ${source.url.slice(10)} catalog is on the internet`);
  checkUrl(source.url, `Catalog '${source.id}' URL`);
  const res = await get(source.url, headers, `bundle catalog '${source.id}'`, MAX_CATALOG);
  if (res.status !== 200) throw new Error(`Failed to load catalog '${source.id}' (${source.url}): HTTP Error ${res.status}`);
  const data = JSON.parse(res.bytes.toString('utf8')) as unknown;
  if (!isObject(data)) throw new Error('Catalog payload must be a JSON object.');
  if (!isObject(data.bundles)) throw new Error("Catalog payload is missing a 'bundles' object.");
  const entries = new Map<string, Record<string, unknown>>();
  for (const [key, value] of Object.entries(data.bundles)) {
    if (!isObject(value)) throw new Error('Each catalog entry must be a mapping.');
    if (!text(value.id)) throw new Error(`Catalog entry for '${key}' is missing its 'id' field.`);
    if (text(value.id) !== key) throw new Error(`Catalog entry id mismatch: key '${key}' != entry id '${text(value.id)}'.`);
    if (value.verified !== undefined && typeof value.verified !== 'boolean') throw new Error(`Catalog entry '${key}': 'verified' must be a boolean (true/false).`);
    if (value.tags !== undefined && value.tags !== null && !Array.isArray(value.tags)) throw new Error(`Catalog entry '${key}': 'tags' must be a list of strings.`);
    entries.set(key, value);
  }
  return entries;
}

// ---- Catalogs ---------------------------------------------------------------------------------------------------

type Section = (typeof SECTION)[keyof typeof SECTION];

/** One catalog's entries by id. Extension, preset and integration catalogs need `schema_version` and a map. */
export async function fetchCatalogEntries(catalogUrl: string, section: Exclude<Section, 'bundles'>, headers: RequestHeaders = {}): Promise<Map<string, Record<string, unknown>>> {
  checkUrl(catalogUrl, 'Catalog URL');
  const res = await get(catalogUrl, headers, 'catalog', section === 'integrations' ? MiB : MAX_CATALOG);
  if (res.status !== 200) throw new Error(`Failed to fetch catalog: HTTP ${res.status}`);
  const catalog = JSON.parse(res.bytes.toString('utf8')) as unknown;
  if (!isObject(catalog)) throw new Error('catalog is not a JSON object');
  const strict = section === 'extensions' || section === 'presets' || section === 'integrations';
  if (strict && !('schema_version' in catalog)) throw new Error('catalog has no schema_version');
  const map = catalog[section];
  const entries = new Map<string, Record<string, unknown>>();
  if (isObject(map)) {
    for (const [key, value] of Object.entries(map)) if (isObject(value)) entries.set(key, { ...value, id: key });
  } else if (Array.isArray(map) && (section === 'workflows' || section === 'steps')) {
    for (const value of map) if (isObject(value) && value.id !== undefined && value.id !== null && String(value.id).trim()) entries.set(String(value.id).trim(), { ...value, id: String(value.id).trim() });
  } else if (strict || map !== undefined) {
    throw new Error(`catalog has no ${section} object`);
  }
  return entries;
}

function stackOf(catalogs: Catalogs): CatalogRef[] {
  if (typeof catalogs === 'string') return [{ url: catalogs, installAllowed: true, name: 'custom', priority: 1 }];
  return [...catalogs].sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0));
}

/**
 * The entry a kind's stack gives for an id: every catalog merged, the lowest priority number winning; a catalog that
 * cannot be read is skipped (as the CLI warns and goes on), and it is an error only when none can be.
 */
async function lookup(catalogs: Catalogs, section: Exclude<Section, 'bundles'>, id: string, headers: RequestHeaders): Promise<{ entry: Record<string, unknown>; source: CatalogRef } | null> {
  const stack = stackOf(catalogs);
  let failures = 0;
  let lastError: unknown;
  for (const source of stack) {
    let entries: Map<string, Record<string, unknown>>;
    try {
      entries = await fetchCatalogEntries(source.url, section, headers);
    } catch (e) {
      failures += 1;
      lastError = e;
      continue;
    }
    const entry = entries.get(id);
    if (entry) return { entry, source };
  }
  if (stack.length > 0 && failures === stack.length) throw new Error(`Failed to fetch any ${section} catalog: ${String((lastError as Error)?.message ?? lastError)}`);
  return null;
}

async function mergedEntries(catalogs: Catalogs, section: Exclude<Section, 'bundles'>, headers: RequestHeaders): Promise<Map<string, Record<string, unknown>>> {
  const stack = stackOf(catalogs);
  const merged = new Map<string, Record<string, unknown>>();
  let failures = 0;
  for (const source of [...stack].reverse()) {
    try {
      for (const [key, entry] of await fetchCatalogEntries(source.url, section, headers)) merged.set(key, { ...entry, _catalog_name: source.name, _install_allowed: source.installAllowed });
    } catch {
      failures += 1;
    }
  }
  if (stack.length > 0 && failures === stack.length) throw new Error(`Failed to fetch any ${section} catalog`);
  return merged;
}

// ---- HTTP -------------------------------------------------------------------------------------------------------

interface Got {
  status: number;
  bytes: Buffer;
  finalUrl: string;
  contentType: string | null;
}

/**
 * A GET as the CLI's client makes it: each redirect hop checked (https, or http within loopback; never from a remote
 * host to a local one), Authorization kept only on the same host without a downgrade, the body read up to a limit;
 * with a header list, the next set on 401/403.
 */
async function get(url: string, headers: RequestHeaders, what: string, maxBytes: number): Promise<Got> {
  const attempts = typeof headers === 'function' ? headers(url) : [headers];
  let last: Got | undefined;
  for (const attempt of attempts.length ? attempts : [{}]) {
    last = await getOnce(url, attempt, what, maxBytes);
    if (last.status !== 401 && last.status !== 403) return last;
  }
  return last!;
}

async function getOnce(url: string, headers: Record<string, string>, what: string, maxBytes: number): Promise<Got> {
  let current = url;
  let sent = { ...headers };
  for (let hop = 0; hop <= 10; hop += 1) {
    const res = await fetch(current, { headers: sent, redirect: 'manual' });
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel();
      const next = new URL(res.headers.get('location')!, current).toString();
      checkUrl(next, `${what} redirect`);
      if (!isLocal(current) && isLocal(next)) throw new Error(`unsafe redirect to ${next}`);
      const from = new URL(current);
      const to = new URL(next);
      if (from.hostname !== to.hostname || (from.protocol === 'https:' && to.protocol !== 'https:')) {
        sent = Object.fromEntries(Object.entries(sent).filter(([k]) => k.toLowerCase() !== 'authorization'));
      }
      current = next;
      continue;
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > maxBytes) throw new Error(`${what} larger than ${maxBytes} bytes`);
    return { status: res.status, bytes, finalUrl: current, contentType: res.headers.get('content-type') };
  }
  throw new Error('too many redirects');
}

function isLocal(raw: string): boolean {
  const host = new URL(raw).hostname.replace(/^\[(.*)\]$/, '$1');
  return LOOPBACK.has(host) || /^127\./.test(host);
}

function checkUrl(raw: string, what: string): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`${what} is malformed: ${raw}`);
  }
  if (url.protocol === 'https:' && url.hostname) return;
  if (url.protocol === 'http:' && isLocal(raw)) return;
  throw new Error(`${what} must use HTTPS`);
}

function checkSha256(entry: Record<string, unknown>, bytes: Buffer): void {
  if (!('sha256' in entry) || entry.sha256 === null || entry.sha256 === undefined) return;
  const expected = String(entry.sha256).trim().replace(/^sha256:/i, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(expected)) throw new Error('invalid sha256 in catalog');
  if (createHash('sha256').update(bytes).digest('hex') !== expected) throw new Error('Integrity check failed');
}

// ---- Archives ---------------------------------------------------------------------------------------------------

type ArchiveFormat = 'zip' | 'tar.gz';

function formatOfName(raw: string): ArchiveFormat | null {
  let path: string;
  try {
    path = new URL(raw).pathname.toLowerCase();
  } catch {
    return null;
  }
  if (path.endsWith('.tar.gz') || path.endsWith('.tgz')) return 'tar.gz';
  if (path.endsWith('.zip')) return 'zip';
  return null;
}

function formatOfContentType(type: string | null): ArchiveFormat | null {
  const media = (type ?? '').split(';')[0]!.trim().toLowerCase();
  if (['application/gzip', 'application/x-gzip', 'application/x-tar+gzip'].includes(media)) return 'tar.gz';
  if (['application/zip', 'application/x-zip-compressed'].includes(media)) return 'zip';
  return null;
}

function sniff(bytes: Buffer): ArchiveFormat | null {
  const sig = bytes.subarray(0, 4).toString('latin1');
  if (['PK\x03\x04', 'PK\x05\x06', 'PK\x07\x08'].includes(sig)) return 'zip';
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return 'tar.gz';
  return null;
}

const DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;

/** The CLI's name rules for a member; returns its parts. */
function memberParts(raw: string, label: string): string[] {
  const name = raw.replaceAll('\\', '/');
  const bare = name.endsWith('/') ? name.slice(0, -1) : name;
  const bad = (why: string) => new Error(`Unsafe path in ${label} archive: '${raw}' (${why})`);
  if (!bare) throw bad('empty');
  if (Buffer.byteLength(bare) > 4096) throw bad('too long');
  if (bare.startsWith('/') || /^[A-Za-z]:/.test(bare)) throw bad('absolute');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(bare)) throw bad('control character');
  if (/[<>:"|?*]/.test(bare)) throw bad('reserved character');
  const parts = bare.split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') throw bad('potential path traversal');
    if (Buffer.byteLength(part) > 255) throw bad('component too long');
    if (part !== part.trim() || part.endsWith('.')) throw bad('leading or trailing space or dot');
    if (DEVICE.test(part)) throw bad('reserved device name');
  }
  return parts;
}

/** Collisions after casefold + NFC, and a file that is also a directory. */
class PathSet {
  private readonly seen = new Map<string, boolean>();
  add(parts: string[], isDir: boolean, raw: string, label: string): void {
    const key = parts.map((p) => p.normalize('NFC').toLowerCase());
    const full = key.join('/');
    if (this.seen.has(full)) throw new Error(`Conflicting path in ${label} archive: ${raw}`);
    for (let i = 1; i < key.length; i += 1) if (this.seen.get(key.slice(0, i).join('/')) === false) throw new Error(`Conflicting path in ${label} archive: ${raw}`);
    if (!isDir) for (const other of this.seen.keys()) if (other.startsWith(`${full}/`)) throw new Error(`Conflicting path in ${label} archive: ${raw}`);
    this.seen.set(full, isDir);
  }
}

/** Zip: stored or deflated, no ZIP64, no symlinks, ≤ 512 entries, ≤ 10 MiB a member, ≤ 50 MiB in total. */
function safeExtractZip(bytes: Buffer, dest: string): Promise<void> {
  return new Promise((done, fail) => {
    yauzl.fromBuffer(bytes, { lazyEntries: true, autoClose: false, decodeStrings: true, strictFileNames: false, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) return fail(err ?? new Error('not a zip'));
      const files: { entry: yauzl.Entry; target: string }[] = [];
      const paths = new PathSet();
      let total = 0;
      let count = 0;
      const stop = (e: Error) => {
        zip.close();
        fail(e);
      };
      zip.on('error', stop);
      zip.on('entry', (entry: yauzl.Entry) => {
        try {
          count += 1;
          if (count > MAX_ENTRIES) throw new Error(`ZIP archive contains too many entries (${count} > ${MAX_ENTRIES})`);
          const name = entry.fileName;
          const isDir = name.endsWith('/');
          const parts = memberParts(name, 'ZIP');
          const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
          if (mode === 0o120000) throw new Error(`Unsafe symlink in ZIP archive: ${name}`);
          if (![0, 8].includes(entry.compressionMethod)) throw new Error('unsupported compression');
          if (entry.versionNeededToExtract >= 45 || entry.extraFields.some((f) => f.id === 0x0001)) throw new Error('ZIP64 archives are not supported');
          paths.add(parts, isDir, name, 'ZIP');
          const target = resolve(dest, ...parts);
          if (!target.startsWith(dest + sep)) throw new Error(`Unsafe path in ZIP archive: '${name}'`);
          if (!isDir) {
            if (entry.uncompressedSize > MAX_MEMBER) throw new Error(`ZIP member ${name} exceeds maximum size`);
            total += entry.uncompressedSize;
            if (total > MAX_TOTAL) throw new Error('ZIP archive exceeds maximum uncompressed size');
            files.push({ entry, target });
          }
          zip.readEntry();
        } catch (e) {
          stop(e as Error);
        }
      });
      zip.on('end', async () => {
        try {
          for (const { entry, target } of files) {
            await mkdir(dirname(target), { recursive: true });
            await writeFile(target, await new Promise<Buffer>((ok, ko) => {
              zip.openReadStream(entry, (e, stream) => {
                if (e || !stream) return ko(e);
                const chunks: Buffer[] = [];
                stream.on('data', (c: Buffer) => chunks.push(c));
                stream.on('end', () => ok(Buffer.concat(chunks)));
                stream.on('error', ko);
              });
            }));
          }
          zip.close();
          done();
        } catch (e) {
          stop(e as Error);
        }
      });
      zip.readEntry();
    });
  });
}

/** Tar.gz: regular files and directories only (no symlinks, hard links or special files), the same limits as zip. */
async function safeExtractTarGz(bytes: Buffer, dest: string): Promise<void> {
  let tarBytes: Buffer;
  try {
    tarBytes = gunzipSync(bytes, { maxOutputLength: MAX_TOTAL + 8 * MiB });
  } catch (e) {
    throw new Error(`Invalid tar.gz archive: ${(e as Error).message}`);
  }
  const members: { parts: string[]; isDir: boolean; data: Buffer }[] = [];
  await new Promise<void>((done, fail) => {
    const extract = tar.extract();
    const paths = new PathSet();
    let count = 0;
    let total = 0;
    extract.on('entry', (header, stream, next) => {
      stream.on('error', () => {}); // destroying the extractor below errors this stream too; the extractor reports it
      try {
        count += 1;
        if (count > MAX_ENTRIES) throw new Error(`tar.gz archive contains too many entries (${count} > ${MAX_ENTRIES})`);
        const parts = memberParts(header.name, 'tar.gz');
        if (header.type === 'symlink') throw new Error(`Unsafe symlink in tar.gz archive: ${header.name}`);
        if (header.type === 'link') throw new Error(`Unsafe hard link in tar.gz archive: ${header.name}`);
        const isDir = header.type === 'directory';
        if (!isDir && header.type !== 'file' && header.type !== 'contiguous-file') throw new Error(`Unsafe member type in tar.gz archive: ${header.name}`);
        paths.add(parts, isDir, header.name, 'tar.gz');
        const size = header.size ?? 0;
        if (!isDir && size > MAX_MEMBER) throw new Error(`tar.gz member ${header.name} exceeds maximum size`);
        total += isDir ? 0 : size;
        if (total > MAX_TOTAL) throw new Error('tar.gz archive exceeds maximum uncompressed size');
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => {
          members.push({ parts, isDir, data: Buffer.concat(chunks) });
          next();
        });
        stream.resume();
      } catch (e) {
        extract.destroy(e as Error);
      }
    });
    extract.on('finish', done);
    extract.on('error', fail);
    extract.end(tarBytes);
  });
  for (const m of members) {
    const target = resolve(dest, ...m.parts);
    if (!target.startsWith(dest + sep)) throw new Error('Unsafe path in tar.gz archive (potential path traversal)');
    if (m.isDir) await mkdir(target, { recursive: true });
    else {
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, m.data);
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string {
  return value === undefined || value === null ? '' : String(value).trim();
}
