import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { catalogAdd } from '../helpers/speckit-catalog-client.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const bearer = (token = TOKEN) => ({ authorization: `Bearer ${token}` });

async function publish(base: string, bytes: Buffer, query = '', name = 'pkg.zip'): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([bytes as BlobPart]), name);
  return fetch(`${base}/upload${query}`, { method: 'POST', body: form, headers: bearer() });
}

async function snapshot(base: string, body: Json, token = TOKEN): Promise<Response> {
  return fetch(`${base}/catalogs/snapshots`, { method: 'POST', body: JSON.stringify(body), headers: { ...bearer(token), 'content-type': 'application/json' } });
}

const CURATOR = 'snapshot-curator-token-0123456789';
const WRITER = 'snapshot-writer-token-0123456789';
const PUBLISHER = 'verified-publisher-token-0123456789';

let server: RunningServer;
beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rs-snapshots-'));
  const entry = (name: string, scopes: string[], token: string) => `- name: ${name}\n  scopes: [${scopes.join(', ')}]\n  sha256: ${createHash('sha256').update(token).digest('hex')}\n`;
  await writeFile(join(dir, 'tokens.yaml'), entry('curator', ['curate'], CURATOR) + entry('writer', ['write', 'delete'], WRITER) + entry('publisher', ['write'], PUBLISHER) + '  verified: true\n');
  server = await startServer({ env: { MAX_VERSIONS_PER_PACKAGE: '2', TOKENS_FILE: join(dir, 'tokens.yaml') } });
  for (const [kind, id] of [['extension', 'snap-ext'], ['preset', 'snap-preset'], ['workflow', 'snap-flow']] as const) {
    expect((await publish(server.url, await catalogZip(kind, { id, version: '1.0.0' }))).status).toBe(201);
  }
});
afterAll(async () => {
  await server.stop();
});

describe('verified', () => {
  it('marks what a token with verified: true publishes, and nothing else', async () => {
    const form = new FormData();
    form.append('file', new Blob([(await catalogZip('extension', { id: 'vouched-ext' })) as BlobPart]), 'e.zip');
    expect((await fetch(`${server.url}/upload`, { method: 'POST', body: form, headers: bearer(PUBLISHER) })).status).toBe(201);
    const catalog = await (await fetch(`${server.url}/catalogs/extensions.json`)).json();
    expect(catalog.extensions['vouched-ext'].verified).toBe(true);
    expect(catalog.extensions['snap-ext']).not.toHaveProperty('verified');
    // Only the server sets it: a manifest that claims it is not believed.
    const claimed = await publish(server.url, await catalogZip('extension', { id: 'claims-ext', info: { verified: true } }));
    expect([201, 422]).toContain(claimed.status);
    const again = await (await fetch(`${server.url}/catalogs/extensions.json`)).json();
    expect(again.extensions['claims-ext']?.verified).toBeUndefined();
    await fetch(`${server.url}/assets/extension-vouched-ext-1.0.0.zip`, { method: 'DELETE', headers: bearer() });
    await fetch(`${server.url}/assets/extension-claims-ext-1.0.0.zip`, { method: 'DELETE', headers: bearer() });
  });
});

