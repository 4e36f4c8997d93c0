/**
 * How upstream `specify` reads its configuration, written from ../shared/docs/speckit-kinds.md and the CLI's
 * behaviour, independently of the server's code: which catalogs each kind uses (env var, project file, user file,
 * built-ins), the bundle source stack (merged by id), and which Authorization headers `~/.specify/auth.json` makes
 * it send to a URL. Feed the result to speckit-catalog-client.ts to install the way the CLI would.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';

/** The kinds with a `<kind>-catalogs.yml` stack of the ordinary shape (bundles have their own). */
export type StackKind = 'extension' | 'preset' | 'workflow' | 'step' | 'integration';
export const STACK_KINDS: readonly StackKind[] = ['extension', 'preset', 'workflow', 'step', 'integration'];

export interface CatalogSource {
  name: string;
  url: string;
  priority: number;
  installAllowed: boolean;
  description: string;
  /** Where the CLI found it. */
  origin: 'env' | 'project' | 'user' | 'built-in';
}

export interface BundleSource {
  id: string;
  url: string;
  priority: number;
  installPolicy: 'install-allowed' | 'discovery-only';
  installAllowed: boolean;
  scope: 'project' | 'user' | 'built-in';
}

/** What the CLI reads: `$HOME`, the project it runs in (or none yet, as for `specify init`), and the environment. */
export interface SpeckitPlace {
  home: string;
  project?: string | null;
  env?: Record<string, string | undefined>;
}

const RAW = 'https://raw.githubusercontent.com/github/spec-kit/main';
interface StackRules {
  envVar: string;
  file: string;
  builtIns: [string, string];
  /** Workflow and step readers treat an empty file (or an empty `catalogs:`) as absent; the others refuse it. */
  emptyIsAbsent: boolean;
}
const RULES: Record<StackKind, StackRules> = {
  extension: { envVar: 'SPECKIT_CATALOG_URL', file: 'extension-catalogs.yml', builtIns: [`${RAW}/extensions/catalog.json`, `${RAW}/extensions/catalog.community.json`], emptyIsAbsent: false },
  preset: { envVar: 'SPECKIT_PRESET_CATALOG_URL', file: 'preset-catalogs.yml', builtIns: [`${RAW}/presets/catalog.json`, `${RAW}/presets/catalog.community.json`], emptyIsAbsent: false },
  workflow: { envVar: 'SPECKIT_WORKFLOW_CATALOG_URL', file: 'workflow-catalogs.yml', builtIns: [`${RAW}/workflows/catalog.json`, `${RAW}/workflows/catalog.community.json`], emptyIsAbsent: true },
  step: { envVar: 'SPECKIT_STEP_CATALOG_URL', file: 'step-catalogs.yml', builtIns: [`${RAW}/workflows/step-catalog.json`, `${RAW}/workflows/step-catalog.community.json`], emptyIsAbsent: true },
  integration: { envVar: 'SPECKIT_INTEGRATION_CATALOG_URL', file: 'integration-catalogs.yml', builtIns: [`${RAW}/integrations/catalog.json`, `${RAW}/integrations/catalog.community.json`], emptyIsAbsent: false },
};
export const ENV_VAR: Record<StackKind, string> = Object.fromEntries(STACK_KINDS.map((k) => [k, RULES[k].envVar])) as Record<StackKind, string>;
export const CONFIG_FILE: Record<StackKind | 'bundle', string> = { ...(Object.fromEntries(STACK_KINDS.map((k) => [k, RULES[k].file])) as Record<StackKind, string>), bundle: 'bundle-catalogs.yml' };

/** Bundle sources the CLI always starts from; a configured source with the same id replaces one. */
export const BUILTIN_BUNDLE_SOURCES: readonly BundleSource[] = [
  { id: 'default', url: 'builtin://default', priority: 1, installPolicy: 'install-allowed', installAllowed: true, scope: 'built-in' },
  { id: 'community', url: 'builtin://community', priority: 20, installPolicy: 'discovery-only', installAllowed: false, scope: 'built-in' },
];

/**
 * The catalogs a kind searches, lowest priority number first: the env var alone (install allowed) if set, else the
 * project's `.specify/<file>`, else `~/.specify/<file>` (the first that exists replaces everything after it), else
 * the built-in default (install allowed) and community (discovery only) catalogs.
 */
