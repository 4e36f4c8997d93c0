import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { parseYaml } from './lazy-yaml.js';
import { MIN_TOKEN_LENGTH } from './auth/tokens.js';
import type { ReadAccess } from './http/auth.js';
import { parseSources, type Source } from './mirror/sources.js';
import type { S3Settings } from './storage/s3.js';

export const DEFAULT_CONFIG_PATH = '/etc/release-server/config.yaml';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** What Express's `trust proxy` setting takes: on/off, a hop count, or the addresses to trust. */
export type TrustProxy = boolean | number | string;

export type StorageBackend = 'filesystem' | 's3';

/**
 * Forwarded headers are taken from the loopback, link-local and private (cluster) addresses only: an ingress or a
 * sidecar, never a client on the internet that writes its own X-Forwarded-For.
 */
export const DEFAULT_TRUST_PROXY = 'loopback, linklocal, uniquelocal';

export interface Config {
  /** The YAML file read, or null when there was none. */
  configFile: string | null;
  port: number;
  host: string;
  storageBackend: StorageBackend;
  /** For the filesystem backend. */
  storagePath: string;
  /** For the s3 backend (credentials come from the AWS SDK's standard sources); null for filesystem. */
  s3: S3Settings | null;
  /** How often a replica on s3 looks for other replicas' writes. */
  indexRefreshSeconds: number;
  /** With s3: answer downloads with a redirect to a presigned URL valid this long; null serves the bytes. */
  downloadRedirectSeconds: number | null;
  /** 0 keeps every package. */
  maxPackages: number;
  /** Newest releases (tags) kept; 0 keeps every release. */
  maxReleases: number;
  /** Versions kept of each extension, preset and workflow; 0 keeps all. */
  maxVersionsPerPackage: number;
  /** Uploads join their catalog at once; off, they wait as mirrored packages do, for a curator's approval. */
  approveUploads: boolean;
  /** The token named `default` (write, delete); null when none is configured. */
  authToken: string | null;
  /** YAML list of {name, scopes, sha256}, reloaded when it changes. */
  tokensFile: string | null;
  /** Whether reads need a token. */
  readAccess: ReadAccess;
  /** Failed authentications per client address and minute before it gets 429; 0 turns the limit off. */
  authFailuresPerMinute: number;
  maxUploadBytes: number;
  /** Absolute base URL clients reach the server at, without a trailing slash. */
  publicUrl: string | null;
  trustProxy: TrustProxy;
  /** Open connections at once, in all; past it new ones are closed at once. */
  maxConnections: number;
  /** Open connections at once from one client address (behind a proxy: the proxy's). */
  maxConnectionsPerAddress: number;
  /** A client must have sent its request line and headers within this. */
  headersTimeoutSeconds: number;
  /** A connection on which nothing moved this long is closed. */
  idleTimeoutSeconds: number;
  logLevel: LogLevel;
  /** Check every JSON response against the contract (see README for its measured cost). */
  validateResponses: boolean;
  /** Catalogs to mirror (mirror/sources.ts); only the config file's `sources:` list sets them. */
  sources: Source[];
  /** Processes serving the port over the one store (src/cluster.ts); `auto` is one per core. 1: this process serves. */
  workers: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const SIZE_UNITS: Record<string, number> = { '': 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/** `env` is loadConfig's environment, for values that refer to it (a source's header `{env: NAME}`). */
type Parser<T> = (raw: unknown, env?: NodeJS.ProcessEnv) => T;

interface Setting<T> {
  /** null: the config file only (a structure with no sensible environment-variable form). */
  env: string | null;
  default: T;
  parse: Parser<T>;
  /** Never echo the value in an error. */
  secret?: boolean;
  /** The value is a structure: its parser's message names the item and key, and the value is not echoed. */
  structured?: boolean;
}

const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> => (raw) => {
  const text = String(raw).trim();
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new Error(`must be a whole number from ${min} to ${max}`);
  }
  return Number(text);
};

/** `auto` (one per core the process may use) or a count. */
const workerCount: Parser<number> = (raw) => {
  if (String(raw).trim().toLowerCase() === 'auto') return availableParallelism();
  if (!/^\s*\d+\s*$/.test(String(raw)) || Number(raw) < 1 || Number(raw) > 256) throw new Error('must be auto or a whole number from 1 to 256');
  return Number(raw);
};

const byteSize: Parser<number> = (raw) => {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(String(raw).trim());
  const unit = match && SIZE_UNITS[match[2]!.toLowerCase()];
  const bytes = match && unit ? Number(match[1]) * unit : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new Error('must be a positive number of bytes, optionally with a unit (KiB, MiB, GiB, KB, MB, GB)');
  }
  return bytes;
};

