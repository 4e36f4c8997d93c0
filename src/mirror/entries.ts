import { CATALOG_SECTION, KIND_RULES, type CatalogKind } from '../domain/kinds.js';
import type { Refusal } from './filters.js';

/**
 * A catalog document of any kind, as upstream's CLI reads it (../shared/docs/speckit-kinds.md), made into one list
 * of entries a sync can filter and fetch. What the CLI would refuse or could not install is refused here, each with
 * its reason; what it ignores with a warning is kept with the warning.
 */

/** The CLI's step limit: step.yml, __init__.py and the extra files. */
export const MAX_STEP_FILES = 512;

export interface StepFile {
  /** Relative path inside the step's directory. */
  path: string;
  url: string;
}

export type EntryDownload =
  /** `download_url` (extensions, presets, bundles) or `url` (workflows): one archive or YAML file. */
  | { type: 'url'; url: string }
  /** A step: `step.yml`, `__init__.py` and `extra_files`, each fetched on its own. */
  | { type: 'step-files'; files: StepFile[] }
  /** Nothing to fetch: integrations, `bundled` entries the CLI installs from its own assets, entries without a URL. */
  | { type: 'none'; reason: string };

export interface CatalogEntry {
  kind: CatalogKind;
  id: string;
  version: string;
  download: EntryDownload;
  /** As the catalog declares it (bare hex, or with a `sha256:` prefix); absent when the catalog gives none. */
  sha256?: string;
  /** The entry as the catalog has it, for the mirrored catalog and for provenance. */
  fields: Record<string, unknown>;
  /** What the CLI would ignore with a warning. */
  warnings: string[];
}

export interface NormalisedCatalog {
  kind: CatalogKind;
  entries: CatalogEntry[];
  /** Entries that cannot be mirrored, each with its reason (the filter is `catalog`). */
  refused: Refusal<{ kind: CatalogKind; id: string; version: string | null }>[];
}

export class CatalogFormatError extends Error {
  override name = 'CatalogFormatError';
}

/** Ids the mirror takes: what a file and a URL path can hold without escaping. */
const ID = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$/;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The CLI's checks on the document itself; throws CatalogFormatError. */
function sectionOf(kind: CatalogKind, document: unknown): Array<[string | null, unknown]> {
  const section = CATALOG_SECTION[kind];
  if (!isObject(document)) throw new CatalogFormatError(`the ${kind} catalog is not a JSON object`);
  const needsSchemaVersion = kind === 'extension' || kind === 'preset' || kind === 'integration';
  if (needsSchemaVersion && !('schema_version' in document)) throw new CatalogFormatError(`the ${kind} catalog has no schema_version`);
  const value = document[section];
  if (value === undefined) {
    // Workflow and step catalogs default to empty; the others need the key.
    if (kind === 'workflow' || kind === 'step') return [];
    throw new CatalogFormatError(`the ${kind} catalog has no "${section}" key`);
  }
  if (isObject(value)) return Object.entries(value);
  if (Array.isArray(value) && (kind === 'workflow' || kind === 'step')) return value.map((item) => [null, item]);
  throw new CatalogFormatError(`"${section}" in the ${kind} catalog must be an object${kind === 'workflow' || kind === 'step' ? ' or a list' : ''}`);
}

export function normaliseCatalog(kind: CatalogKind, document: unknown): NormalisedCatalog {
  const entries: CatalogEntry[] = [];
  const refused: NormalisedCatalog['refused'] = [];
  const seen = new Set<string>();
  sectionOf(kind, document).forEach(([key, raw], index) => {
    const rawId = key ?? (isObject(raw) ? raw.id : undefined);
    const id = typeof rawId === 'string' ? rawId.trim() : typeof rawId === 'number' ? String(rawId) : '';
    const version = isObject(raw) && typeof raw.version === 'string' && raw.version.trim() !== '' ? raw.version.trim() : null;
    const refuse = (reason: string) => refused.push({ entry: { kind, id: id || `#${index + 1}`, version }, filter: 'catalog', reason });
    if (!isObject(raw)) return refuse('the entry is not an object');
    // A list entry without an id is skipped by the CLI; the mirror says so.
    if (id === '') return refuse('the entry has no id');
    if (!ID.test(id)) return refuse(`the id ${JSON.stringify(id)} is not a plain id (letters, digits, ".", "_", "-")`);
    if (key !== null && raw.id !== undefined && raw.id !== key) return refuse(`the entry's id ${JSON.stringify(raw.id)} differs from its key ${JSON.stringify(key)}`);
    if (version === null) return refuse('the entry has no version');
    // Later entries win in the CLI (a list read in order); a mirror keeps the first and says why.
    if (seen.has(id.toLowerCase())) return refuse(`the id ${id} appears more than once in the catalog`);
    seen.add(id.toLowerCase());
    let entry: CatalogEntry;
    try {
      entry = { kind, id, version, ...downloadOf(kind, raw), fields: raw };
    } catch (err) {
      if (err instanceof CatalogFormatError) return refuse(err.message);
      throw err;
    }
    entries.push(entry);
  });
  return { kind, entries, refused };
}

