import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { clientSetup, TOKEN_ENV } from '../../src/setup/client-setup.js';
import { bundleInstall, catalogAdd, integrationInfo, integrationSearch, stepAdd } from '../helpers/speckit-catalog-client.js';
import { speckitConfig } from '../helpers/speckit-config.js';
import { makeZip, sha256 } from '../helpers/zip.js';

/** A loopback server: path → [content type, body]; with a token, every request needs `Bearer <token>` or 401. */
const routes = new Map<string, [string, Buffer]>();
let server: Server;
let base = '';
const TOKEN = 'tok-123';
const dirs: string[] = [];

async function tarGz(files: { name: string; body?: string; type?: 'file' | 'symlink' | 'directory'; linkname?: string }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((ok) => pack.on('end', () => ok()));
  for (const f of files) {
    if (f.type === 'symlink') pack.entry({ name: f.name, type: 'symlink', linkname: f.linkname ?? 'x' });
    else if (f.type === 'directory') pack.entry({ name: f.name, type: 'directory' });
    else pack.entry({ name: f.name }, f.body ?? '');
  }
  pack.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks));
}

function serve(path: string, type: string, body: Buffer | string | object): string {
  routes.set(path, [type, Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))]);
  return `${base}${path}`;
}

async function project(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'speckit-client-test-'));
  dirs.push(dir);
  return dir;
}

const ext = (id: string, version: string) => stringify({ schema_version: '1.0', extension: { id, name: id, version, description: 'd' }, requires: { speckit_version: '>=0.1.0' }, provides: { commands: [{ name: `speckit.${id}.go`, file: 'commands/go.md' }] } });
const wf = (id: string, version: string) => stringify({ schema_version: '1.0', workflow: { id, name: id, version }, steps: [{ id: 's', type: 'shell', run: 'true' }] });

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.startsWith('/private/') && req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401).end();
      return;
    }
    const route = routes.get(url.pathname.replace(/^\/private/, ''));
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': route[0] }).end(route[1]);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('tar.gz and bare YAML downloads', () => {
  it('installs a tar.gz extension, checking its sha256 and that the format matches the bytes', async () => {
    const bytes = await tarGz([{ name: 'pkg/', type: 'directory' }, { name: 'pkg/extension.yml', body: ext('acme-tgz', '1.0.0') }, { name: 'pkg/commands/go.md', body: 'hi' }]);
    const url = serve('/a/acme-tgz-1.0.0.tar.gz', 'application/gzip', bytes);
    const catalog = serve('/c/tgz.json', 'application/json', { schema_version: '1.0', extensions: { 'acme-tgz': { name: 'acme-tgz', version: '1.0.0', description: 'd', download_url: url, sha256: sha256(bytes) } } });
    const dir = await project();
    const installed = await catalogAdd(catalog, 'extension', 'acme-tgz', dir);
    expect(await readFile(join(installed.path, 'commands/go.md'), 'utf8')).toBe('hi');

    const wrongSuffix = serve('/a/acme-tgz.zip', 'application/gzip', bytes);
    const mismatch = serve('/c/tgz-mismatch.json', 'application/json', { schema_version: '1.0', extensions: { 'acme-tgz': { name: 'acme-tgz', version: '1.0.0', description: 'd', download_url: wrongSuffix } } });
    await expect(catalogAdd(mismatch, 'extension', 'acme-tgz', await project())).rejects.toThrow(/format mismatch/);
    const badSha = serve('/c/tgz-sha.json', 'application/json', { schema_version: '1.0', extensions: { 'acme-tgz': { name: 'acme-tgz', version: '1.0.0', description: 'd', download_url: url, sha256: 'sha256:' + '0'.repeat(64) } } });
    await expect(catalogAdd(badSha, 'extension', 'acme-tgz', await project())).rejects.toThrow(/Integrity check failed/);
  });

  it('refuses a tar.gz with a symlink, a traversal or a device name', async () => {
    for (const [i, files] of [
      [{ name: 'extension.yml', body: ext('acme-bad', '1.0.0') }, { name: 'link', type: 'symlink' as const, linkname: '/etc/passwd' }],
      [{ name: 'extension.yml', body: ext('acme-bad', '1.0.0') }, { name: '../evil', body: 'x' }],
      [{ name: 'extension.yml', body: ext('acme-bad', '1.0.0') }, { name: 'nul.txt', body: 'x' }],
    ].entries()) {
      const url = serve(`/a/bad-${i}.tgz`, 'application/octet-stream', await tarGz(files));
      const catalog = serve(`/c/bad-${i}.json`, 'application/json', { schema_version: '1.0', extensions: { 'acme-bad': { name: 'acme-bad', version: '1.0.0', description: 'd', download_url: url } } });
      await expect(catalogAdd(catalog, 'extension', 'acme-bad', await project()), String(i)).rejects.toThrow(/Unsafe/);
    }
  });

  it('installs a workflow from a bare workflow.yml (a list-shaped catalog), and refuses one whose id differs', async () => {
    const url = serve('/a/acme-flow.yml', 'application/yaml', wf('acme-flow', '1.0.0'));
    const catalog = serve('/c/wf.json', 'application/json', { schema_version: '1.0', workflows: [{ id: 'acme-flow', name: 'F', version: '1.0.0', url }] });
    const installed = await catalogAdd(catalog, 'workflow', 'acme-flow', await project());
    expect(await readFile(join(installed.path, 'workflow.yml'), 'utf8')).toBe(wf('acme-flow', '1.0.0'));
    const other = serve('/c/wf-other.json', 'application/json', { schema_version: '1.0', workflows: { 'acme-other': { name: 'F', version: '1.0.0', url } } });
    await expect(catalogAdd(other, 'workflow', 'acme-other', await project())).rejects.toThrow(/does not match catalog key/);
  });
});