const text: Parser<string> = (raw) => {
  if (typeof raw !== 'string' && typeof raw !== 'number') throw new Error('must be a string');
  const value = String(raw).trim();
  if (value === '') throw new Error('must not be empty');
  return value;
};

const optionalText: Parser<string | null> = (raw) => text(raw);

const token: Parser<string | null> = (raw) => {
  const value = text(raw);
  if (value.length < MIN_TOKEN_LENGTH) throw new Error(`is shorter than ${MIN_TOKEN_LENGTH} characters`);
  return value;
};

const readAccess: Parser<ReadAccess> = (raw) => {
  const value = String(raw).trim().toLowerCase();
  if (value !== 'public' && value !== 'token') throw new Error('must be public or token');
  return value;
};

const publicUrl: Parser<string | null> = (raw) => {
  const value = text(raw);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error('must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('must be an absolute http(s) URL');
  if (url.search || url.hash) throw new Error('must not have a query or fragment');
  return value.replace(/\/+$/, '');
};

const boolean: Parser<boolean> = (raw) => {
  if (typeof raw === 'boolean') return raw;
  const value = String(raw).trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(value)) return true;
  if (['false', '0', 'no', 'off'].includes(value)) return false;
  throw new Error('must be true or false');
};

const trustProxy: Parser<TrustProxy> = (raw) => {
  if (typeof raw === 'number') return wholeNumber(0, 100)(raw);
  const value = String(raw).trim();
  if (/^\d+$/.test(value)) return wholeNumber(0, 100)(value);
  try {
    return boolean(value);
  } catch {
    // Addresses or subnets Express can trust, e.g. "loopback, 10.0.0.0/8": checked here, or Express would throw
    // at start-up with a stack trace instead of this message.
    const items = value.split(',').map((item) => item.trim());
    if (items.length > 0 && items.every(isTrustedProxyItem)) return items.join(', ');
    throw new Error('must be true, false, a hop count, or a comma-separated list of addresses, subnets (10.0.0.0/8) or loopback, linklocal, uniquelocal');
  }
};

function isTrustedProxyItem(item: string): boolean {
  if (item === 'loopback' || item === 'linklocal' || item === 'uniquelocal') return true;
  const [address, prefix, ...rest] = item.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  if (/^\d{1,3}$/.test(prefix)) return Number(prefix) <= (family === 4 ? 32 : 128);
  // A netmask, as Express also takes: 10.0.0.0/255.0.0.0.
  return family === 4 && isIP(prefix) === 4;
}

const endpointUrl: Parser<string | null> = (raw) => {
  const value = text(raw);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error('must be an http or https URL, e.g. https://s3.eu-west-1.amazonaws.com');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('must be an http or https URL');
  return value.replace(/\/+$/, '');
};

const storageBackend: Parser<StorageBackend> = (raw) => {
  const value = String(raw).trim().toLowerCase();
  if (value !== 'filesystem' && value !== 's3') throw new Error('must be filesystem or s3');
  return value;
};