describe('catalog snapshots', () => {
  it('needs the curate scope: 401 without a token, 403 with a token that lacks it', async () => {
    const anonymous = await fetch(`${server.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"x"}', headers: { 'content-type': 'application/json' } });
    expect(anonymous.status).toBe(401);
    const writer = await snapshot(server.url, { name: 'x' }, WRITER);
    expect(writer.status).toBe(403);
    expect((await writer.json()).detail).toContain('curate');
    expect(await (await fetch(`${server.url}/catalogs/snapshots`)).json()).toEqual([]);
    const text = await fetch(`${server.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"x"}', headers: { ...bearer(CURATOR), 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect((await text.json()).detail).toContain(`send JSON, e.g. curl`);
  });

  it('freezes every catalog, byte for byte, whatever is uploaded later; the live catalog moves on', async () => {
    const made = await snapshot(server.url, { name: '2026-12' }, CURATOR);
    expect(made.status).toBe(201);
    const body = await made.json();
    expect(body).toMatchObject({
      name: '2026-12',
      created_by: 'curator',
      versions: { extension: { 'snap-ext': '1.0.0' }, preset: { 'snap-preset': '1.0.0' }, workflow: { 'snap-flow': '1.0.0' } },
      setup_url: `${server.url}/setup?snapshot=2026-12`,
    });
    expect(made.headers.get('location')).toBe(`${server.url}/catalogs/snapshots/2026-12/extensions.json`);
    const url = body.catalogs.extension as string;
    const before = await fetch(url);
    const bytes = Buffer.from(await before.arrayBuffer());
    const frozen = JSON.parse(bytes.toString());
    expect(frozen.extensions['snap-ext']).toMatchObject({ version: '1.0.0', download_url: `${server.url}/assets/extension-snap-ext-1.0.0.zip` });
    expect(frozen.extensions['snap-ext']).not.toHaveProperty('downloads');
    expect(frozen.catalog_url).toBe(url);

    expect((await publish(server.url, await catalogZip('extension', { id: 'snap-ext', version: '2.0.0' }))).status).toBe(201);
    await fetch(`${server.url}/assets/extension-snap-ext-1.0.0.zip`); // a download changes counts, not the snapshot
    const live = await (await fetch(`${server.url}/catalogs/extensions.json`)).json();
    expect(live.extensions['snap-ext'].version).toBe('2.0.0');
    const after = await fetch(url);
    expect(Buffer.from(await after.arrayBuffer()).equals(bytes)).toBe(true);
    expect(after.headers.get('etag')).toBe(before.headers.get('etag'));

    // Installs through the snapshot get the frozen version, checked against its sha256.
    const project = await mkdtemp(join(tmpdir(), 'rs-snap-project-'));
    const installed = await catalogAdd(url, 'extension', 'snap-ext', project);
    expect(installed.entry.version).toBe('1.0.0');
    expect((installed.manifest.extension as Json).version).toBe('1.0.0');
  });

  it('keeps what it holds: delete and overwrite answer 409 naming it, and retention passes it over', async () => {
    const del = await fetch(`${server.url}/assets/extension-snap-ext-1.0.0.zip`, { method: 'DELETE', headers: bearer() });
    expect(del.status).toBe(409);
    expect(del.headers.get('content-type')).toContain('application/problem+json');
    expect((await del.json()).detail).toContain('snapshot 2026-12');
    const over = await publish(server.url, await catalogZip('extension', { id: 'snap-ext', version: '1.0.0', info: { description: 'changed' } }), '?overwrite=true');
    expect(over.status).toBe(409);
    expect((await over.json()).detail).toContain('snapshot 2026-12');

    // max_versions_per_package is 2: 1.0.0 (held), 2.0.0, then 3.0.0 → 2.0.0 goes, not the held 1.0.0.
    const third = await publish(server.url, await catalogZip('extension', { id: 'snap-ext', version: '3.0.0' }));
    expect(third.status).toBe(201);
    expect((await third.json()).removed_by_retention).toEqual(['extension-snap-ext-2.0.0.zip']);
    const versions = await (await fetch(`${server.url}/catalogs/extensions/snap-ext`)).json();
    expect(versions.versions.map((v: Json) => [v.version, v.held_by ?? []])).toEqual([
      ['3.0.0', []],
      ['1.0.0', ['snapshot 2026-12']],
    ]);
  });

  it('refuses a taken name (409) and a chosen version that is not stored (404); takes a stored one', async () => {
    expect((await snapshot(server.url, { name: '2026-12' })).status).toBe(409);
    const missing = await snapshot(server.url, { name: 'pinned', versions: { extension: { 'snap-ext': '9.9.9' } } });
    expect(missing.status).toBe(404);
    expect((await missing.json()).detail).toContain('extension snap-ext 9.9.9');
    const chosen = await snapshot(server.url, { name: 'pinned', versions: { extension: { 'snap-ext': '1.0.0' } } });
    expect(chosen.status).toBe(201);
    expect((await chosen.json()).versions.extension).toEqual({ 'snap-ext': '1.0.0' });
    const bad = await snapshot(server.url, { name: '../etc' });
    expect(bad.status).toBe(400);
  });

  it('lists snapshots newest first, keeps them across a restart, and lets go of versions once deleted', async () => {
    const list = await (await fetch(`${server.url}/catalogs/snapshots`)).json();
    expect(list.map((s: Json) => s.name)).toEqual(['pinned', '2026-12']);
    // The same bytes but for the base URL, which is the new port's.
    const frozen = (await (await fetch(`${server.url}/catalogs/snapshots/2026-12/presets.json`)).text()).replaceAll(server.url, 'BASE');
    await server.stop();
    server = await startServer({ storagePath: server.storagePath, env: { MAX_VERSIONS_PER_PACKAGE: '2' } });
    const again = (await (await fetch(`${server.url}/catalogs/snapshots/2026-12/presets.json`)).text()).replaceAll(server.url, 'BASE');
    expect(again).toBe(frozen);
    expect(JSON.parse(again).presets['snap-preset'].version).toBe('1.0.0');
    expect((await fetch(`${server.url}/catalogs/snapshots/nope/presets.json`)).status).toBe(404);

    expect((await fetch(`${server.url}/catalogs/snapshots/2026-12`, { method: 'DELETE', headers: bearer() })).status).toBe(204);
    // Still held by the other one.
    expect((await fetch(`${server.url}/assets/extension-snap-ext-1.0.0.zip`, { method: 'DELETE', headers: bearer() })).status).toBe(409);
    expect((await fetch(`${server.url}/catalogs/snapshots/pinned`, { method: 'DELETE', headers: bearer() })).status).toBe(204);
    expect((await fetch(`${server.url}/assets/extension-snap-ext-1.0.0.zip`, { method: 'DELETE', headers: bearer() })).status).toBe(204);
    expect((await fetch(`${server.url}/catalogs/snapshots/pinned`, { method: 'DELETE', headers: bearer() })).status).toBe(404);
  });
});