describe('steps', () => {
  it('prefers step_yml_url, derives or takes init_url, writes extra files, and checks type_key', async () => {
    const stepYml = serve('/s/v1/step.yml', 'application/yaml', stringify({ step: { type_key: 'acme-step', name: 'S' } }));
    serve('/s/v1/__init__.py', 'text/x-python', 'print(1)\n');
    const helper = serve('/s/v1/lib/helper.py', 'text/x-python', 'X = 1\n');
    const catalog = serve('/c/steps.json', 'application/json', {
      schema_version: '1.0',
      steps: { 'acme-step': { name: 'S', version: '1.0.0', url: `${base}/nowhere/step.yml`, step_yml_url: stepYml, extra_files: { 'lib/helper.py': helper, 'step.yml': helper } } },
    });
    const installed = await stepAdd(catalog, 'acme-step', await project());
    expect(installed.files).toEqual(['step.yml', '__init__.py', 'lib/helper.py']);
    expect(await readFile(join(installed.path, '__init__.py'), 'utf8')).toBe('print(1)\n');
    expect(await readFile(join(installed.path, 'lib/helper.py'), 'utf8')).toBe('X = 1\n');

    const traversal = serve('/c/steps-bad.json', 'application/json', { steps: { 'acme-step': { url: stepYml, extra_files: { '../evil.py': helper } } } });
    await expect(stepAdd(traversal, 'acme-step', await project())).rejects.toThrow(/not a valid relative file path/);
    const wrongKey = serve('/c/steps-key.json', 'application/json', { steps: [{ id: 'acme-other', url: stepYml }] });
    await expect(stepAdd(wrongKey, 'acme-other', await project())).rejects.toThrow(/type_key .* does not match catalog ID/);
    const notMapping = serve('/c/steps-list.json', 'application/json', { steps: [{ id: 'acme-step', url: stepYml, extra_files: ['x'] }] });
    expect((await stepAdd(notMapping, 'acme-step', await project())).warnings).toEqual([expect.stringMatching(/not a mapping/)]);
    const tooMany = serve('/c/steps-many.json', 'application/json', { steps: { 'acme-step': { url: stepYml, extra_files: Object.fromEntries(Array.from({ length: 511 }, (_, i) => [`f${i}.py`, helper])) } } });
    await expect(stepAdd(tooMany, 'acme-step', await project())).rejects.toThrow(/513 files, exceeding the 512-file limit/);
  });
});

