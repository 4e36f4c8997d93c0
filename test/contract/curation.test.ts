import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleYaml, catalogZip, stepZip, templateZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { catalogAdd } from '../helpers/speckit-catalog-client.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const PUBLISHER = 'curation-publisher-token-0123456789';
const bearer = (token = TOKEN) => ({ authorization: `Bearer ${token}` });

async function publish(base: string, bytes: Buffer | string, name = 'pkg.zip', token = TOKEN): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([Buffer.from(bytes) as BlobPart]), name);
  return fetch(`${base}/upload`, { method: 'POST', body: form, headers: bearer(token) });
}
const decide = (base: string, path: string, verb: 'approve' | 'reject', body?: Json, token = TOKEN) =>
  fetch(`${base}/catalogs/${path}/${verb}`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
const json = async (url: string): Promise<Json> => (await fetch(url)).json() as Promise<Json>;

let server: RunningServer;
beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rs-curation-'));
  await writeFile(join(dir, 'tokens.yaml'), `- name: publisher\n  scopes: [write]\n  sha256: ${createHash('sha256').update(PUBLISHER).digest('hex')}\n`);
  server = await startServer({ env: { APPROVE_UPLOADS: 'false', MAX_VERSIONS_PER_PACKAGE: '0', TOKENS_FILE: join(dir, 'tokens.yaml') } });
});
afterAll(async () => {
  await server.stop();
});

describe('approval: pending until a curator approves', () => {
  it('keeps a pending version out of the catalog, lists it for discovery, and refuses its download with 403', async () => {
    expect((await publish(server.url, await catalogZip('extension', { id: 'cur-ext', version: '1.0.0' }), 'e.zip', PUBLISHER)).status).toBe(201);
    expect((await json(`${server.url}/catalogs/extensions.json`)).extensions).not.toHaveProperty('cur-ext');
    const discovery = await json(`${server.url}/discovery/extensions.json`);
    expect(discovery.extensions['cur-ext']).toMatchObject({ version: '1.0.0', download_url: `${server.url}/assets/extension-cur-ext-1.0.0.zip` });
    expect(discovery.catalog_url).toBe(`${server.url}/discovery/extensions.json`);
    const download = await fetch(`${server.url}/assets/extension-cur-ext-1.0.0.zip`);
    expect(download.status).toBe(403);
    expect(download.headers.get('content-type')).toContain('application/problem+json');
    expect((await download.json()).detail).toContain('waiting for approval');
    const versions = await json(`${server.url}/catalogs/extensions/cur-ext`);
    expect(versions.versions[0].approval).toMatchObject({ state: 'pending', by: 'publisher' });
  });

  it('needs the curate scope to decide', async () => {
    expect((await decide(server.url, 'extensions/cur-ext/1.0.0', 'approve', {}, PUBLISHER)).status).toBe(403);
    expect((await fetch(`${server.url}/catalogs/extensions/cur-ext/1.0.0/approve`, { method: 'POST' })).status).toBe(401);
  });

  it('approved: in the catalog, downloadable and installable, out of discovery, recorded with who and when', async () => {
    const res = await decide(server.url, 'extensions/cur-ext/1.0', 'approve');
    expect(res.status).toBe(200);
    expect((await res.json()).versions[0].approval).toMatchObject({ state: 'approved', by: 'default', at: expect.any(String) });
    expect((await json(`${server.url}/catalogs/extensions.json`)).extensions['cur-ext'].version).toBe('1.0.0');
    expect((await json(`${server.url}/discovery/extensions.json`)).extensions).not.toHaveProperty('cur-ext');
    const installed = await catalogAdd(`${server.url}/catalogs/extensions.json`, 'extension', 'cur-ext', await mkdtemp(join(tmpdir(), 'rs-cur-project-')));
    expect(installed.entry.version).toBe('1.0.0');
  });

  it('a newer pending version leaves the approved one served until it is approved itself', async () => {
    expect((await publish(server.url, await catalogZip('extension', { id: 'cur-ext', version: '2.0.0' }))).status).toBe(201);
    expect((await json(`${server.url}/catalogs/extensions.json`)).extensions['cur-ext'].version).toBe('1.0.0');
    expect((await json(`${server.url}/discovery/extensions.json`)).extensions['cur-ext'].version).toBe('2.0.0');
  });

  it('rejected: needs a reason, leaves discovery, and its download says why', async () => {
    expect((await decide(server.url, 'extensions/cur-ext/2.0.0', 'reject')).status).toBe(400);
    const res = await decide(server.url, 'extensions/cur-ext/2.0.0', 'reject', { reason: 'phones home' });
    expect(res.status).toBe(200);
    expect((await json(`${server.url}/discovery/extensions.json`)).extensions).not.toHaveProperty('cur-ext');
    const download = await fetch(`${server.url}/assets/extension-cur-ext-2.0.0.zip`);
    expect(download.status).toBe(403);
    expect((await download.json()).detail).toContain('phones home');
    expect((await decide(server.url, 'extensions/cur-ext/9.9.9', 'approve')).status).toBe(404);
    // The package page says what each version's state is, and why.
    const page = await (await fetch(`${server.url}/packages/extension/cur-ext`)).text();
    expect(page).toContain('rejected</span> by default on');
    expect(page).toContain(': phones home.');
    expect(page).toContain('Approved by default, ');
  });

  it('templates are never curated, a pending step file answers 403, and a bundle cannot pin a pending version', async () => {
    expect((await publish(server.url, await templateZip('t'), 'spec-kit-template-claude-sh-v1.0.0.zip')).status).toBe(201);
    expect((await fetch(`${server.url}/assets/spec-kit-template-claude-sh-v1.0.0.zip`)).status).toBe(200);
    const step = await (await publish(server.url, await stepZip('cur-step'))).json();
    expect((await fetch(`${server.url}/files/${step.sha256}/__init__.py`)).status).toBe(403);
    const bundle = await publish(server.url, bundleYaml('cur-kit', '1.0.0', { extensions: [{ id: 'cur-ext', version: '2.0.0' }] }), 'bundle.yml');
    expect(bundle.status).toBe(422);
  });

  it('keeps every decision across a restart', async () => {
    await server.stop();
    server = await startServer({ storagePath: server.storagePath, env: { APPROVE_UPLOADS: 'false' } });
    const versions = await json(`${server.url}/catalogs/extensions/cur-ext`);
    expect(versions.versions.map((v: Json) => [v.version, v.approval.state, v.approval.reason ?? null])).toEqual([
      ['2.0.0', 'rejected', 'phones home'],
      ['1.0.0', 'approved', null],
    ]);
  });
});
