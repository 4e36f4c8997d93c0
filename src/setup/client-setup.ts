/**
 * The `specify` CLI's configuration for this server, generated (GET /setup): what a user would otherwise assemble
 * by hand from ../shared/docs/speckit-kinds.md. Pure: text in, text out, no I/O, the same bytes for the same input.
 *
 * - Five `*-catalogs.yml` (extensions, presets, workflows, steps, integrations): one `catalogs:` entry each, install
 *   allowed. In `~/.specify/` it serves every project and `specify init --extension/--preset`, which runs before a
 *   project exists; a project's `.specify/` file replaces the user file for that project.
 * - `bundle-catalogs.yml`: bundle sources merge by `id` over the CLI's built-ins, so the file names this server and
 *   also overrides the built-in `community` source, without which `specify bundle search` fails when offline.
 * - `env`: the variables that replace a kind's whole catalog stack with one install-allowed catalog (no bundles).
 * - `auth.json`, for a private server: the CLI sends a credential only to hosts this file lists.
 */
import { CATALOG_KINDS, KIND_RULES, type CatalogKind } from '../domain/kinds.js';

export interface ClientSetupInput {
  /** The server's public URL, as catalogs write it (`https://specs.acme.example`, maybe with a path prefix). */
  base: string;
  /** Point every kind at this snapshot's catalogs rather than the live ones. */
  snapshot: string | null;
  /** Whether reads need a token: then an `auth.json` is part of the set-up. */
  privateServer: boolean;
  /** The host the CLI must send the token to; its port is dropped (the CLI matches host names only). */
  host: string;
}

/** The files `GET /setup?format=` returns, in the order the page shows them. */
export const SETUP_FORMATS = [
  'extension-catalogs.yml',
  'preset-catalogs.yml',
  'workflow-catalogs.yml',
  'step-catalogs.yml',
  'integration-catalogs.yml',
  'bundle-catalogs.yml',
  'env',
  'auth.json',
] as const;
export type SetupFormat = (typeof SETUP_FORMATS)[number];

/** What each generated file is for, shown beside it on /setup. */
export const SETUP_PURPOSE: Record<SetupFormat, string> = {
  'extension-catalogs.yml': 'Where `specify extension search`, `specify extension add` and `specify init --extension` find extensions.',
  'preset-catalogs.yml': 'Where `specify preset search`, `specify preset add` and `specify init --preset` find presets.',
  'workflow-catalogs.yml': 'Where `specify workflow search` and `specify workflow add` find workflows.',
  'step-catalogs.yml': 'Where `specify workflow step search` and `specify workflow step add` find workflow steps. A step is executable Python, and the CLI checks no sha256 for it.',
  'integration-catalogs.yml': 'What `specify integration search` and `info` list. Integrations are not downloaded: only built-in ones install.',
  'bundle-catalogs.yml': 'Where `specify bundle search` and `specify bundle install` find bundles. It also replaces the built-in `community` source, which is on the internet: without that, bundle search fails offline. A bundle installs each component from the catalog configured for its kind and fails when the version there is not the one it pins, so use all these files from the same page.',
  env: 'The environment variables, one catalog per kind.',
  'auth.json': 'The token for this server: which host gets it, and from which environment variable.',
};

/** The variable `auth.json` reads the token from. */
export const TOKEN_ENV = 'RELEASE_SERVER_TOKEN';
/** The name (bundles: the id) this server's catalogs have in the generated files. */
export const SOURCE_NAME = 'release-server';
/** The bundle source the CLI has built in, which must point here for `bundle search` to work without internet. */
export const COMMUNITY_BUNDLE_SOURCE = 'community';
const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface SetupFile {
  format: SetupFormat;
  /** The file's name where it goes: `~/.specify/<fileName>` (or a project's `.specify/`; `env` is sourced). */
  fileName: string;
  /** The catalog kind a `*-catalogs.yml` configures. */
  kind: CatalogKind | null;
  contentType: string;
  text: string;
}

export interface ClientSetup {
  /** Each catalog's URL, live or the snapshot's. */
  catalogUrls: Record<CatalogKind, string>;
  /** Every file that applies: `auth.json` only for a private server. */
  files: SetupFile[];
  /** The same files by format. */
  byFormat: Partial<Record<SetupFormat, SetupFile>>;
}

