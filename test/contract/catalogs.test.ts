import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogZip, templateZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { catalogAdd } from '../helpers/speckit-catalog-client.js';
import { eventually, storageContents } from '../helpers/storage-dir.js';
import { upload } from '../helpers/upload.js';
import { sha256 } from '../helpers/zip.js';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ env: { MAX_PACKAGES: '0', MAX_VERSIONS_PER_PACKAGE: '0' } });
});
afterAll(async () => {
  await server.stop();
});

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const auth = { authorization: `Bearer ${TOKEN}` };
const getJson = async (url: string): Promise<Json> => {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return (await res.json()) as Json;
};
const bytesAt = async (url: string): Promise<Buffer> => Buffer.from(await (await fetch(url)).arrayBuffer());

async function publish(base: string, zip: Buffer, name = 'upload.zip', query = ''): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([zip as BlobPart]), name);
  return fetch(`${base}/upload${query}`, { method: 'POST', body: form, headers: auth });
}

describe('publishing extensions, presets and workflows', () => {
  it('classifies by manifest and stores under kind, id and version, whatever the file was called', async () => {
    const zip = await catalogZip('extension', { id: 'pub-hello', version: '1.2.0' });
    const res = await publish(server.url, zip, 'my-local-build (3).zip');
    expect(res.status).toBe(201);
    const pkg = await res.json();
    expect(pkg).toMatchObject({ name: 'extension-pub-hello-1.2.0.zip', kind: 'extension', id: 'pub-hello', version: '1.2.0', tag: null, sha256: sha256(zip), size: zip.length });
    expect(pkg.download_url).toBe(`${server.url}/assets/extension-pub-hello-1.2.0.zip`);
    expect(res.headers.get('location')).toBe(pkg.download_url);
    expect((await bytesAt(pkg.download_url)).equals(zip)).toBe(true);

    for (const kind of ['preset', 'workflow'] as const) {
      const other = await publish(server.url, await catalogZip(kind, { id: `pub-${kind}`, dir: `pub-${kind}-1.0.0` }));
      expect(other.status).toBe(201);
      expect(await other.json()).toMatchObject({ name: `${kind}-pub-${kind}-1.0.0.zip`, kind, id: `pub-${kind}`, version: '1.0.0' });
    }
  });

  it('keeps id + version immutable: 409, unless overwrite=true; 1.0 and 1.0.0 are one version', async () => {
    const first = await catalogZip('extension', { id: 'pub-immutable', version: '1.0.0' });
    expect((await publish(server.url, first)).status).toBe(201);
    const second = await catalogZip('extension', { id: 'pub-immutable', version: '1.0.0', info: { description: 'changed' } });
    const conflict = await publish(server.url, second);
    expect(conflict.status).toBe(409);
    expect(conflict.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await conflict.json()).detail).toContain('extension pub-immutable 1.0.0 already exists');
    const shorter = await publish(server.url, await catalogZip('extension', { id: 'pub-immutable', version: '1.0' }));
    expect(shorter.status).toBe(409);
    expect((await bytesAt(`${server.url}/assets/extension-pub-immutable-1.0.0.zip`)).equals(first)).toBe(true);

    const replaced = await publish(server.url, second, 'x.zip', '?overwrite=true');
    expect(replaced.status).toBe(200);
    expect((await bytesAt(`${server.url}/assets/extension-pub-immutable-1.0.0.zip`)).equals(second)).toBe(true);
    expect((await getJson(`${server.url}/catalogs/extensions/pub-immutable`)).versions).toHaveLength(1);
  });

  it('stores 1.0.0 uploaded over 1.0 under the new spelling only, keeping its first upload time and downloads', async () => {
    const first = await publish(server.url, await catalogZip('extension', { id: 'pub-respelled', version: '1.0' }));
    expect(first.status).toBe(201);
    const created = (await first.json()).created_at;
    await bytesAt(`${server.url}/assets/extension-pub-respelled-1.0.zip`);
    await bytesAt(`${server.url}/assets/extension-pub-respelled-1.0.zip`);
    const again = await catalogZip('extension', { id: 'pub-respelled', version: '1.0.0', info: { description: 'respelled' } });
    const res = await publish(server.url, again, 'x.zip', '?overwrite=true');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: 'extension-pub-respelled-1.0.0.zip', version: '1.0.0', created_at: created, download_count: 2 });
    expect((await fetch(`${server.url}/assets/extension-pub-respelled-1.0.zip`)).status).toBe(404);
    expect((await bytesAt(`${server.url}/assets/extension-pub-respelled-1.0.0.zip`)).equals(again)).toBe(true);
    const listed = ((await getJson(`${server.url}/packages?format=json`)) as Json[]).filter((p) => p.id === 'pub-respelled');
    expect(listed.map((p) => [p.name, p.download_count])).toEqual([['extension-pub-respelled-1.0.0.zip', 3]]);
  });

  it('refuses ?tag= for a catalog package: its version is its manifest', async () => {
    const res = await publish(server.url, await catalogZip('preset', { id: 'pub-tagged' }), 'p.zip', '?tag=v1.0.0');
    expect(res.status).toBe(400);
    expect((await res.json()).type).toBe('urn:release-server:problem:invalid-tag');
    expect((await fetch(`${server.url}/catalogs/presets/pub-tagged`)).status).toBe(404);
  });

  it('keeps catalog packages out of /latest and /releases, which stay templates only', async () => {
    await publish(server.url, await catalogZip('extension', { id: 'pub-not-a-template', version: '9.9.9' }));
    const latest = await getJson(`${server.url}/latest`);
    expect(latest.assets.map((a: Json) => a.name).filter((n: string) => n.includes('pub-not-a-template'))).toEqual([]);
    expect((await getJson(`${server.url}/releases`)).map((r: Json) => r.tag_name)).not.toContain('v9.9.9');
  });
});