export async function catalogStack(kind: StackKind, place: SpeckitPlace): Promise<CatalogSource[]> {
  const rules = RULES[kind];
  const raw = place.env?.[rules.envVar];
  // Extensions and presets take any non-empty value (and then refuse a blank one); the others strip it first.
  const stripFirst = kind === 'workflow' || kind === 'step' || kind === 'integration';
  if (raw !== undefined && (stripFirst ? raw.trim() : raw)) {
    const envUrl = raw.trim();
    checkCatalogUrl(envUrl);
    return [{ name: kind === 'workflow' || kind === 'step' ? 'env-override' : 'custom', url: envUrl, priority: 1, installAllowed: true, description: `From ${rules.envVar}`, origin: 'env' }];
  }
  for (const [origin, dir] of [
    ['project', place.project ? join(place.project, '.specify') : null],
    ['user', join(place.home, '.specify')],
  ] as const) {
    if (dir === null) continue;
    const entries = await readCatalogConfig(join(dir, rules.file), rules.emptyIsAbsent, origin);
    if (entries) return entries;
  }
  return [
    { name: 'default', url: rules.builtIns[0], priority: 1, installAllowed: true, description: 'built-in', origin: 'built-in' },
    { name: 'community', url: rules.builtIns[1], priority: 2, installAllowed: false, description: 'built-in, discovery only', origin: 'built-in' },
  ];
}

/** Every stack kind's catalogs. */
export async function catalogStacks(place: SpeckitPlace): Promise<Record<StackKind, CatalogSource[]>> {
  const entries = await Promise.all(STACK_KINDS.map(async (k) => [k, await catalogStack(k, place)] as const));
  return Object.fromEntries(entries) as Record<StackKind, CatalogSource[]>;
}

async function readCatalogConfig(path: string, emptyIsAbsent: boolean, origin: 'project' | 'user'): Promise<CatalogSource[] | null> {
  const text = await readText(path);
  if (text === null) return null;
  let data = parse(text, { version: '1.1' }) as unknown;
  if (data === null || data === undefined) {
    if (emptyIsAbsent) return null;
    data = {};
  }
  if (!isObject(data)) throw new Error(`Invalid catalog config ${path}: expected a YAML mapping at the root`);
  const list = data.catalogs ?? (emptyIsAbsent ? null : []);
  if (list === null) return null;
  if (!Array.isArray(list)) throw new Error(`Invalid catalog config ${path}: 'catalogs' must be a list`);
  if (list.length === 0) {
    if (emptyIsAbsent) return null;
    throw new Error(`Catalog config ${path} exists but contains no 'catalogs' entries`);
  }
  const entries: CatalogSource[] = [];
  list.forEach((item: unknown, index: number) => {
    if (!isObject(item)) throw new Error(`Invalid catalog config ${path}: catalog entry at index ${index}: expected a mapping`);
    const url = String(item.url ?? '').trim();
    if (!url) return;
    checkCatalogUrl(url);
    const rawPriority = item.priority ?? index + 1;
    if (typeof rawPriority === 'boolean') throw new Error(`Invalid priority: expected integer, got ${String(rawPriority)}`);
    const priority = typeof rawPriority === 'number' ? Math.trunc(rawPriority) : Number.parseInt(String(rawPriority).trim(), 10);
    if (!Number.isFinite(priority) || (typeof rawPriority === 'string' && !/^\s*[+-]?\d+\s*$/.test(rawPriority))) throw new Error(`Invalid priority: expected integer, got ${String(rawPriority)}`);
    const rawInstall = item.install_allowed ?? false;
    const installAllowed = typeof rawInstall === 'string' ? ['true', 'yes', '1'].includes(rawInstall.trim().toLowerCase()) : Boolean(rawInstall);
    const name = item.name === undefined || item.name === null ? '' : String(item.name).trim();
    entries.push({ name: name || `catalog-${entries.length + 1}`, url, priority, installAllowed, description: String(item.description ?? ''), origin });
  });
  if (entries.length === 0) throw new Error(`Catalog config ${path} has entries but none with a valid URL`);
  return entries.sort((a, b) => a.priority - b.priority);
}