/** Where a kind's catalog is: `${base}/catalogs/<section>.json`, or the snapshot's copy. */
export function catalogUrl(base: string, kind: CatalogKind, snapshot: string | null): string {
  const root = trimBase(base);
  const section = KIND_RULES[kind].section;
  if (snapshot === null) return `${root}/catalogs/${section}.json`;
  return `${root}/catalogs/snapshots/${encodeURIComponent(checkSnapshot(snapshot))}/${section}.json`;
}

export function clientSetup(input: ClientSetupInput): ClientSetup {
  if (input.snapshot !== null) checkSnapshot(input.snapshot);
  const catalogUrls = Object.fromEntries(CATALOG_KINDS.map((k) => [k, catalogUrl(input.base, k, input.snapshot)])) as Record<CatalogKind, string>;
  const files: SetupFile[] = [];
  for (const kind of CATALOG_KINDS) {
    if (kind === 'bundle') continue;
    files.push({ format: KIND_RULES[kind].configFile as SetupFormat, fileName: KIND_RULES[kind].configFile, kind, contentType: 'application/yaml; charset=utf-8', text: catalogsYaml(input, kind, catalogUrls[kind]) });
  }
  files.push({ format: 'bundle-catalogs.yml', fileName: KIND_RULES.bundle.configFile, kind: 'bundle', contentType: 'application/yaml; charset=utf-8', text: bundleCatalogsYaml(input, catalogUrls.bundle) });
  files.push({ format: 'env', fileName: 'env', kind: null, contentType: 'text/plain; charset=utf-8', text: envLines(input, catalogUrls) });
  if (input.privateServer) files.push({ format: 'auth.json', fileName: 'auth.json', kind: null, contentType: 'application/json; charset=utf-8', text: authJson(input.host || input.base, 'bearer') });
  files.sort((a, b) => SETUP_FORMATS.indexOf(a.format) - SETUP_FORMATS.indexOf(b.format));
  return { catalogUrls, files, byFormat: Object.fromEntries(files.map((f) => [f.format, f])) };
}

/** One generated file, or null when it does not apply (`auth.json` of a public server). */
export function setupFile(input: ClientSetupInput, format: SetupFormat): SetupFile | null {
  return clientSetup(input).byFormat[format] ?? null;
}

/**
 * `~/.specify/auth.json` for this host. The CLI has two providers and no generic one. `azure-devops` serves both
 * schemes: `bearer` sends `Authorization: Bearer <token>`, `basic-pat` Basic with an empty user name and the token as
 * the password. (`github` would send the same Bearer, but the CLI takes every host listed under it for a GitHub
 * Enterprise server and asks its /api/v3 about release-download URLs.) Both read the token from
 * `$RELEASE_SERVER_TOKEN` when the request is made, so the file holds no secret.
 */
export function authJson(hostOrUrl: string, scheme: 'bearer' | 'basic-pat'): string {
  const provider = { hosts: [hostName(hostOrUrl)], provider: 'azure-devops', auth: scheme, token_env: TOKEN_ENV };
  return `${JSON.stringify({ providers: [provider] }, null, 2)}\n`;
}

/** The host name the CLI compares `hosts` with: lower case, no port, an IPv6 address without brackets. */
export function hostName(hostOrUrl: string): string {
  const text = hostOrUrl.includes('://') ? hostOrUrl : `http://${hostOrUrl}`;
  return new URL(text).hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
}

function catalogsYaml(input: ClientSetupInput, kind: CatalogKind, url: string): string {
  const rules = KIND_RULES[kind];
  const command = COMMAND[kind];
  const lines = [
    `# ${rules.configFile}: the ${rules.section} catalog of the Release Server at ${trimBase(input.base)}${snapshotNote(input)}.`,
    `# Generated by ${setupUrl(input, rules.configFile as SetupFormat)}`,
    '#',
    `# Put it in ~/.specify/${rules.configFile} for every project, and for \`specify init\` before a project exists,`,
    `# or in a project's .specify/${rules.configFile}, which replaces the user file for that project.`,
    '# The CLI then reads only the catalogs listed here (its built-in catalogs no longer apply).',
    ...(rules.envVar ? [`# ${rules.envVar}, when set, replaces this file with a single catalog.`] : []),
    ...(kind === 'integration' ? ['# Integrations are for search and info only: `specify integration search`.'] : [`# Then: specify ${command} search, specify ${command} add <id>`]),
    'catalogs:',
    `  - name: ${quote(sourceName(input))}`,
    `    url: ${quote(url)}`,
    '    priority: 1',
    '    install_allowed: true',
    `    description: ${quote(`Release Server ${rules.section}${input.snapshot === null ? '' : ` (snapshot ${input.snapshot})`}`)}`,
  ];
  return `${lines.join('\n')}\n`;
}