describe('integrations', () => {
  it('searches and shows entries, and needs schema_version', async () => {
    const catalog = serve('/c/int.json', 'application/json', { schema_version: '1.0', integrations: { 'acme-ai': { name: 'Acme AI', version: '1.0.0', description: 'An agent', tags: ['agents'] } } });
    expect((await integrationSearch(catalog, 'AGENT')).map((e) => e.id)).toEqual(['acme-ai']);
    expect(await integrationSearch(catalog, 'nothing')).toEqual([]);
    expect((await integrationInfo(catalog, 'acme-ai'))?.name).toBe('Acme AI');
    const bad = serve('/c/int-bad.json', 'application/json', { integrations: {} });
    await expect(integrationSearch(bad)).rejects.toThrow(/Failed to fetch any/);
  });
});

describe('bundles', () => {
  /** Live catalogs serve 1.1.0; the snapshot serves 1.0.0, which the bundle pins. */
  async function publish(prefix: string): Promise<void> {
    for (const version of ['1.0.0', '1.1.0']) {
      const zip = await makeZip({ 'extension.yml': ext('acme-hello', version), 'commands/go.md': version });
      serve(`/assets/acme-hello-${version}.zip`, 'application/zip', zip);
      serve(`/assets/acme-flow-${version}.yml`, 'application/yaml', wf('acme-flow', version));
    }
    const bundleYml = stringify({
      schema_version: '1.0',
      bundle: { id: 'acme-kit', name: 'Kit', version: '2.0.0', role: 'dev', description: 'd', author: 'a', license: 'MIT' },
      requires: { speckit_version: '>=0.1.0' },
      provides: { extensions: [{ id: 'acme-hello', version: '1.0.0' }, { id: 'agent-context', version: '1.0.0' }], workflows: [{ id: 'acme-flow', version: '1.0.0' }] },
    });
    const bundleZip = await makeZip({ 'bundle.yml': bundleYml });
    serve('/assets/acme-kit-2.0.0.zip', 'application/zip', bundleZip);
    serve('/assets/acme-kit-2.0.0.yml', 'application/yaml', bundleYml);
    for (const [root, version] of [[`${prefix}/catalogs`, '1.1.0'], [`${prefix}/catalogs/snapshots/2026-12`, '1.0.0']] as const) {
      serve(`${root}/extensions.json`, 'application/json', { schema_version: '1.0', extensions: { 'acme-hello': { name: 'Hello', version, description: 'd', download_url: `${base}/assets/acme-hello-${version}.zip` } } });
      serve(`${root}/workflows.json`, 'application/json', { schema_version: '1.0', workflows: { 'acme-flow': { name: 'Flow', version, url: `${base}/assets/acme-flow-${version}.yml` } } });
      for (const section of ['presets', 'steps', 'integrations']) serve(`${root}/${section}.json`, 'application/json', { schema_version: '1.0', [section]: {} });
      serve(`${root}/bundles.json`, 'application/json', { schema_version: '1.0', bundles: { 'acme-kit': { id: 'acme-kit', name: 'Kit', version: '2.0.0', download_url: `${base}/assets/acme-kit-2.0.0.zip` } } });
    }
  }
  const shipped = { extensions: { 'agent-context': '1.0.0' } };

  it('fails on the live catalogs, naming the pin and the version found, as upstream does', async () => {
    await publish('/b1');
    const live = `${base}/b1/catalogs`;
    const stacks = { extension: `${live}/extensions.json`, preset: `${live}/presets.json`, workflow: `${live}/workflows.json`, step: `${live}/steps.json` };
    const dir = await project();
    await expect(bundleInstall('acme-kit', dir, { sources: `${live}/bundles.json`, stacks, shipped })).rejects.toThrow(
      "Extension 'acme-hello' is pinned to version 1.0.0 in the bundle manifest, but the resolved version is 1.1.0.",
    );
  });

  it('installs through the files /setup?snapshot= generates (private server, token from auth.json), and refuses a shipped component pinned elsewhere', async () => {
    await publish('');
    const home = await project();
    const dir = await project();
    await mkdir(join(home, '.specify'));
    for (const file of clientSetup({ base: `${base}/private`, snapshot: '2026-12', privateServer: true, host: '127.0.0.1' }).files) {
      if (file.format !== 'env') await writeFile(join(home, '.specify', file.fileName), file.text);
    }
    // Without the token every private catalog answers 401.
    const anonymous = await speckitConfig({ home, project: dir, env: {} });
    await expect(bundleInstall('acme-kit', dir, { sources: anonymous.bundleSources, stacks: anonymous.stacks, headers: anonymous.auth, shipped })).rejects.toThrow(/HTTP Error 401/);

    const config = await speckitConfig({ home, project: dir, env: { [TOKEN_ENV]: TOKEN } });
    const result = await bundleInstall('acme-kit', dir, { sources: config.bundleSources, stacks: config.stacks, headers: config.auth, shipped });
    expect(result.source.id).toBe('release-server');
    expect(result.components.map((c) => [c.kind, c.id, c.version, c.how])).toEqual([
      ['extensions', 'acme-hello', '1.0.0', 'catalog'],
      ['extensions', 'agent-context', '1.0.0', 'shipped'],
      ['workflows', 'acme-flow', '1.0.0', 'catalog'],
    ]);
    expect(await readFile(join(dir, '.specify/extensions/acme-hello/commands/go.md'), 'utf8')).toBe('1.0.0');

    const again = await project();
    await expect(bundleInstall('acme-kit', again, { sources: config.bundleSources, stacks: config.stacks, headers: config.auth, shipped: { extensions: { 'agent-context': '1.2.0' } } })).rejects.toThrow(
      "Extension 'agent-context' is pinned to version 1.0.0 in the bundle manifest, but the resolved version is 1.2.0.",
    );
  });

  it('without the community override, the built-in community source makes search-like resolution fail offline', async () => {
    await publish('/b3');
    const sources = [
      { id: 'default', url: 'builtin://default', priority: 1, installAllowed: true },
      { id: 'community', url: 'builtin://community', priority: 20, installAllowed: false },
    ];
    const stacks = { extension: `${base}/b3/catalogs/extensions.json`, preset: `${base}/b3/catalogs/presets.json`, workflow: `${base}/b3/catalogs/workflows.json`, step: `${base}/b3/catalogs/steps.json` };
    await expect(bundleInstall('acme-kit', await project(), { sources, stacks })).rejects.toThrow(/community/);
  });

  it('takes a bare bundle.yml, and refuses a manifest whose version is not the catalog’s', async () => {
    await publish('/b4');
    const snap = `${base}/b4/catalogs/snapshots/2026-12`;
    const stacks = { extension: `${snap}/extensions.json`, preset: `${snap}/presets.json`, workflow: `${snap}/workflows.json`, step: `${snap}/steps.json` };
    const bare = serve('/b4/bare.json', 'application/json', { bundles: { 'acme-kit': { id: 'acme-kit', version: '2.0.0', download_url: `${base}/assets/acme-kit-2.0.0.yml` } } });
    expect((await bundleInstall('acme-kit', await project(), { sources: bare, stacks, shipped })).components).toHaveLength(3);
    const wrong = serve('/b4/wrong.json', 'application/json', { bundles: { 'acme-kit': { id: 'acme-kit', version: '2.0.1', download_url: `${base}/assets/acme-kit-2.0.0.zip` } } });
    await expect(bundleInstall('acme-kit', await project(), { sources: wrong, stacks, shipped })).rejects.toThrow(/version mismatch/);
    const tgz = serve('/b4/tgz.json', 'application/json', { bundles: { 'acme-kit': { id: 'acme-kit', version: '2.0.0', download_url: serve('/assets/kit.tar.gz', 'application/gzip', await tarGz([{ name: 'bundle.yml', body: 'x' }])) } } });
    await expect(bundleInstall('acme-kit', await project(), { sources: tgz, stacks, shipped })).rejects.toThrow();
  });
});
