import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleYaml, catalogFiles, catalogZip, integrationYaml, stepZip, workflowManifest } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { bundleInstall, catalogAdd, integrationInfo, stepAdd } from '../helpers/speckit-catalog-client.js';
import { speckitConfig } from '../helpers/speckit-config.js';
import { tarGz, tarGzFiles } from '../helpers/tar.js';
import { makeZip } from '../helpers/zip.js';
import { stringify } from 'yaml';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const auth = { authorization: `Bearer ${TOKEN}` };
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

async function publish(base: string, bytes: Buffer | string, name: string, query = ''): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([Buffer.from(bytes) as BlobPart]), name);
  return fetch(`${base}/upload${query}`, { method: 'POST', body: form, headers: auth });
}
async function stored(base: string, bytes: Buffer | string, name: string, query = ''): Promise<Json> {
  const res = await publish(base, bytes, name, query);
  const body = await res.json();
  expect(res.status, JSON.stringify(body)).toBeLessThan(300);
  return body;
}
const getJson = async (url: string): Promise<Json> => {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  return (await res.json()) as Json;
};
const project = () => mkdtemp(join(tmpdir(), 'rs-kinds-project-'));

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ env: { MAX_VERSIONS_PER_PACKAGE: '0' } });
});
afterAll(async () => {
  await server.stop();
});