function bundleCatalogsYaml(input: ClientSetupInput, url: string): string {
  const lines = [
    `# bundle-catalogs.yml: the bundles catalog of the Release Server at ${trimBase(input.base)}${snapshotNote(input)}.`,
    `# Generated by ${setupUrl(input, 'bundle-catalogs.yml')}`,
    '#',
    '# Put it in ~/.specify/bundle-catalogs.yml, or in a project\'s .specify/bundle-catalogs.yml. Bundle sources merge',
    '# by id over the CLI\'s built-in ones (a project entry beats a user entry with the same id). The built-in',
    `# \`${COMMUNITY_BUNDLE_SOURCE}\` source is on the internet and \`specify bundle search\` fails when it cannot be read, so`,
    '# this file points it here too. A bundle installs its extensions, presets, workflows and steps from the',
    '# catalogs configured for those kinds, which must serve the versions it pins: use the other files from the same',
    '# page (the same snapshot) alongside this one.',
    'schema_version: "1.0"',
    'catalogs:',
    // One id whatever the snapshot: a project's file then replaces the user file's source rather than adding one.
    `  - id: ${quote(SOURCE_NAME)}`,
    `    url: ${quote(url)}`,
    '    priority: 1',
    '    install_policy: install-allowed',
    `  - id: ${quote(COMMUNITY_BUNDLE_SOURCE)}`,
    `    url: ${quote(url)}`,
    '    priority: 20',
    '    install_policy: install-allowed',
  ];
  return `${lines.join('\n')}\n`;
}

function envLines(input: ClientSetupInput, urls: Record<CatalogKind, string>): string {
  const lines = [
    `# The Release Server at ${trimBase(input.base)}${snapshotNote(input)}, as environment variables for \`specify\`.`,
    `# Generated by ${setupUrl(input, 'env')}`,
    '# Each variable replaces that kind\'s whole catalog stack (project file, user file and built-ins) with this one',
    '# catalog, install allowed. Bundles have no variable: use bundle-catalogs.yml for them.',
  ];
  for (const kind of CATALOG_KINDS) {
    const envVar = KIND_RULES[kind].envVar;
    if (envVar) lines.push(`export ${envVar}=${shellQuote(urls[kind])}`);
  }
  if (input.privateServer) lines.push(`# The token ~/.specify/auth.json sends (set it yourself; it is never written here):`, `# export ${TOKEN_ENV}=...`);
  return `${lines.join('\n')}\n`;
}

const COMMAND: Record<CatalogKind, string> = {
  extension: 'extension',
  preset: 'preset',
  workflow: 'workflow',
  step: 'workflow step',
  bundle: 'bundle',
  integration: 'integration',
};

function sourceName(input: ClientSetupInput): string {
  return input.snapshot === null ? SOURCE_NAME : `${SOURCE_NAME}-${input.snapshot}`;
}

function snapshotNote(input: ClientSetupInput): string {
  return input.snapshot === null ? '' : `, snapshot ${input.snapshot}`;
}

function setupUrl(input: ClientSetupInput, format: SetupFormat): string {
  const query = new URLSearchParams({ format });
  if (input.snapshot !== null) query.set('snapshot', input.snapshot);
  return `${trimBase(input.base)}/setup?${query.toString()}`;
}

function trimBase(base: string): string {
  return base.replace(/\/+$/, '');
}

function checkSnapshot(name: string): string {
  if (!SNAPSHOT_NAME.test(name)) throw new RangeError(`not a snapshot name: ${JSON.stringify(name)}`);
  return name;
}

/** A YAML double-quoted scalar: JSON's string syntax is a subset of it, so any URL or text stays one string. */
function quote(text: string): string {
  return JSON.stringify(text);
}

export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
