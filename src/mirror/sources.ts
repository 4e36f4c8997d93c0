import { readFileSync } from 'node:fs';
import { CATALOG_KINDS, kindOfSection, type CatalogKind } from '../domain/kinds.js';
import { compileGlob } from './filters.js';
import { urlRefusal } from './urls.js';

/**
 * The `sources` setting: public (or private) catalogs this server mirrors, each with its own limits, in the shape
 * of verdaccio's uplinks (defaults a source overrides; a source that keeps failing is set aside for a while).
 *
 * Only the config file sets it (`sources:`, a YAML list; Helm values write that file): a list of mappings with
 * header references has no sensible environment-variable form, so there is none.
 *
 * Secrets never sit in the config: a header's value names an environment variable or a file
 * (`Authorization: {env: GH_CATALOG_TOKEN, prefix: "Bearer "}`, `{file: /var/run/secrets/token}`), checked when the
 * config loads and read again at each fetch (`resolveHeaders`), so a rotated Secret is picked up and nothing logged
 * from the config holds a credential.
 */

/** The doc's limits (../shared/docs/speckit-kinds.md, "Downloads"): what a source gets unless it says otherwise. */
export const SOURCE_DEFAULTS = {
  /** The CLI's download limit. */
  maxFileBytes: 50 * 1024 ** 2,
  /** Everything one sync downloads, in all. */
  maxTotalBytes: 2 * 1024 ** 3,
  concurrency: 4,
  /** Downloads: the CLI's 60 s. */
  timeoutSeconds: 60,
  /** Catalogs: null takes the CLI's own, 10 s (30 s for workflow and step catalogs); see `catalogTimeoutSeconds`. */
  catalogTimeoutSeconds: null,
  /** As verdaccio's uplinks: after this many failed syncs in a row the source is set aside for `failTimeoutSeconds`. */
  maxFails: 2,
  failTimeoutSeconds: 5 * 60,
} as const;

/** The CLI's catalog timeouts by kind. */
export const CLI_CATALOG_TIMEOUT_SECONDS: Record<CatalogKind, number> = {
  extension: 10,
  preset: 10,
  bundle: 10,
  integration: 10,
  workflow: 30,
  step: 30,
};

/** Where a header's value comes from; never the value itself. */
export type HeaderValueRef = { env: string; prefix?: string } | { file: string; prefix?: string };

export interface Source {
  /** A slug: `[a-z0-9-]`, starting and ending with a letter or digit, at most 63 characters. */
  name: string;
  /** At least one kind. */
  catalogs: Partial<Record<CatalogKind, string>>;
  headers: Record<string, HeaderValueRef>;
  /** Id globs (`*`, `?`); an id must match one. Defaults to `['*']`. */
  allow: string[];
  /** Id globs; a match refuses the id whatever `allow` says. */
  deny: string[];
  /** null: no schedule, syncs only on request. */
  syncIntervalSeconds: number | null;
  maxFileBytes: number;
  maxTotalBytes: number;
  concurrency: number;
  timeoutSeconds: number;
  catalogTimeoutSeconds: number | null;
  maxFails: number;
  failTimeoutSeconds: number;
  /**
   * What is approved as it is mirrored, recorded as `policy:<source>`: ids matching these globs, and (with
   * `verified`) entries the source marks `verified: true`. Everything else waits for a curator.
   */
  autoApprove: { ids: string[]; verified: boolean };
}

const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// RFC 9110 token characters.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Headers the fetcher owns: a source setting them would break framing or routing. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'proxy-connection', 'accept-encoding']);
const KEYS = new Set([
  'name',
  'catalogs',
  'headers',
  'allow',
  'deny',
  'sync_interval',
  'max_file_bytes',
  'max_total_bytes',
  'concurrency',
  'timeout_seconds',
  'catalog_timeout_seconds',
  'max_fails',
  'fail_timeout',
  'auto_approve',
]);

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };
const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** One line naming the source (by name, else by position) and the key. */
class SourceError extends Error {}

/**
 * Parses and checks the `sources` list. Throws an Error whose one-line message names the source and the key, e.g.
 * `source "community": catalogs.extension must be an https URL (http only on loopback)`.
 */