/**
 * The bundle sources, sorted by (priority, id): the built-ins, then `~/.specify/bundle-catalogs.yml`, then the
 * project's, each replacing a source of the same id. `id`, `url`, `priority` and `install_policy` are required.
 */
export async function bundleSources(place: SpeckitPlace): Promise<BundleSource[]> {
  const byId = new Map<string, BundleSource>(BUILTIN_BUNDLE_SOURCES.map((s) => [s.id, { ...s }]));
  for (const [scope, dir] of [
    ['user', join(place.home, '.specify')],
    ['project', place.project ? join(place.project, '.specify') : null],
  ] as const) {
    if (dir === null) continue;
    const path = join(dir, CONFIG_FILE.bundle);
    const text = await readText(path);
    if (text === null) continue;
    const data = (parse(text, { version: '1.1' }) as unknown) ?? {};
    if (!isObject(data)) throw new Error(`Malformed catalog config at ${path}: expected a mapping at the top level`);
    if (data.schema_version !== undefined && data.schema_version !== null && String(data.schema_version).trim().split('.')[0] !== '1') throw new Error(`Unsupported catalog config schema version at ${path}`);
    if (data.catalogs === undefined || data.catalogs === null) continue;
    if (!Array.isArray(data.catalogs)) throw new Error(`Malformed catalog config at ${path}: 'catalogs' must be a list`);
    for (const raw of data.catalogs as unknown[]) {
      if (!isObject(raw)) throw new Error('Each catalog source must be a mapping.');
      const id = String(raw.id ?? '').trim();
      const url = String(raw.url ?? '').trim();
      if (!id) throw new Error("A catalog source is missing its 'id'.");
      if (!url) throw new Error(`Catalog source '${id}' is missing its 'url'.`);
      const priority = raw.priority;
      if (priority === undefined || priority === null) throw new Error(`Catalog source '${id}' is missing its 'priority'.`);
      if (typeof priority === 'boolean' || !(typeof priority === 'number' || typeof priority === 'string') || !/^\s*[+-]?\d+\s*$/.test(String(priority))) throw new Error(`Catalog source '${id}' has a non-integer priority: ${String(priority)}.`);
      const policy = String(raw.install_policy ?? '').trim();
      if (policy !== 'install-allowed' && policy !== 'discovery-only') throw new Error(`Invalid install_policy '${policy}'`);
      byId.set(id, { id, url, priority: Number.parseInt(String(priority), 10), installPolicy: policy, installAllowed: policy === 'install-allowed', scope });
    }
  }
  return [...byId.values()].sort((a, b) => a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** One `providers` entry of `auth.json`, validated as the CLI validates it. */
export interface AuthEntry {
  hosts: string[];
  provider: 'github' | 'azure-devops';
  auth: string;
  token?: string;
  tokenEnv?: string;
}

const SCHEMES: Record<AuthEntry['provider'], readonly string[]> = { github: ['bearer'], 'azure-devops': ['basic-pat', 'bearer', 'azure-cli', 'azure-ad'] };

/** `~/.specify/auth.json`, or [] when there is none. Throws where the CLI would refuse the file. */
export async function loadAuthConfig(place: SpeckitPlace): Promise<AuthEntry[]> {
  const text = await readText(join(place.home, '.specify', 'auth.json'));
  if (text === null) return [];
  const raw = JSON.parse(text) as unknown;
  if (!isObject(raw)) throw new Error('auth.json must be a JSON object');
  if (!Array.isArray(raw.providers)) throw new Error("auth.json must contain a 'providers' array");
  return (raw.providers as unknown[]).map((entry, i) => {
    if (!isObject(entry)) throw new Error(`providers[${i}]: must be a JSON object`);
    const hosts = entry.hosts;
    if (!Array.isArray(hosts) || hosts.length === 0) throw new Error(`providers[${i}]: 'hosts' must be a non-empty array`);
    if (!hosts.every((h) => typeof h === 'string' && h.trim())) throw new Error(`providers[${i}]: each host must be a non-empty string`);
    const normal = (hosts as string[]).map((h) => h.trim().toLowerCase());
    for (const h of normal) if (!validHostPattern(h)) throw new Error(`providers[${i}]: invalid host pattern ${h}`);
    const provider = entry.provider;
    if (provider !== 'github' && provider !== 'azure-devops') throw new Error(`providers[${i}]: unknown provider ${String(provider)}`);
    const auth = entry.auth;
    if (typeof auth !== 'string' || !SCHEMES[provider].includes(auth)) throw new Error(`providers[${i}]: provider ${provider} does not support auth scheme ${String(auth)}`);
    const { token, token_env: tokenEnv } = entry;
    if (token !== undefined && (typeof token !== 'string' || !token.trim())) throw new Error(`providers[${i}]: 'token' must be a non-empty string`);
    if (tokenEnv !== undefined && (typeof tokenEnv !== 'string' || !tokenEnv.trim())) throw new Error(`providers[${i}]: 'token_env' must be a non-empty string`);
    if ((auth === 'bearer' || auth === 'basic-pat') && !token && !tokenEnv) throw new Error(`providers[${i}]: auth=${auth} requires 'token' or 'token_env'`);
    return { hosts: normal, provider, auth, ...(token ? { token } : {}), ...(tokenEnv ? { tokenEnv: tokenEnv.trim() } : {}) };
  });
}

/**
 * The Authorization headers the CLI tries for a URL, in order: one per matching `auth.json` entry whose token
 * resolves (on 401/403 it moves to the next), then none at all. A host pattern is exact or `*.suffix` (which does not
 * match the bare suffix); the port never matters. An unreadable auth.json makes the CLI warn and send nothing.
 */
export function authAttempts(url: string, entries: readonly AuthEntry[], env: Record<string, string | undefined> = {}): Record<string, string>[] {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  } catch {
    return [{}];
  }
  const attempts: Record<string, string>[] = [];
  for (const entry of entries) {
    if (!entry.hosts.some((pattern) => hostMatches(host, pattern))) continue;
    const token = entry.token?.trim() || (entry.tokenEnv ? env[entry.tokenEnv]?.trim() : undefined);
    if (!token) continue;
    if (entry.auth === 'basic-pat') attempts.push({ Authorization: `Basic ${Buffer.from(`:${token}`, 'utf8').toString('base64')}` });
    else if (entry.auth === 'bearer') attempts.push({ Authorization: `Bearer ${token}` });
  }
  attempts.push({});
  return attempts;
}

/** The first headers the CLI sends to a URL (`{}` when none). */
export async function authHeaders(url: string, place: SpeckitPlace): Promise<Record<string, string>> {
  return authAttempts(url, await loadAuthConfig(place), place.env)[0] ?? {};
}

export function hostMatches(hostname: string, pattern: string): boolean {
  const host = hostname.toLowerCase();
  const p = pattern.toLowerCase();
  if (p.startsWith('*.') && validHostPattern(p)) return host.endsWith(p.slice(1));
  return host === p;
}

function validHostPattern(pattern: string): boolean {
  if (/[?[\]]/.test(pattern)) return false;
  if (!pattern.includes('*')) return true;
  return pattern.startsWith('*.') && pattern.length > 2 && !pattern.slice(2).includes('*');
}

/** Everything the catalog client needs to act as the CLI configured at `place`. */
export interface SpeckitConfig {
  stacks: Record<StackKind, CatalogSource[]>;
  bundleSources: BundleSource[];
  /** The header sets to try for a URL (see authAttempts); an unreadable auth.json gives none, as in the CLI. */
  auth: (url: string) => Record<string, string>[];
}

export async function speckitConfig(place: SpeckitPlace): Promise<SpeckitConfig> {
  let entries: AuthEntry[];
  try {
    entries = await loadAuthConfig(place);
  } catch {
    entries = [];
  }
  return { stacks: await catalogStacks(place), bundleSources: await bundleSources(place), auth: (url) => authAttempts(url, entries, place.env) };
}

/** https, or http to localhost/127.0.0.1/::1 only, with a host. */
export function checkCatalogUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`Catalog URL is malformed: ${url}`);
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const loopback = ['localhost', '127.0.0.1', '::1'].includes(host);
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) throw new Error(`Catalog URL must use HTTPS (got ${parsed.protocol}//). HTTP is only allowed for localhost.`);
  if (!host) throw new Error('Catalog URL must be a valid URL with a host.');
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
