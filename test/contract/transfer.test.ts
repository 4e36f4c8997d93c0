import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogZip, stepZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { catalogAdd, stepAdd } from '../helpers/speckit-catalog-client.js';
import { blobFileOf, eventually, storageContents } from '../helpers/storage-dir.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const auth = { authorization: `Bearer ${TOKEN}` };

async function publish(base: string, bytes: Buffer): Promise<void> {
  const form = new FormData();
  form.append('file', new Blob([bytes as BlobPart]), 'p.zip');
  expect((await fetch(`${base}/upload`, { method: 'POST', body: form, headers: auth })).status).toBe(201);
}
const importInto = (base: string, archive: Buffer) =>
  fetch(`${base}/import`, { method: 'POST', body: archive as BodyInit, headers: { ...auth, 'content-type': 'application/x-tar' } });
const packages = async (base: string) => ((await (await fetch(`${base}/packages?format=json`)).json()) as Json[]).map((p) => p.name).sort();

/** A server holding snapshot "head" of one extension whose stored bytes are gone. */
async function snapshotWithoutBytes(): Promise<RunningServer> {
  const server = await startServer();
  await publish(server.url, await catalogZip('extension', { id: 'head-ext', version: '1.0.0' }));
  expect((await fetch(`${server.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"head"}', headers: { ...auth, 'content-type': 'application/json' } })).status).toBe(201);
  const name = ((await (await fetch(`${server.url}/packages?format=json`)).json()) as Json[])[0]!.name as string;
  await rm(await blobFileOf(server.storagePath, name));
  return server;
}

let source: RunningServer;
let archive: Buffer;
beforeAll(async () => {
  source = await startServer();
  await publish(source.url, await catalogZip('extension', { id: 'gap-ext', version: '1.0.0' }));
  await publish(source.url, await catalogZip('preset', { id: 'gap-preset', version: '2.0.0' }));
  await publish(source.url, await stepZip('gap-step', { extra: { 'lib/util.py': 'X = 1\n' } }));
  const made = await fetch(`${source.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"gap"}', headers: { ...auth, 'content-type': 'application/json' } });
  expect(made.status).toBe(201);
});
afterAll(async () => {
  await source.stop();
});

describe('across an air gap', () => {
  it('exports a snapshot as one tar: manifest first, SHA256SUMS last', async () => {
    const res = await fetch(`${source.url}/export?snapshot=gap`, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-tar');
    archive = Buffer.from(await res.arrayBuffer());
    expect(archive.subarray(0, 100).toString('latin1')).toContain('manifest.json');
    expect(archive.toString('latin1')).toContain('SHA256SUMS');
    expect((await fetch(`${source.url}/export?snapshot=gap`)).status).toBe(401);
    expect((await fetch(`${source.url}/export?snapshot=nope`, { headers: auth })).status).toBe(404);
  });

  it('imports into a fresh server: every package, installable there; a second import changes nothing', async () => {
    const target = await startServer();
    try {
      const res = await importInto(target.url, archive);
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.imported.sort()).toEqual(['extension-gap-ext-1.0.0.zip', 'preset-gap-preset-2.0.0.zip', 'step-gap-step-1.0.0.zip']);
      // The snapshot came along, holding exactly those versions, byte for byte as the source serves it (but for the host).
      expect(body.snapshot).toBe('gap');
      const frozen = async (base: string) => (await (await fetch(`${base}/catalogs/snapshots/gap/extensions.json`)).text()).replaceAll(base, 'BASE');
      const there = JSON.parse(await frozen(target.url));
      expect(Object.keys(there.extensions)).toEqual(['gap-ext']);
      expect(there.extensions['gap-ext'].sha256).toBe(JSON.parse(await frozen(source.url)).extensions['gap-ext'].sha256);
      const dir = await mkdtemp(join(tmpdir(), 'rs-gap-project-'));
      expect((await catalogAdd(`${target.url}/catalogs/extensions.json`, 'extension', 'gap-ext', dir)).entry.version).toBe('1.0.0');
      expect((await stepAdd(`${target.url}/catalogs/steps.json`, 'gap-step', dir)).files).toContain('lib/util.py');
      const again = await (await importInto(target.url, archive)).json();
      expect(again).toEqual({ imported: [], unchanged: expect.arrayContaining(['extension-gap-ext-1.0.0.zip']), snapshot: null });
      expect(await packages(target.url)).toEqual(['extension-gap-ext-1.0.0.zip', 'preset-gap-preset-2.0.0.zip', 'step-gap-step-1.0.0.zip']);
    } finally {
      await target.stop();
    }
  });

  it('refuses a tampered or truncated archive with 422 naming the member, and nothing becomes visible', async () => {
    const target = await startServer();
    try {
      // One byte of a package's bytes flipped: the package member is the one after its record.
      const at = archive.indexOf(Buffer.from('packages/preset-gap-preset-2.0.0.zip')) + 512 + 40;
      const tampered = Buffer.from(archive);
      tampered[at] = tampered[at]! ^ 0xff;
      const refused = await importInto(target.url, tampered);
      expect(refused.status).toBe(422);
      expect(refused.headers.get('content-type')).toContain('application/problem+json');
      expect((await refused.json()).detail).toContain('preset-gap-preset-2.0.0.zip');
      for (const cut of [archive.length - 1024, Math.floor(archive.length / 2), 700]) {
        const torn = await importInto(target.url, archive.subarray(0, cut));
        expect(torn.status, `cut at ${cut}`).toBe(422);
      }
      expect(await packages(target.url)).toEqual([]);
      expect((await storageContents(target.storagePath)).staging).toEqual([]);
      expect((await importInto(target.url, Buffer.from('not a tar at all'))).status).toBe(422);
    } finally {
      await target.stop();
    }
  });

  it('answers HEAD /export with the export\'s headers, reading no package (a curl -I is not a whole export)', async () => {
    // Its bytes gone from the disk: a HEAD that reads them fails, one that does not answers as the GET starts.
    const server = await snapshotWithoutBytes();
    try {
      const head = await fetch(`${server.url}/export?snapshot=head`, { method: 'HEAD', headers: auth });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toBe('application/x-tar');
      expect(head.headers.get('content-disposition')).toContain('release-server-head.tar');
      expect(await head.text()).toBe('');
      expect((await fetch(`${server.url}/export?snapshot=nope`, { method: 'HEAD', headers: auth })).status).toBe(404);
      expect((await fetch(`${server.url}/export?snapshot=head`, { method: 'HEAD' })).status).toBe(401);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const line = server.logs().find((l) => l.module === 'http' && String(l.message).startsWith('HEAD /export 200'));
      expect(line).toMatchObject({ level: 'INFO' });
    } finally {
      await server.stop();
    }
  });

  it('logs and counts an export cut short by a store that fails mid-archive as our failure, not a client that left', async () => {
    const server = await snapshotWithoutBytes();
    try {
      // The GET starts (the manifest is sent) and is cut short where it reads the missing bytes: our failure, not
      // a client that went away, logged as one JSON line and counted as failed.
      await expect(fetch(`${server.url}/export?snapshot=head`, { headers: auth }).then((res) => res.arrayBuffer())).rejects.toThrow();
      await eventually(() => {
        const cut = server.logs().find((l) => l.module === 'http' && String(l.message).startsWith('GET /export'));
        expect(cut).toMatchObject({ level: 'ERROR', failed: true });
        expect(cut).not.toHaveProperty('aborted');
      });
      const metrics = await (await fetch(`${server.url}/metrics`, { headers: auth })).text();
      expect(metrics).toMatch(/release_server_http_requests_total\{operation="exportSnapshot",status="failed"\} 1/);
      expect(server.stderr.join('')).toBe('');
    } finally {
      await server.stop();
    }
  });
});

describe('limits', () => {
  it('holds the packages of one archive to max_upload_bytes: refused, nothing imported', async () => {
    const small = await startServer({ env: { MAX_UPLOAD_BYTES: '1000' } });
    try {
      const declared = await importInto(small.url, archive);
      expect(declared.status).toBe(422);
      expect((await declared.json()).detail).toMatch(/nothing was imported/);
      expect(await packages(small.url)).toEqual([]);
    } finally {
      await small.stop();
    }
  });
});

describe('a crash mid-import', () => {
  it('kill -9 while an archive streams in leaves nothing visible and nothing staged after restart', async () => {
    const target = await startServer();
    const { request } = await import('node:http');
    const url = new URL(`${target.url}/import`);
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...auth, 'content-type': 'application/x-tar', 'content-length': String(archive.length) } });
    req.on('error', () => undefined);
    // Most of the archive, then nothing: the server is mid-import when it dies.
    req.write(archive.subarray(0, archive.length - 1024));
    await new Promise((r) => setTimeout(r, 500));
    target.process.kill('SIGKILL');
    await target.exited;
    req.destroy();
    const again = await startServer({ storagePath: target.storagePath });
    try {
      expect(await packages(again.url)).toEqual([]);
      expect((await storageContents(again.storagePath)).staging).toEqual([]);
      const res = await importInto(again.url, archive);
      expect(res.status).toBe(200);
      expect((await res.json()).imported).toHaveLength(3);
    } finally {
      await again.stop();
    }
  });
});