describe('workflow steps', () => {
  const helper = 'def lint(text):\n    return text.strip()\n';
  let entry: Json;
  it('are published as a zip and listed with a URL for each file, fixed by the package sha256', async () => {
    const zip = await stepZip('acme-lint', { dir: 'acme-lint', extra: { 'lib/helper.py': helper, 'README.md': '# Lint\n' } });
    const body = await stored(server.url, zip, 'anything.zip');
    expect(body).toMatchObject({ name: 'step-acme-lint-1.0.0.zip', kind: 'step', id: 'acme-lint', version: '1.0.0' });
    entry = (await getJson(`${server.url}/catalogs/steps.json`)).steps['acme-lint'];
    const files = `${server.url}/files/${sha256(zip)}`;
    expect(entry).toEqual({
      id: 'acme-lint',
      name: 'Step acme-lint',
      version: '1.0.0',
      description: 'The acme-lint step',
      author: 'Acme',
      step_yml_url: `${files}/step.yml`,
      init_url: `${files}/__init__.py`,
      extra_files: { 'lib/helper.py': `${files}/lib%2Fhelper.py`, 'README.md': `${files}/README.md` },
      sha256: sha256(zip),
    });
  });

  it('install with the CLI rules: every file byte for byte, and the step.yml type_key equal to the id', async () => {
    const dir = await project();
    const installed = await stepAdd(`${server.url}/catalogs/steps.json`, 'acme-lint', dir);
    expect(installed.files.sort()).toEqual(['README.md', '__init__.py', 'lib/helper.py', 'step.yml']);
    expect(await readFile(join(installed.path, 'lib/helper.py'), 'utf8')).toBe(helper);
    expect(await readFile(join(installed.path, '__init__.py'), 'utf8')).toContain('type_key = "acme-lint"');
    // An install is one download: the fetch of its step.yml.
    await expect.poll(async () => (await getJson(`${server.url}/catalogs/steps/acme-lint`)).versions[0].downloads, { timeout: 5000 }).toBe(1);
  });

  it('serve each file immutable (ETag, 304), and nothing else under /files', async () => {
    const res = await fetch(entry.init_url);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('immutable');
    const text = await res.text();
    expect(res.headers.get('etag')).toBe(`"${sha256(text)}"`);
    expect((await fetch(entry.init_url, { headers: { 'if-none-match': res.headers.get('etag')! } })).status).toBe(304);
    const head = await fetch(entry.init_url, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length'), head.headers.get('etag')]).toEqual([200, String(Buffer.byteLength(text)), res.headers.get('etag')]);
    const base = entry.init_url.replace(/__init__\.py$/, '');
    for (const path of ['..%2F..%2Fetc%2Fpasswd', 'acme-lint%2Fstep.yml', 'nope.py', '%2E%2E', 'lib']) {
      const miss = await fetch(base + path);
      expect(miss.status, path).toBe(404);
      expect(miss.headers.get('content-type')).toContain('application/problem+json');
    }
    // Another kind's bytes are never served file by file.
    const ext = await stored(server.url, await catalogZip('extension', { id: 'files-ext' }), 'e.zip');
    expect((await fetch(`${server.url}/files/${ext.sha256}/extension.yml`)).status).toBe(404);
    expect((await fetch(`${server.url}/files/not-a-sha/step.yml`)).status).toBe(400);
  });

  it('never change under a URL: an overwrite gives new URLs, and the old ones 404', async () => {
    const zip = await stepZip('acme-lint', { dir: 'acme-lint', init: 'print("replaced")\n', extra: { 'lib/helper.py': helper } });
    await stored(server.url, zip, 'step.zip', '?overwrite=true');
    expect((await fetch(entry.init_url)).status).toBe(404);
    const now = (await getJson(`${server.url}/catalogs/steps.json`)).steps['acme-lint'];
    expect(now.init_url).not.toBe(entry.init_url);
    expect(await (await fetch(now.init_url)).text()).toBe('print("replaced")\n');
  });

  it('are refused without __init__.py, as a bare step.yml, or with a built-in step type for an id', async () => {
    const noInit = await publish(server.url, await makeZip({ 'step.yml': stringify({ step: { type_key: 'acme-x', name: 'x', version: '1.0.0', description: 'x' } }) }), 's.zip');
    expect(noInit.status).toBe(422);
    expect(JSON.stringify(await noInit.json())).toContain('__init__.py');
    const bare = await publish(server.url, stringify({ step: { type_key: 'acme-x', name: 'x', version: '1.0.0', description: 'x' } }), 'step.yml');
    expect(bare.status).toBe(422);
    const builtIn = await publish(server.url, await stepZip('shell'), 's.zip');
    expect(builtIn.status).toBe(422);
    expect((await getJson(`${server.url}/catalogs/steps.json`)).steps).not.toHaveProperty('shell');
  });
});

describe('archives and formats', () => {
  it('takes an extension as tar.gz: stored and served with its suffix and type, installed by the CLI rules', async () => {
    const tgz = tarGzFiles(catalogFiles('extension', 'tar-ext'));
    const body = await stored(server.url, tgz, 'tar-ext.tgz');
    expect(body.name).toBe('extension-tar-ext-1.0.0.tar.gz');
    const entry = (await getJson(`${server.url}/catalogs/extensions.json`)).extensions['tar-ext'];
    expect(entry.download_url).toBe(`${server.url}/assets/extension-tar-ext-1.0.0.tar.gz`);
    expect(entry.sha256).toBe(sha256(tgz));
    const download = await fetch(entry.download_url);
    expect(download.headers.get('content-type')).toBe('application/gzip');
    expect(Buffer.from(await download.arrayBuffer()).equals(tgz)).toBe(true);
    const installed = await catalogAdd(`${server.url}/catalogs/extensions.json`, 'extension', 'tar-ext', await project());
    expect((installed.manifest.extension as Json).id).toBe('tar-ext');
  });

  it('refuses a tar.gz with a symlink, and a bundle as tar.gz, storing nothing', async () => {
    const files = catalogFiles('preset', 'tar-link');
    const linked = tarGz([...Object.entries(files).map(([name, data]) => ({ name, data })), { name: 'templates/evil.md', type: '2', linkname: '/etc/passwd' }]);
    const refused = await publish(server.url, linked, 'p.tar.gz');
    expect(refused.status).toBe(422);
    expect(JSON.stringify(await refused.json())).toContain('templates/evil.md');
    const bundle = await publish(server.url, tarGzFiles({ 'bundle.yml': bundleYaml('tar-bundle', '1.0.0', {}) }), 'b.tar.gz');
    expect(bundle.status).toBe(422);
    const all = (await getJson(`${server.url}/packages?format=json`)) as unknown as Json[];
    expect(all.map((p) => p.name)).not.toContain('preset-tar-link-1.0.0.tar.gz');
  });

  it('takes a bare workflow.yml, served as YAML from url, installed by the CLI rules', async () => {
    const yaml = stringify(workflowManifest('bare-flow', '1.0.0'));
    const body = await stored(server.url, yaml, 'workflow.yml');
    expect(body.name).toBe('workflow-bare-flow-1.0.0.yml');
    const entry = (await getJson(`${server.url}/catalogs/workflows.json`)).workflows['bare-flow'];
    expect(entry.url).toBe(`${server.url}/assets/workflow-bare-flow-1.0.0.yml`);
    const download = await fetch(entry.url);
    expect(download.headers.get('content-type')).toBe('application/yaml');
    expect(await download.text()).toBe(yaml);
    const installed = await catalogAdd(`${server.url}/catalogs/workflows.json`, 'workflow', 'bare-flow', await project());
    expect((installed.manifest.workflow as Json).version).toBe('1.0.0');
  });

  it('lists integrations for search and info, with no download at all', async () => {
    const body = await stored(server.url, integrationYaml('acme-agent'), 'integration.yml');
    expect(body.name).toBe('integration-acme-agent-1.0.0.yml');
    const entry = (await getJson(`${server.url}/catalogs/integrations.json`)).integrations['acme-agent'];
    expect(entry).toEqual({ id: 'acme-agent', name: 'Agent acme-agent', version: '1.0.0', description: 'Integration for acme-agent', author: 'Acme', license: 'MIT', repository: 'https://example.com/acme-agent' });
    expect(await integrationInfo(`${server.url}/catalogs/integrations.json`, 'acme-agent')).toMatchObject({ name: 'Agent acme-agent' });
  });

  it('gives every downloadable entry of every catalog a 64-hex sha256 and absolute loopback-or-https URLs', async () => {
    let checked = 0;
    for (const section of ['extensions', 'presets', 'workflows', 'steps', 'bundles', 'integrations']) {
      const doc = await getJson(`${server.url}/catalogs/${section}.json`);
      for (const entry of Object.values(doc[section] as Record<string, Json>)) {
        const urls = [entry.download_url, entry.url, entry.step_yml_url, entry.init_url, ...Object.values(entry.extra_files ?? {})].filter(Boolean) as string[];
        if (section !== 'integrations') expect(entry.sha256).toMatch(/^[0-9a-f]{64}$/);
        else expect(urls).toEqual([]);
        for (const url of urls) {
          const parsed = new URL(url);
          expect(parsed.protocol === 'https:' || parsed.hostname === '127.0.0.1' || parsed.hostname === 'localhost').toBe(true);
          checked += 1;
        }
      }
    }
    expect(checked).toBeGreaterThan(5);
  });
});

describe('bundles', () => {
  beforeAll(async () => {
    await stored(server.url, await catalogZip('extension', { id: 'team-ext', version: '1.0.0' }), 'e.zip');
    await stored(server.url, await catalogZip('preset', { id: 'team-preset', version: '1.0.0' }), 'p.zip');
    await stored(server.url, await catalogZip('workflow', { id: 'team-flow', version: '1.0.0' }), 'w.zip');
    await stored(server.url, await stepZip('team-step'), 's.zip');
  });

  it('are refused with 422 naming each pin that would not install, storing nothing', async () => {
    const res = await publish(
      server.url,
      bundleYaml('bad-team', '1.0.0', {
        extensions: [{ id: 'team-ext', version: '2.0.0' }, { id: 'agent-context', version: '9.0.0' }],
        presets: [{ id: 'nowhere-preset', version: '1.0.0' }],
        workflows: [{ id: 'team-flow', version: '1.0.0' }],
      }),
      'bundle.yml',
    );
    expect(res.status).toBe(422);
    const problem = await res.json();
    const paths = problem.errors.map((e: Json) => e.path);
    expect(paths).toEqual(['provides.extensions[0] (team-ext)', 'provides.extensions[1] (agent-context)', 'provides.presets[2] (nowhere-preset)']);
    expect(problem.errors[0].message).toBe('extension team-ext is pinned to 2.0.0, which this server does not have (it has 1.0.0)');
    expect(problem.errors[1].message).toContain('ships with the spec-kit CLI');
    expect((await getJson(`${server.url}/catalogs/bundles.json`)).bundles).not.toHaveProperty('bad-team');
  });

  it('are stored when every pin resolves (here or shipped with the CLI), and listed as the CLI reads them', async () => {
    const yaml = bundleYaml('team-kit', '1.0.0', {
      extensions: [{ id: 'team-ext', version: '1.0.0' }, { id: 'agent-context', version: '1.0.0' }],
      presets: [{ id: 'team-preset', version: '1.0.0' }],
      steps: [{ id: 'team-step' }],
      workflows: [{ id: 'team-flow', version: '1.0.0' }],
    });
    const body = await stored(server.url, yaml, 'bundle.yml');
    expect(body.name).toBe('bundle-team-kit-1.0.0.yml');
    const entry = (await getJson(`${server.url}/catalogs/bundles.json`)).bundles['team-kit'];
    expect(entry).toEqual({
      id: 'team-kit',
      name: 'Bundle team-kit',
      version: '1.0.0',
      role: 'developer',
      description: 'The team-kit bundle',
      author: 'Acme',
      license: 'MIT',
      requires: { speckit_version: '>=0.1.0' },
      provides: { extensions: 2, presets: 1, steps: 1, workflows: 1 },
      tags: ['acme'],
      download_url: `${server.url}/assets/bundle-team-kit-1.0.0.yml`,
      sha256: sha256(yaml),
    });
  });

  it('keep what they pin: 409 naming the bundle for a delete, until the bundle goes first', async () => {
    const refused = await fetch(`${server.url}/assets/extension-team-ext-1.0.0.zip`, { method: 'DELETE', headers: auth });
    expect(refused.status).toBe(409);
    expect((await refused.json()).detail).toContain('bundle team-kit 1.0.0');
    const versions = await getJson(`${server.url}/catalogs/extensions/team-ext`);
    expect(versions.versions[0].held_by).toEqual(['bundle team-kit 1.0.0']);
    // The unpinned step is not held: the CLI takes whatever version the step catalog serves.
    expect((await getJson(`${server.url}/catalogs/steps/team-step`)).versions[0].held_by).toBeUndefined();
  });

  it('install pinned to older versions through /setup?snapshot=, and fail through the live catalogs', async () => {
    const made = await fetch(`${server.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"stable"}', headers: { ...auth, 'content-type': 'application/json' } });
    expect(made.status).toBe(201);
    await stored(server.url, await catalogZip('extension', { id: 'team-ext', version: '1.1.0' }), 'e.zip');
    // A new snapshot would serve team-ext 1.1.0 while team-kit pins 1.0.0: refused, naming the pin.
    const later = await fetch(`${server.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"later"}', headers: { ...auth, 'content-type': 'application/json' } });
    expect(later.status).toBe(409);
    expect((await later.json()).detail).toContain('bundle team-kit 1.0.0: provides.extensions[0] (team-ext): extension team-ext is pinned to 1.0.0, which snapshot later does not have (it has 1.1.0)');

    const install = async (snapshot: string | null) => {
      const home = await mkdtemp(join(tmpdir(), 'rs-kinds-home-'));
      await mkdir(join(home, '.specify'));
      for (const format of ['extension-catalogs.yml', 'preset-catalogs.yml', 'workflow-catalogs.yml', 'step-catalogs.yml', 'integration-catalogs.yml', 'bundle-catalogs.yml']) {
        const query = new URLSearchParams(snapshot ? { format, snapshot } : { format });
        const res = await fetch(`${server.url}/setup?${query}`);
        expect(res.status).toBe(200);
        await writeFile(join(home, '.specify', format), await res.text());
      }
      const dir = await project();
      const config = await speckitConfig({ home, project: dir, env: {} });
      return bundleInstall('team-kit', dir, { sources: config.bundleSources, stacks: config.stacks, headers: config.auth, shipped: { extensions: { 'agent-context': '1.0.0' } } });
    };
    const pinned = await install('stable');
    expect(pinned.components.map((c) => [c.kind, c.id, c.version, c.how])).toContainEqual(['extensions', 'team-ext', '1.0.0', 'catalog']);
    await expect(install(null)).rejects.toThrow(/pinned to version 1\.0\.0 .*resolved version is 1\.1\.0/);
  });
});