export function parseSources(raw: unknown, env: NodeJS.ProcessEnv = process.env): Source[] {
  if (raw === null || raw === undefined) return [];
  if (!Array.isArray(raw)) throw new Error('must be a list of sources, each a mapping with a name and catalogs');
  const sources: Source[] = [];
  const seen = new Set<string>();
  raw.forEach((item, index) => {
    const label = item && typeof item === 'object' && typeof (item as { name?: unknown }).name === 'string' && (item as { name: string }).name.trim() !== ''
      ? `source "${(item as { name: string }).name}"`
      : `source #${index + 1}`;
    let source: Source;
    try {
      source = parseSource(item, env);
    } catch (err) {
      throw new Error(`${label}: ${(err as Error).message}`);
    }
    if (seen.has(source.name)) throw new Error(`${label}: name is used by another source; names must be unique`);
    seen.add(source.name);
    sources.push(source);
  });
  return sources;
}

function parseSource(raw: unknown, env: NodeJS.ProcessEnv): Source {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new SourceError('must be a mapping with a name and catalogs');
  const item = raw as Record<string, unknown>;
  const unknownKey = Object.keys(item).find((key) => !KEYS.has(key));
  if (unknownKey !== undefined) throw new SourceError(`unknown key ${JSON.stringify(unknownKey)} (known: ${[...KEYS].join(', ')})`);
  const at = <T>(key: string, parse: (value: unknown) => T, fallback: T): T => {
    if (item[key] === undefined || item[key] === null) return fallback;
    try {
      return parse(item[key]);
    } catch (err) {
      throw new SourceError(`${key} ${(err as Error).message}`);
    }
  };
  if (item.name === undefined || item.name === null) throw new SourceError('name is missing');
  const name = at('name', slug, '');
  if (item.catalogs === undefined || item.catalogs === null) throw new SourceError('catalogs is missing: give a catalog URL for at least one kind');
  const catalogs = parseCatalogs(item.catalogs);
  return {
    name,
    catalogs,
    headers: parseHeaders(item.headers, env),
    allow: at('allow', globList, ['*']),
    deny: at('deny', globList, []),
    syncIntervalSeconds: at('sync_interval', syncInterval, null),
    maxFileBytes: at('max_file_bytes', byteSize, SOURCE_DEFAULTS.maxFileBytes),
    maxTotalBytes: at('max_total_bytes', byteSize, SOURCE_DEFAULTS.maxTotalBytes),
    concurrency: at('concurrency', wholeNumber(1, 64), SOURCE_DEFAULTS.concurrency),
    timeoutSeconds: at('timeout_seconds', wholeNumber(1, 3600), SOURCE_DEFAULTS.timeoutSeconds),
    catalogTimeoutSeconds: at('catalog_timeout_seconds', wholeNumber(1, 3600), SOURCE_DEFAULTS.catalogTimeoutSeconds),
    maxFails: at('max_fails', wholeNumber(1, 1000), SOURCE_DEFAULTS.maxFails),
    failTimeoutSeconds: at('fail_timeout', duration(1), SOURCE_DEFAULTS.failTimeoutSeconds),
    autoApprove: at('auto_approve', autoApprove, { ids: [], verified: false }),
  };
}

const autoApprove = (raw: unknown): Source['autoApprove'] => {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('must be a mapping: {ids: [globs], verified: true|false}');
  const { ids, verified, ...rest } = raw as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) throw new Error(`has an unknown key ${JSON.stringify(extra)} (known: ids, verified)`);
  if (verified !== undefined && typeof verified !== 'boolean') throw new Error('verified must be true or false');
  return { ids: ids === undefined ? [] : globList(ids), verified: verified === true };
};

const slug = (raw: unknown): string => {
  if (typeof raw !== 'string' || !NAME.test(raw)) {
    throw new Error(`${JSON.stringify(raw)} must be a slug: lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters`);
  }
  return raw;
};

const wholeNumber = (min: number, max: number) => (raw: unknown): number => {
  const text = String(raw).trim();
  if (typeof raw === 'object' || !/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new Error(`${JSON.stringify(raw)} must be a whole number from ${min} to ${max}`);
  }
  return Number(text);
};

const byteSize = (raw: unknown): number => {
  const match = typeof raw === 'object' ? null : /^(\d+)\s*([a-z]*)$/i.exec(String(raw).trim());
  const unit = match && SIZE_UNITS[match[2]!.toLowerCase()];
  const bytes = match && unit ? Number(match[1]) * unit : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new Error(`${JSON.stringify(raw)} must be a positive number of bytes, optionally with a unit (KiB, MiB, GiB, KB, MB, GB)`);
  }
  return bytes;
};

