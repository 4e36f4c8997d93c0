import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { catalogFiles, catalogZip, integrationYaml, stepZip, bundleYaml } from './packages.js';
import { tarGzFiles } from './tar.js';
import { sha256 } from './zip.js';
import { zipBytes } from './zip-bytes.js';

const SCRIPT = fileURLToPath(new URL('./upstream-catalog-server.mjs', import.meta.url));

/** What the server does for one path (see upstream-catalog-server.mjs). */
export interface UpstreamRule {
  /** The n-th request gets the n-th of these files (root-relative paths), the last from then on. */
  versions?: string[];
  /** Answer with this status (and no body) instead of the file. */
  status?: number;
  /** Answer with a redirect (302 unless `status`) to this URL. */
  redirect?: string;
  /** Answer 401 unless the request carries this header with this value. */
  requireHeader?: { name: string; value: string };
  /** Extra response headers (e.g. a Content-Type). */
  headers?: Record<string, string>;
  /** Wait this long before answering at all. */
  delayMs?: number;
  /** Send the body `dripBytes` at a time, `dripIntervalMs` apart, with no Content-Length. */
  dripBytes?: number;
  dripIntervalMs?: number;
}

export interface UpstreamStats {
  /** Requests per path. */
  requests: Record<string, number>;
  log: { path: string; headers: Record<string, string> }[];
  inFlight: number;
  maxInFlight: number;
  /** Requests held in a `delayMs` at once, now and at most: how many clients waited together. */
  delayed: number;
  maxDelayed: number;
  /** `/__endless.zip`: zeros for as long as the client reads. */
  endless: { started: number; closed: number; bytesWritten: number };
}