describe('GET /catalogs/{kind}.json', () => {
  let catalog: RunningServer;
  beforeAll(async () => {
    catalog = await startServer({ env: { PUBLIC_URL: 'https://specs.example.com/org', MAX_VERSIONS_PER_PACKAGE: '0' } });
    const versions = ['1.9.0', '1.10.0', '2.0.0rc1', '1.0.0'];
    for (const v of versions) expect((await publish(catalog.url, await catalogZip('extension', { id: 'acme-hello', version: v }))).status).toBe(201);
    // Only pre-releases: the highest of them is served.
    for (const v of ['0.1.0b1', '0.1.0a2']) expect((await publish(catalog.url, await catalogZip('extension', { id: 'acme-beta', version: v }))).status).toBe(201);
    const rich = {
      info: { category: 'process', effect: 'read-only', repository: 'https://git.example.com/acme/rich', homepage: 'https://acme.example.com', documentation: 'https://docs.example.com', changelog: 'https://git.example.com/acme/rich/CHANGELOG.md' },
      manifest: {
        requires: { speckit_version: '>=0.1.0', tools: [{ name: 'jq', version: '>=1.6', required: false }] },
        hooks: { after_tasks: { command: 'speckit.acme-rich.greet', optional: true, priority: 10 } },
      },
    };
    expect((await publish(catalog.url, await catalogZip('extension', { id: 'acme-rich', ...rich }))).status).toBe(201);
    expect((await publish(catalog.url, await catalogZip('preset', { id: 'acme-preset', version: '2.0.0' }))).status).toBe(201);
    expect((await publish(catalog.url, await catalogZip('workflow', { id: 'acme-flow', version: '1.1.0' }))).status).toBe(201);
    await upload(catalog.url, 'spec-kit-template-claude-sh-v1.0.0.zip', 'a template');
  });
  afterAll(async () => {
    await catalog.stop();
  });

  it('serves one entry per id: its highest release by PEP 440, a pre-release only when there is no release', async () => {
    const doc = await getJson(`${catalog.url}/catalogs/extensions.json`);
    expect(doc.schema_version).toBe('1.0');
    expect(doc.catalog_url).toBe('https://specs.example.com/org/catalogs/extensions.json');
    expect(Object.keys(doc.extensions).sort()).toEqual(['acme-beta', 'acme-hello', 'acme-rich']);
    expect(doc.extensions['acme-hello'].version).toBe('1.10.0');
    expect(doc.extensions['acme-beta'].version).toBe('0.1.0b1');
    const served = (await getJson(`${catalog.url}/packages?format=json&kind=extension`)).find((p: Json) => p.id === 'acme-hello' && p.version === '1.10.0');
    expect(doc.updated_at >= served.updated_at).toBe(true);
  });

  it('carries everything the CLI shows, from the manifest, and an absolute download_url on the public URL; nothing the CLI does not read', async () => {
    const doc = await getJson(`${catalog.url}/catalogs/extensions.json`);
    const rich = doc.extensions['acme-rich'];
    const bytes = await bytesAt(`${catalog.url}/assets/extension-acme-rich-1.0.0.zip`);
    expect(rich).toEqual({
      id: 'acme-rich',
      name: 'Ext acme-rich',
      version: '1.0.0',
      description: 'The acme-rich extension',
      author: 'Acme',
      license: 'MIT',
      category: 'process',
      effect: 'read-only',
      tags: ['acme'],
      requires: { speckit_version: '>=0.1.0', tools: [{ name: 'jq', version: '>=1.6', required: false }] },
      provides: { commands: 1, hooks: 1 },
      repository: 'https://git.example.com/acme/rich',
      homepage: 'https://acme.example.com',
      documentation: 'https://docs.example.com',
      changelog: 'https://git.example.com/acme/rich/CHANGELOG.md',
      download_url: 'https://specs.example.com/org/assets/extension-acme-rich-1.0.0.zip',
      sha256: sha256(bytes),
      downloads: expect.any(Number),
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
  });

  it('counts real downloads, summed over the versions of an id', async () => {
    const before = (await getJson(`${catalog.url}/catalogs/extensions.json`)).extensions['acme-hello'].downloads;
    await bytesAt(`${catalog.url}/assets/extension-acme-hello-1.10.0.zip`);
    await bytesAt(`${catalog.url}/assets/extension-acme-hello-1.0.0.zip`);
    await eventually(async () => expect((await getJson(`${catalog.url}/catalogs/extensions.json`)).extensions['acme-hello'].downloads).toBe(before + 2), 3000);
    const versions = (await getJson(`${catalog.url}/catalogs/extensions/acme-hello`)).versions;
    expect(versions.find((v: Json) => v.version === '1.0.0').downloads).toBeGreaterThanOrEqual(1);
  });

  it('serves presets with download_url and workflows with url', async () => {
    const presets = await getJson(`${catalog.url}/catalogs/presets.json`);
    expect(presets.presets['acme-preset']).toMatchObject({ version: '2.0.0', download_url: 'https://specs.example.com/org/assets/preset-acme-preset-2.0.0.zip', provides: { templates: 1 } });
    const workflows = await getJson(`${catalog.url}/catalogs/workflows.json`);
    expect(workflows.catalog_url).toBe('https://specs.example.com/org/catalogs/workflows.json');
    expect(workflows.workflows['acme-flow']).toMatchObject({ version: '1.1.0', url: 'https://specs.example.com/org/assets/workflow-acme-flow-1.1.0.zip' });
    expect(workflows.workflows['acme-flow'].download_url).toBeUndefined();
  });

  it('answers with a strong ETag, 304 for If-None-Match, and a new ETag once the catalog changes', async () => {
    const first = await fetch(`${catalog.url}/catalogs/presets.json`);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[^"]+"$/);
    const body = await first.text();
    const again = await fetch(`${catalog.url}/catalogs/presets.json`);
    expect(again.headers.get('etag')).toBe(etag);
    expect(await again.text()).toBe(body);
    const cached = await fetch(`${catalog.url}/catalogs/presets.json`, { headers: { 'if-none-match': etag } });
    expect(cached.status).toBe(304);
    expect(await cached.text()).toBe('');
    expect((await publish(catalog.url, await catalogZip('preset', { id: 'acme-preset-two' }))).status).toBe(201);
    const changed = await fetch(`${catalog.url}/catalogs/presets.json`, { headers: { 'if-none-match': etag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
    expect(Object.keys((await changed.json()).presets)).toContain('acme-preset-two');
  });
});

describe('GET /catalogs/{kind}/{id}', () => {
  it('lists every stored version, highest PEP 440 first, each downloadable at its own URL', async () => {
    for (const v of ['0.9.0', '0.10.0', '0.10.0rc1']) expect((await publish(server.url, await catalogZip('extension', { id: 'ver-list', version: v }))).status).toBe(201);
    const doc = await getJson(`${server.url}/catalogs/extensions/ver-list`);
    expect(doc.kind).toBe('extension');
    expect(doc.id).toBe('ver-list');
    expect(doc.versions.map((v: Json) => v.version)).toEqual(['0.10.0', '0.10.0rc1', '0.9.0']);
    for (const version of doc.versions) {
      expect(Object.keys(version).sort()).toEqual(['created_at', 'download_url', 'downloads', 'sha256', 'size', 'version']);
      const bytes = await bytesAt(version.download_url);
      expect(sha256(bytes)).toBe(version.sha256);
      expect(bytes.length).toBe(version.size);
    }
  });

  it('uses url for workflow versions, and answers 404 problem+json for an unknown id', async () => {
    await publish(server.url, await catalogZip('workflow', { id: 'ver-flow' }));
    const doc = await getJson(`${server.url}/catalogs/workflows/ver-flow`);
    expect(doc.versions[0].url).toBe(`${server.url}/assets/workflow-ver-flow-1.0.0.zip`);
    const missing = await fetch(`${server.url}/catalogs/extensions/no-such-extension`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await fetch(`${server.url}/catalogs/themes/ver-flow`)).status).toBe(400);
  });
});

describe('deleting and retention', () => {
  it('DELETE of a version URL removes it; the catalog falls back to the next version at once', async () => {
    for (const v of ['1.0.0', '2.0.0']) await publish(server.url, await catalogZip('extension', { id: 'del-me', version: v }));
    expect((await getJson(`${server.url}/catalogs/extensions.json`)).extensions['del-me'].version).toBe('2.0.0');
    const res = await fetch(`${server.url}/assets/extension-del-me-2.0.0.zip`, { method: 'DELETE', headers: auth });
    expect(res.status).toBe(204);
    expect((await getJson(`${server.url}/catalogs/extensions.json`)).extensions['del-me'].version).toBe('1.0.0');
    await fetch(`${server.url}/assets/extension-del-me-1.0.0.zip`, { method: 'DELETE', headers: auth });
    expect((await getJson(`${server.url}/catalogs/extensions.json`)).extensions['del-me']).toBeUndefined();
    expect((await fetch(`${server.url}/catalogs/extensions/del-me`)).status).toBe(404);
  });

  it('keeps max_versions_per_package versions per id, lowest deleted first, never the one served', async () => {
    const kept = await startServer({ env: { MAX_VERSIONS_PER_PACKAGE: '2', MAX_PACKAGES: '1' } });
    try {
      const versions = (id: string) => getJson(`${kept.url}/catalogs/extensions/${id}`).then((d) => d.versions.map((v: Json) => v.version));
      for (const v of ['1.0.0', '2.0.0', '1.5.0']) expect((await publish(kept.url, await catalogZip('extension', { id: 'ret', version: v }))).status).toBe(201);
      // 1.5.0 was just uploaded and 2.0.0 is served: 1.0.0 goes.
      expect(await versions('ret')).toEqual(['2.0.0', '1.5.0']);
      // Pre-releases never displace the served release.
      for (const v of ['3.0.0rc1', '3.0.0rc2']) await publish(kept.url, await catalogZip('extension', { id: 'ret', version: v }));
      expect(await versions('ret')).toEqual(['3.0.0rc2', '2.0.0']);
      expect((await getJson(`${kept.url}/catalogs/extensions.json`)).extensions.ret.version).toBe('2.0.0');
      // Other ids, and templates, are counted apart: max_packages=1 counts templates only.
      await publish(kept.url, await catalogZip('extension', { id: 'other' }));
      await upload(kept.url, 'spec-kit-template-claude-sh-v1.0.0.zip', 'one');
      await upload(kept.url, 'spec-kit-template-claude-sh-v1.1.0.zip', 'two');
      const listed = await getJson(`${kept.url}/packages?format=json`);
      expect(listed.filter((p: Json) => p.kind === 'template').map((p: Json) => p.name)).toEqual(['spec-kit-template-claude-sh-v1.1.0.zip']);
      expect(listed.filter((p: Json) => p.kind === 'extension')).toHaveLength(3);
      expect((await storageContents(kept.storagePath)).packages).toHaveLength(4);
    } finally {
      await kept.stop();
    }
  });
});

describe('GET /packages with kinds', () => {
  it('lists every kind in JSON with kind, id and version, and filters with ?kind=', async () => {
    await upload(server.url, 'spec-kit-template-copilot-ps-v0.1.0.zip', 'template');
    await publish(server.url, await catalogZip('preset', { id: 'list-preset' }));
    const all = await getJson(`${server.url}/packages?format=json`);
    expect(new Set(all.map((p: Json) => p.kind))).toEqual(new Set(['template', 'extension', 'preset', 'workflow']));
    const template = all.find((p: Json) => p.name === 'spec-kit-template-copilot-ps-v0.1.0.zip');
    expect(template.kind).toBe('template');
    expect(template.id).toBeUndefined();
    const presets = await getJson(`${server.url}/packages?format=json&kind=preset`);
    expect(presets.length).toBeGreaterThan(0);
    expect(presets.every((p: Json) => p.kind === 'preset' && typeof p.id === 'string' && typeof p.version === 'string')).toBe(true);
    expect(presets.find((p: Json) => p.id === 'list-preset').name).toBe('preset-list-preset-1.0.0.zip');
    expect((await fetch(`${server.url}/packages?format=json&kind=theme`)).status).toBe(400);
  });

  it('shows the kinds apart in HTML, with the lines that install each', async () => {
    await publish(server.url, await catalogZip('extension', { id: 'html-hello' }));
    const html = await (await fetch(`${server.url}/packages`)).text();
    const shown = html.replaceAll('&#x3D;', '=').replaceAll('&#x2F;', '/').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
    // One set-up per kind, and per package only what differs: its install command and its page.
    expect(shown).toContain(`SPECKIT_CATALOG_URL=${server.url}/catalogs/extensions.json specify extension add <id>`);
    expect(shown).toContain('<code>specify extension add html-hello</code>');
    expect(shown).toContain(`href="${server.url}/packages/extension/html-hello"`);
    expect(shown).toContain(`SPECKIT_PRESET_CATALOG_URL=${server.url}/catalogs/presets.json specify preset add <id>`);
    expect(shown).toContain(`SPECKIT_WORKFLOW_CATALOG_URL=${server.url}/catalogs/workflows.json specify workflow add <id>`);
    expect(shown).toContain('.specify/extension-catalogs.yml');
    expect(shown).toMatch(new RegExp(`url: ${server.url.replaceAll('.', '\\.')}/catalogs/extensions\\.json\\s+priority: 1\\s+install_allowed: true`));
    for (const id of ['extensions', 'presets', 'workflows', 'templates']) expect(html).toContain(`id="${id}"`);
  });
});

describe('a client that follows the CLI’s rules installs what the server publishes', () => {
  it.each(['extension', 'preset', 'workflow'] as const)('%s: catalog → entry → download → sha256 → safe extraction → manifest id = catalog key', async (kind) => {
    const id = `client-${kind}`;
    const zip = await catalogZip(kind, { id, version: '3.1.4', dir: `${id}-3.1.4` });
    expect((await publish(server.url, zip)).status).toBe(201);
    const project = await mkdtemp(join(tmpdir(), 'rs-project-'));
    const section = `${kind}s`;
    const installed = await catalogAdd(`${server.url}/catalogs/${section}.json`, kind, id, project);
    expect(installed.path).toBe(join(project, '.specify', section, id));
    expect(installed.manifest[kind]!.version).toBe('3.1.4');
    const manifest = await readFile(join(installed.path, `${kind}.yml`), 'utf8');
    expect(manifest).toContain(`id: ${id}`);
  });

  it('an extension is also found by its display name, and a template is not in any catalog', async () => {
    const project = await mkdtemp(join(tmpdir(), 'rs-project-'));
    const installed = await catalogAdd(`${server.url}/catalogs/extensions.json`, 'extension', 'EXT CLIENT-EXTENSION', project);
    expect(installed.entry.id).toBe('client-extension');
    await upload(server.url, 'spec-kit-template-gemini-sh-v0.1.0.zip', await templateZip('t'));
    await expect(catalogAdd(`${server.url}/catalogs/extensions.json`, 'extension', 'spec-kit-template-gemini-sh-v0.1.0', project)).rejects.toThrow('not found');
  });
});