/** `release-server` and `/release-server/` both mean every key under `release-server/`. */
const keyPrefix: Parser<string> = (raw) => {
  const value = String(raw).trim().replace(/^\/+/, '').replace(/\/*$/, '');
  return value === '' ? '' : `${value}/`;
};

const logLevel: Parser<LogLevel> = (raw) => {
  const value = String(raw).trim().toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(value)) throw new Error(`must be one of ${LOG_LEVELS.join(', ')}`);
  return value;
};

/** Every configuration key: its environment variable (which wins over the file), default and parser. */
const SETTINGS = {
  port: { env: 'PORT', default: 8000, parse: wholeNumber(0, 65535) },
  host: { env: 'HOST', default: '0.0.0.0', parse: text },
  storage_backend: { env: 'STORAGE_BACKEND', default: 'filesystem', parse: storageBackend },
  storage_path: { env: 'STORAGE_PATH', default: './data', parse: text },
  s3_endpoint: { env: 'S3_ENDPOINT', default: null, parse: endpointUrl },
  s3_region: { env: 'S3_REGION', default: 'us-east-1', parse: text },
  s3_bucket: { env: 'S3_BUCKET', default: null, parse: optionalText },
  s3_prefix: { env: 'S3_PREFIX', default: '', parse: keyPrefix },
  s3_force_path_style: { env: 'S3_FORCE_PATH_STYLE', default: false, parse: boolean },
  index_refresh_seconds: { env: 'INDEX_REFRESH_SECONDS', default: 2, parse: wholeNumber(1, 3600) },
  download_redirect: { env: 'DOWNLOAD_REDIRECT', default: false, parse: boolean },
  download_redirect_expiry_seconds: { env: 'DOWNLOAD_REDIRECT_EXPIRY_SECONDS', default: 900, parse: wholeNumber(1, 7 * 24 * 3600) },
  max_packages: { env: 'MAX_PACKAGES', default: 0, parse: wholeNumber(0) },
  max_releases: { env: 'MAX_RELEASES', default: 5, parse: wholeNumber(0) },
  max_versions_per_package: { env: 'MAX_VERSIONS_PER_PACKAGE', default: 10, parse: wholeNumber(0) },
  approve_uploads: { env: 'APPROVE_UPLOADS', default: true, parse: boolean },
  auth_token: { env: 'AUTH_TOKEN', default: null, parse: token, secret: true },
  tokens_file: { env: 'TOKENS_FILE', default: null, parse: optionalText },
  read_access: { env: 'READ_ACCESS', default: 'public', parse: readAccess },
  auth_failures_per_minute: { env: 'AUTH_FAILURES_PER_MINUTE', default: 10, parse: wholeNumber(0, 1_000_000) },
  max_upload_bytes: { env: 'MAX_UPLOAD_BYTES', default: 512 * 1024 ** 2, parse: byteSize },
  public_url: { env: 'PUBLIC_URL', default: null, parse: publicUrl },
  trust_proxy: { env: 'TRUST_PROXY', default: DEFAULT_TRUST_PROXY, parse: trustProxy },
  max_connections: { env: 'MAX_CONNECTIONS', default: 4096, parse: wholeNumber(1, 1_000_000) },
  max_connections_per_address: { env: 'MAX_CONNECTIONS_PER_ADDRESS', default: 256, parse: wholeNumber(1, 1_000_000) },
  headers_timeout_seconds: { env: 'HEADERS_TIMEOUT_SECONDS', default: 30, parse: wholeNumber(1, 3600) },
  idle_timeout_seconds: { env: 'IDLE_TIMEOUT_SECONDS', default: 120, parse: wholeNumber(1, 86_400) },
  log_level: { env: 'LOG_LEVEL', default: 'info', parse: logLevel },
  validate_responses: { env: 'VALIDATE_RESPONSES', default: true, parse: boolean },
  workers: { env: 'WORKERS', default: 1, parse: workerCount },
  // A list of mappings with header references: set in the config file (Helm values write it), never from the env.
  sources: { env: null, default: [] as Source[], parse: (raw: unknown, env?: NodeJS.ProcessEnv) => parseSources(raw, env), structured: true },
} satisfies Record<string, Setting<unknown>>;

type Key = keyof typeof SETTINGS;
type Values = { [K in Key]: ReturnType<(typeof SETTINGS)[K]['parse']> };

/**
 * Reads the YAML file at `CONFIG_PATH` (a missing file is fine), then the environment, once. Throws a
 * ConfigError naming the key and the value at the first bad setting.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const path = env.CONFIG_PATH || DEFAULT_CONFIG_PATH;
  const file = readConfigFile(path);
  const values = {} as Record<Key, unknown>;
  for (const key of Object.keys(SETTINGS) as Key[]) {
    const setting: Setting<unknown> = SETTINGS[key];
    const fromEnv = setting.env === null ? undefined : env[setting.env];
    const [source, raw] =
      fromEnv !== undefined && fromEnv !== '' ? [setting.env, fromEnv] : file && key in file ? [`${key} in ${path}`, file[key]] : [null, undefined];
    if (source === null) {
      values[key] = setting.default;
      continue;
    }
    try {
      values[key] = setting.parse(raw, env);
    } catch (err) {
      if (setting.structured) throw new ConfigError(`${source}: ${(err as Error).message}`);
      const shown = setting.secret ? '(hidden)' : JSON.stringify(raw);
      throw new ConfigError(`${source}=${shown} ${(err as Error).message}`);
    }
  }
  const v = values as Values;
  if (v.storage_backend === 's3' && v.s3_bucket === null) throw new ConfigError('STORAGE_BACKEND=s3 needs a bucket: set S3_BUCKET (s3_bucket)');
  if (v.download_redirect && v.storage_backend !== 's3') throw new ConfigError('DOWNLOAD_REDIRECT=true needs STORAGE_BACKEND=s3: only an object store can serve a presigned URL');
  return Object.freeze({
    configFile: file ? path : null,
    port: v.port,
    host: v.host,
    storageBackend: v.storage_backend,
    storagePath: v.storage_path,
    s3:
      v.storage_backend === 's3'
        ? { endpoint: v.s3_endpoint, region: v.s3_region, bucket: v.s3_bucket!, prefix: v.s3_prefix, forcePathStyle: v.s3_force_path_style }
        : null,
    indexRefreshSeconds: v.index_refresh_seconds,
    downloadRedirectSeconds: v.download_redirect ? v.download_redirect_expiry_seconds : null,
    maxPackages: v.max_packages,
    maxReleases: v.max_releases,
    maxVersionsPerPackage: v.max_versions_per_package,
    approveUploads: v.approve_uploads,
    authToken: readTokenFile(env.AUTH_TOKEN_FILE, v.auth_token),
    tokensFile: v.tokens_file,
    readAccess: v.read_access,
    authFailuresPerMinute: v.auth_failures_per_minute,
    maxUploadBytes: v.max_upload_bytes,
    publicUrl: v.public_url,
    trustProxy: v.trust_proxy,
    maxConnections: v.max_connections,
    maxConnectionsPerAddress: v.max_connections_per_address,
    headersTimeoutSeconds: v.headers_timeout_seconds,
    idleTimeoutSeconds: v.idle_timeout_seconds,
    logLevel: v.log_level,
    validateResponses: v.validate_responses,
    sources: v.sources,
    workers: v.workers,
  });
}

function readConfigFile(path: string): Record<string, unknown> | null {
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ConfigError(`CONFIG_PATH=${JSON.stringify(path)} cannot be read: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(source);
  } catch (err) {
    throw new ConfigError(`${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`${path} must hold a mapping of keys to values`);
  const unknown = Object.keys(parsed).filter((key) => !(key in SETTINGS));
  if (unknown.length > 0) {
    throw new ConfigError(`${path}: unknown key ${JSON.stringify(unknown[0])} (known: ${Object.keys(SETTINGS).join(', ')})`);
  }
  return parsed as Record<string, unknown>;
}

function readTokenFile(path: string | undefined, token: string | null): string | null {
  if (!path) return token;
  if (token !== null) throw new ConfigError(`AUTH_TOKEN_FILE=${JSON.stringify(path)} and a token from AUTH_TOKEN or auth_token are both set; keep one`);
  let value: string;
  try {
    value = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`AUTH_TOKEN_FILE=${JSON.stringify(path)} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (value === '') throw new ConfigError(`AUTH_TOKEN_FILE=${JSON.stringify(path)} is empty`);
  if (value.length < MIN_TOKEN_LENGTH) throw new ConfigError(`AUTH_TOKEN_FILE=${JSON.stringify(path)} holds a token shorter than ${MIN_TOKEN_LENGTH} characters`);
  return value;
}