/** `90s`, `30m`, `6h`, `1d`, `1h30m`; a bare number is seconds. */
export function parseDuration(raw: unknown): number {
  const text = typeof raw === 'number' ? `${raw}s` : typeof raw === 'string' ? raw.trim().toLowerCase() : '';
  if (!/^(\d+[smhd])+$/.test(text)) throw new Error(`${JSON.stringify(raw)} must be a duration such as 90s, 30m, 6h, 1d or 1h30m`);
  let seconds = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)([smhd])/g)) seconds += Number(amount) * DURATION_UNITS[unit!]!;
  if (!Number.isSafeInteger(seconds)) throw new Error(`${JSON.stringify(raw)} is too long`);
  return seconds;
}

const duration = (minSeconds: number) => (raw: unknown): number => {
  const seconds = parseDuration(raw);
  if (seconds < minSeconds) throw new Error(`${JSON.stringify(raw)} must be at least ${minSeconds} s`);
  return seconds;
};

/** Off unless set; at least a minute, so a schedule cannot hammer an upstream. */
const syncInterval = (raw: unknown): number | null => {
  if (raw === false || (typeof raw === 'string' && ['off', 'false', 'never', ''].includes(raw.trim().toLowerCase()))) return null;
  return duration(60)(raw);
};

const globList = (raw: unknown): string[] => {
  const items = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(items)) throw new Error('must be a list of id globs, e.g. ["speckit-*", "adrkit"]');
  return items.map((glob) => {
    if (typeof glob !== 'string') throw new Error(`${JSON.stringify(glob)} must be a string: an id glob`);
    compileGlob(glob);
    return glob;
  });
};

function parseCatalogs(raw: unknown): Partial<Record<CatalogKind, string>> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SourceError(`catalogs must be a mapping of kind to catalog URL (kinds: ${CATALOG_KINDS.join(', ')})`);
  }
  const catalogs: Partial<Record<CatalogKind, string>> = {};
  for (const [key, value] of Object.entries(raw)) {
    // The singular kind, or the catalogs' plural (`extensions`).
    const kind = (CATALOG_KINDS as readonly string[]).includes(key) ? (key as CatalogKind) : kindOfSection(key);
    if (!kind) throw new SourceError(`catalogs.${key} is not a catalog kind (kinds: ${CATALOG_KINDS.join(', ')})`);
    if (catalogs[kind] !== undefined) throw new SourceError(`catalogs.${key} names the ${kind} catalog twice`);
    if (typeof value !== 'string' || value.trim() === '') throw new SourceError(`catalogs.${key} must be a URL`);
    const refusal = catalogUrlRefusal(value.trim());
    if (refusal) throw new SourceError(`catalogs.${key} ${refusal}`);
    catalogs[kind] = value.trim();
  }
  if (Object.keys(catalogs).length === 0) throw new SourceError(`catalogs must name at least one kind (kinds: ${CATALOG_KINDS.join(', ')})`);
  return catalogs;
}

function catalogUrlRefusal(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute https URL (http only on loopback)';
  }
  // A credential in the URL would be a secret in the config and in every log line naming the catalog.
  if (url.username || url.password) return 'must not carry credentials in the URL: use headers with {env: ...} or {file: ...}';
  return urlRefusal(url);
}

function parseHeaders(raw: unknown, env: NodeJS.ProcessEnv): Record<string, HeaderValueRef> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new SourceError('headers must be a mapping of header name to {env: NAME} or {file: PATH}');
  const headers: Record<string, HeaderValueRef> = {};
  const seen = new Set<string>();
  for (const [name, value] of Object.entries(raw)) {
    if (!HEADER_NAME.test(name)) throw new SourceError(`headers.${name} is not a valid header name`);
    if (RESERVED_HEADERS.has(name.toLowerCase())) throw new SourceError(`headers.${name} is set by the fetcher itself and cannot be configured`);
    if (seen.has(name.toLowerCase())) throw new SourceError(`headers.${name} is given twice (header names ignore case)`);
    seen.add(name.toLowerCase());
    const ref = headerRef(name, value);
    // Checked now, so a missing Secret fails at start-up and not at the first sync; read again at each fetch.
    try {
      readHeaderValue(ref, env);
    } catch (err) {
      throw new SourceError(`headers.${name} ${(err as Error).message}`);
    }
    headers[name] = ref;
  }
  return headers;
}