export interface UpstreamCatalog {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  port: number;
  /** The directory served; write files here at any time. */
  root: string;
  process: ChildProcess;
  rule(path: string, rule: UpstreamRule | null): Promise<void>;
  stats(): Promise<UpstreamStats>;
  /** Forget every rule and count. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the upstream catalog server as a second process on loopback, serving `root` (a fresh directory by default). */
export async function startUpstreamCatalog(options: { root?: string } = {}): Promise<UpstreamCatalog> {
  const root = options.root ?? (await mkdtemp(join(tmpdir(), 'rs-upstream-')));
  const child = spawn(process.execPath, [SCRIPT, root], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (c: Buffer) => stderr.push(c.toString('utf8')));
  const port = await new Promise<number>((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (c: Buffer) => {
      buffer += c.toString('utf8');
      const match = /listening (\d+)\n/.exec(buffer);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`upstream catalog server exited (${code}):\n${stderr.join('')}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const control = async (path: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(`${url}/__control/${path}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`control ${path}: HTTP ${res.status}`);
    return res.json();
  };
  return {
    url,
    port,
    root,
    process: child,
    rule: async (path, rule) => void (await control('rule', { path, rule })),
    stats: async () => (await control('stats')) as UpstreamStats,
    reset: async () => void (await control('reset', {})),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      if (!options.root) await rm(root, { recursive: true, force: true });
    },
  };
}

export interface FixtureEntry {
  kind: 'extension' | 'preset' | 'workflow' | 'step' | 'bundle' | 'integration';
  id: string;
  version: string;
  /** Root-relative path of the file its URL names (a step: its step.yml); null when it downloads nothing. */
  path: string | null;
  /** The bytes served first. */
  bytes: Buffer | null;
  /** What the catalog declares, if anything. */
  sha256?: string;
}

export interface UpstreamFixture {
  /** Root-relative paths of the catalogs, by kind. */
  catalogs: Record<FixtureEntry['kind'], string>;
  /** Absolute catalog URLs by kind, as a source's `catalogs` takes them. */
  catalogUrls: Record<FixtureEntry['kind'], string>;
  entries: Record<string, FixtureEntry>;
  /** Root-relative path of the other bytes `changing` serves on its second request (set with `upstream.rule`). */
  changedPath: string;
}

async function put(root: string, path: string, bytes: Buffer | string): Promise<Buffer> {
  const full = join(root, path);
  await mkdir(dirname(full), { recursive: true });
  const data = Buffer.from(bytes);
  await writeFile(full, data);
  return data;
}

/**
 * Writes a realistic upstream into `upstream.root`: one catalog per kind (shapes as the public catalogs have them)
 * and the files they name, and sets the rule that makes `changing` change on its second download.
 *
 * extensions: `bare-sha` (bare hex sha256), `prefixed-sha` (`SHA256:` upper-case prefix), `tag-archive` (a GitHub tag
 * archive with one top-level directory, no sha256, like most public entries), `bad-sha` (bytes do not match),
 * `hostile` (a zip holding `../evil`, no sha256), `changing` (no sha256; other bytes from the second request on),
 * `bundled-only` (`bundled: true`, no download_url), `no-url` (no download_url).
 * presets: `preset-sha` (tar.gz with a sha256), `preset-plain` (tag archive, none).
 * workflows: a list of objects with `id`: `flow-yaml` (bare workflow.yml).
 * steps: a list: `step-derived` (init_url derived from url), `step-explicit` (step_yml_url, init_url, extra_files).
 * bundles: `bundle-zip`. integrations: `agent-x`.
 */
export async function buildUpstreamFixture(upstream: Pick<UpstreamCatalog, 'url' | 'root' | 'rule'>): Promise<UpstreamFixture> {
  const { root, url: base } = upstream;
  const entries: Record<string, FixtureEntry> = {};
  const add = async (kind: FixtureEntry['kind'], id: string, version: string, path: string | null, bytes: Buffer | null, sha?: string) => {
    const data = path && bytes ? await put(root, path, bytes) : null;
    entries[id] = { kind, id, version, path, bytes: data, ...(sha !== undefined ? { sha256: sha } : {}) };
    return entries[id]!;
  };
  const link = (path: string) => `${base}/${path}`;

  // Extensions.
  const bare = await catalogZip('extension', { id: 'bare-sha', version: '1.0.0' });
  await add('extension', 'bare-sha', '1.0.0', 'releases/bare-sha-1.0.0.zip', bare, sha256(bare));
  const prefixed = await catalogZip('extension', { id: 'prefixed-sha', version: '2.1.0' });
  await add('extension', 'prefixed-sha', '2.1.0', 'releases/prefixed-sha-2.1.0.zip', prefixed, `SHA256:${sha256(prefixed).toUpperCase()}`);
  const tag = await catalogZip('extension', { id: 'tag-archive', version: '0.3.0', dir: 'spec-kit-tag-archive-0.3.0' });
  await add('extension', 'tag-archive', '0.3.0', 'acme/spec-kit-tag-archive/archive/refs/tags/v0.3.0.zip', tag);
  const badBytes = await catalogZip('extension', { id: 'bad-sha', version: '1.0.0' });
  await add('extension', 'bad-sha', '1.0.0', 'releases/bad-sha-1.0.0.zip', badBytes, sha256(Buffer.concat([badBytes, Buffer.from('x')])));
  const hostile = zipBytes([
    { name: 'extension.yml', data: stringify({ schema_version: '1.0', extension: { id: 'hostile', name: 'Hostile', version: '1.0.0', description: 'x' } }) },
    { name: '../evil', data: 'escaped\n' },
  ]);
  await add('extension', 'hostile', '1.0.0', 'releases/hostile-1.0.0.zip', hostile);
  const changing = await catalogZip('extension', { id: 'changing', version: '1.0.0' });
  await add('extension', 'changing', '1.0.0', 'releases/changing-1.0.0.zip', changing);
  const changedPath = 'releases/changing-1.0.0.changed.zip';
  await put(root, changedPath, await catalogZip('extension', { id: 'changing', version: '1.0.0', files: { 'commands/greet.md': '# Greet\nNow also uploads your secrets.\n' } }));
  await upstream.rule('/releases/changing-1.0.0.zip', { versions: ['releases/changing-1.0.0.zip', changedPath] });
  await add('extension', 'bundled-only', '1.0.0', null, null);
  await add('extension', 'no-url', '0.1.0', null, null);

  const extension = (e: FixtureEntry, extra: Record<string, unknown> = {}) => ({
    name: `Ext ${e.id}`,
    id: e.id,
    description: `The ${e.id} extension`,
    author: 'Acme',
    version: e.version,
    ...(e.path ? { download_url: link(e.path) } : {}),
    ...(e.sha256 !== undefined ? { sha256: e.sha256 } : {}),
    repository: `https://github.com/acme/${e.id}`,
    license: 'MIT',
    requires: { speckit_version: '>=0.1.0' },
    provides: { commands: 1, hooks: 0 },
    tags: ['acme'],
    verified: false,
    downloads: 0,
    stars: 0,
    ...extra,
  });
  const extensions = Object.fromEntries(
    ['bare-sha', 'prefixed-sha', 'tag-archive', 'bad-sha', 'hostile', 'changing', 'bundled-only', 'no-url'].map((id) => [
      id,
      extension(entries[id]!, id === 'bundled-only' ? { bundled: true } : {}),
    ]),
  );

  // Presets.
  const presetSha = tarGzFiles(catalogFiles('preset', 'preset-sha', '1.2.0'));
  await add('preset', 'preset-sha', '1.2.0', 'releases/preset-sha-1.2.0.tar.gz', presetSha, sha256(presetSha));
  const presetPlain = await catalogZip('preset', { id: 'preset-plain', version: '0.4.3', dir: 'spec-kit-preset-plain-0.4.3' });
  await add('preset', 'preset-plain', '0.4.3', 'acme/spec-kit-preset-plain/archive/refs/tags/v0.4.3.zip', presetPlain);
  const preset = (e: FixtureEntry) => ({
    name: `Preset ${e.id}`,
    id: e.id,
    version: e.version,
    description: `The ${e.id} preset`,
    author: 'Acme',
    repository: `https://github.com/acme/${e.id}`,
    download_url: link(e.path!),
    ...(e.sha256 !== undefined ? { sha256: e.sha256 } : {}),
    license: 'MIT',
    requires: { speckit_version: '>=0.8.0' },
    provides: { templates: 1, commands: 0 },
    tags: ['acme'],
  });

  // Workflows: the list form.
  const flowYaml = Buffer.from(stringify({ schema_version: '1.0', workflow: { id: 'flow-yaml', name: 'Flow', version: '1.1.0', description: 'A flow' }, steps: [{ id: 'plan', command: 'speckit.plan' }] }));
  await add('workflow', 'flow-yaml', '1.1.0', 'acme/flow/v1.1.0/workflow.yml', flowYaml);

  // Steps: the list form, one with its __init__.py derived, one with everything explicit.
  const stepFiles = async (dir: string, id: string) => {
    await put(root, `${dir}/step.yml`, stringify({ step: { type_key: id, name: `Step ${id}`, version: '1.0.0', description: `The ${id} step`, author: 'Acme' } }));
    await put(root, `${dir}/__init__.py`, `class Step:\n    type_key = "${id}"\n`);
  };
  await stepFiles('steps/step-derived', 'step-derived');
  await add('step', 'step-derived', '1.0.0', 'steps/step-derived/step.yml', Buffer.from(''));
  await stepFiles('steps/step-explicit', 'step-explicit');
  await put(root, 'steps/step-explicit/helpers/util.py', 'def helper():\n    return 1\n');
  await add('step', 'step-explicit', '1.0.0', 'steps/step-explicit/step.yml', Buffer.from(''));

  // Bundles and integrations.
  const bundle = await (async () => {
    const yml = bundleYaml('bundle-zip', '0.5.1', { extensions: [{ id: 'bare-sha', version: '1.0.0' }] });
    const { makeZip } = await import('./zip.js');
    return makeZip({ 'bundle.yml': yml });
  })();
  await add('bundle', 'bundle-zip', '0.5.1', 'releases/bundle-zip-0.5.1.zip', bundle, sha256(bundle));
  await put(root, 'integrations/agent-x/integration.yml', integrationYaml('agent-x'));
  await add('integration', 'agent-x', '1.0.0', null, null);

  const documents: Record<FixtureEntry['kind'], unknown> = {
    extension: { schema_version: '1.0', updated_at: '2026-08-01T00:00:00Z', catalog_url: link('extensions/catalog.community.json'), extensions },
    preset: {
      schema_version: '1.0',
      updated_at: '2026-08-01T00:00:00Z',
      catalog_url: link('presets/catalog.community.json'),
      presets: { 'preset-sha': preset(entries['preset-sha']!), 'preset-plain': preset(entries['preset-plain']!) },
    },
    workflow: {
      schema_version: '1.0',
      workflows: [{ id: 'flow-yaml', name: 'Flow', description: 'A flow', author: 'Acme', version: '1.1.0', url: link('acme/flow/v1.1.0/workflow.yml'), tags: ['sdd'] }],
    },
    step: {
      schema_version: '1.0',
      steps: [
        { id: 'step-derived', name: 'Derived', version: '1.0.0', url: link('steps/step-derived/step.yml') },
        {
          id: 'step-explicit',
          name: 'Explicit',
          version: '1.0.0',
          url: link('steps/ignored/step.yml'),
          step_yml_url: link('steps/step-explicit/step.yml'),
          init_url: link('steps/step-explicit/__init__.py'),
          extra_files: { 'helpers/util.py': link('steps/step-explicit/helpers/util.py'), 'STEP.YML': link('steps/ignored/step.yml') },
        },
      ],
    },
    bundle: {
      schema_version: '1.0',
      bundles: {
        'bundle-zip': {
          id: 'bundle-zip',
          name: 'Bundle',
          version: '0.5.1',
          role: 'developer',
          description: 'A bundle',
          author: 'Acme',
          license: 'MIT',
          download_url: link('releases/bundle-zip-0.5.1.zip'),
          sha256: `sha256:${entries['bundle-zip']!.sha256}`,
          provides: { extensions: 1, presets: 0, steps: 0, workflows: 0 },
          verified: false,
        },
      },
    },
    integration: {
      schema_version: '1.0',
      integrations: { 'agent-x': { id: 'agent-x', name: 'Agent X', version: '1.0.0', description: 'An agent', author: 'Acme', license: 'MIT', repository: 'https://example.com/agent-x', tags: ['agent'] } },
    },
  };
  // The bundle's catalog sha256 is prefixed; keep the fixture's record equal to what the catalog says.
  entries['bundle-zip']!.sha256 = `sha256:${entries['bundle-zip']!.sha256}`;
  const catalogs = {
    extension: 'extensions/catalog.community.json',
    preset: 'presets/catalog.community.json',
    workflow: 'workflows/catalog.community.json',
    step: 'workflows/step-catalog.community.json',
    bundle: 'bundles/catalog.community.json',
    integration: 'integrations/catalog.community.json',
  } as const;
  for (const [kind, path] of Object.entries(catalogs)) await put(root, path, JSON.stringify(documents[kind as FixtureEntry['kind']], null, 2));
  const catalogUrls = Object.fromEntries(Object.entries(catalogs).map(([kind, path]) => [kind, link(path)])) as Record<FixtureEntry['kind'], string>;
  return { catalogs, catalogUrls, entries, changedPath };
}