function downloadOf(kind: CatalogKind, raw: Record<string, unknown>): Pick<CatalogEntry, 'download' | 'sha256' | 'warnings'> {
  const warnings: string[] = [];
  const rule = KIND_RULES[kind].download;
  // Steps are never checked against a sha256 by the CLI; integrations download nothing.
  const sha256 = rule === 'download_url' || rule === 'url' ? shaField(raw) : {};
  if (rule === null) return { download: { type: 'none', reason: `${kind} entries are search and info only` }, warnings };
  if (rule === 'step-files') return { download: { type: 'step-files', files: stepFiles(raw, warnings) }, warnings };
  const url = raw[rule];
  if (url === undefined || url === null || (typeof url === 'string' && url.trim() === '')) {
    const reason = raw.bundled === true ? 'bundled with the CLI, which installs it from its own assets' : `the entry has no ${rule}`;
    return { download: { type: 'none', reason }, ...sha256, warnings };
  }
  if (typeof url !== 'string') throw new CatalogFormatError(`${rule} must be a string`);
  return { download: { type: 'url', url: url.trim() }, ...sha256, warnings };
}

function shaField(raw: Record<string, unknown>): { sha256?: string } {
  if (raw.sha256 === undefined || raw.sha256 === null) return {};
  // Declared but blank or malformed is an authoring error: kept as declared, refused by verifySha256 at download.
  if (typeof raw.sha256 !== 'string') throw new CatalogFormatError('sha256 must be a string');
  return { sha256: raw.sha256 };
}

/** The CLI's reading of a step entry (`workflows/_commands.py`): step_yml_url wins over url; init_url or derived. */
function stepFiles(raw: Record<string, unknown>, warnings: string[]): StepFile[] {
  const declared = raw.step_yml_url;
  if (declared !== undefined && declared !== null && typeof declared !== 'string') throw new CatalogFormatError('step_yml_url must be a string');
  const stepUrl = (declared as string | undefined) || raw.url;
  if (stepUrl === undefined || stepUrl === null || (typeof stepUrl === 'string' && stepUrl.trim() === '')) throw new CatalogFormatError('the entry has no step_yml_url or url');
  if (typeof stepUrl !== 'string') throw new CatalogFormatError('url must be a string');
  let initUrl = raw.init_url;
  if (initUrl !== undefined && initUrl !== null && (typeof initUrl !== 'string' || initUrl.trim() === '')) throw new CatalogFormatError('init_url must be a non-empty string');
  if (!initUrl) {
    if (!stepUrl.endsWith('step.yml')) throw new CatalogFormatError(`no init_url, and none can be derived from ${stepUrl} (it does not end in step.yml)`);
    initUrl = `${stepUrl.slice(0, -'step.yml'.length)}__init__.py`;
  }
  const files: StepFile[] = [
    { path: 'step.yml', url: stepUrl },
    { path: '__init__.py', url: initUrl as string },
  ];
  const extra = raw.extra_files;
  if (extra === undefined || extra === null) return files;
  if (!isObject(extra)) {
    warnings.push('extra_files is not a mapping: the CLI ignores it, so no extra files are mirrored');
    return files;
  }
  const taken = new Set(['step.yml', '__init__.py']);
  for (const [path, url] of Object.entries(extra)) {
    if (path.trim() === '') throw new CatalogFormatError('extra_files has an empty path');
    const parts = path.replace(/\\/g, '/').split('/');
    // step.yml and __init__.py (in any case) are the required files; the CLI ignores them here.
    if (parts.length === 1 && ['step.yml', '__init__.py'].includes(parts[0]!.toLowerCase())) continue;
    if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || parts.some((part) => part === '' || part === '.' || part === '..')) {
      throw new CatalogFormatError(`extra_files path ${JSON.stringify(path)} is not a relative file path inside the step`);
    }
    if (typeof url !== 'string' || url.trim() === '') throw new CatalogFormatError(`extra_files ${JSON.stringify(path)} has no URL`);
    const normal = parts.join('/');
    if (taken.has(normal.toLowerCase())) throw new CatalogFormatError(`extra_files names ${JSON.stringify(path)} twice`);
    taken.add(normal.toLowerCase());
    files.push({ path: normal, url: url.trim() });
  }
  if (files.length > MAX_STEP_FILES) throw new CatalogFormatError(`the step has ${files.length} files, more than the CLI's ${MAX_STEP_FILES}`);
  return files;
}