function headerRef(name: string, value: unknown): HeaderValueRef {
  const shape = `headers.${name} must be {env: VARIABLE} or {file: /path}, optionally with a prefix (e.g. "Bearer "), so that no secret is written in the config`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SourceError(shape);
  const ref = value as Record<string, unknown>;
  const keys = Object.keys(ref);
  if (keys.some((key) => !['env', 'file', 'prefix'].includes(key)) || ('env' in ref) === ('file' in ref)) throw new SourceError(shape);
  if (ref.prefix !== undefined && (typeof ref.prefix !== 'string' || /[\r\n\0]/.test(ref.prefix))) {
    throw new SourceError(`headers.${name}.prefix must be a string without line breaks`);
  }
  const prefix = ref.prefix === undefined ? {} : { prefix: ref.prefix as string };
  if ('env' in ref) {
    if (typeof ref.env !== 'string' || !ENV_NAME.test(ref.env)) throw new SourceError(`headers.${name}.env must name an environment variable`);
    return { env: ref.env, ...prefix };
  }
  if (typeof ref.file !== 'string' || !ref.file.startsWith('/')) throw new SourceError(`headers.${name}.file must be an absolute path`);
  return { file: ref.file, ...prefix };
}

/** A header's value, read now. Throws an Error that names where it looked but never shows the value. */
export function readHeaderValue(ref: HeaderValueRef, env: NodeJS.ProcessEnv = process.env): string {
  let value: string;
  if ('env' in ref) {
    const fromEnv = env[ref.env];
    if (fromEnv === undefined || fromEnv.trim() === '') throw new Error(`reads the environment variable ${ref.env}, which is not set`);
    value = fromEnv.trim();
  } else {
    try {
      value = readFileSync(ref.file, 'utf8').trim();
    } catch (err) {
      throw new Error(`reads ${ref.file}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (value === '') throw new Error(`reads ${ref.file}, which is empty`);
  }
  if (/[\r\n\0]/.test(value)) throw new Error(`reads ${'env' in ref ? ref.env : ref.file}, whose value holds a line break`);
  return `${ref.prefix ?? ''}${value}`;
}

/** The source's headers with their values, read now (a rotated Secret is picked up). Never log the result. */
export function resolveHeaders(source: Pick<Source, 'name' | 'headers'>, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, ref] of Object.entries(source.headers)) {
    try {
      headers[name] = readHeaderValue(ref, env);
    } catch (err) {
      throw new Error(`source "${source.name}": headers.${name} ${(err as Error).message}`);
    }
  }
  return headers;
}

/** The hosts (`host:port` as URL.host gives it) the source's headers may go to: those of its catalog URLs. */
export function credentialHosts(source: Pick<Source, 'catalogs'>): string[] {
  return [...new Set(Object.values(source.catalogs).map((url) => new URL(url).host))];
}

export function catalogTimeoutSeconds(source: Pick<Source, 'catalogTimeoutSeconds'>, kind: CatalogKind): number {
  return source.catalogTimeoutSeconds ?? CLI_CATALOG_TIMEOUT_SECONDS[kind];
}

/**
 * verdaccio's `max_fails`/`fail_timeout` for one source: after `maxFails` failures in a row the source is set aside
 * (`available()` is false) for `failTimeoutSeconds`; a success clears the count. It never blocks other sources.
 */
export class FailureGate {
  private fails = 0;
  private until = 0;

  constructor(
    private readonly settings: Pick<Source, 'maxFails' | 'failTimeoutSeconds'>,
    private readonly now: () => number = Date.now,
  ) {}

  available(): boolean {
    return this.now() >= this.until;
  }

  /** When the source may be tried again (ms since the epoch), or null when it may now. */
  setAsideUntil(): number | null {
    return this.available() ? null : this.until;
  }

  succeeded(): void {
    this.fails = 0;
    this.until = 0;
  }

  failed(): void {
    this.fails += 1;
    if (this.fails >= this.settings.maxFails) {
      this.until = this.now() + this.settings.failTimeoutSeconds * 1000;
      this.fails = 0;
    }
  }
}
