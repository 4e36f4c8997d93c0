import { randomUUID } from 'node:crypto';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bucketIndex, testS3Client } from '../helpers/s3-server.js';
import { catalogZip, rawZip, templateZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { eventually } from '../helpers/storage-dir.js';
import { streamUpload, upload } from '../helpers/upload.js';

const s3 = inject('s3');
const client = testS3Client(s3);

/** Two server processes over one fresh bucket, as two replicas behind one Service. */
async function replicas(extra: Record<string, string> = {}): Promise<{ a: RunningServer; b: RunningServer; bucket: string; env: Record<string, string> }> {
  const bucket = `rs-replicas-${randomUUID().slice(0, 8)}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const env = { ...s3, STORAGE_BACKEND: 's3', S3_BUCKET: bucket, S3_PREFIX: 'rs/', INDEX_REFRESH_SECONDS: '1', MAX_PACKAGES: '0', ...extra };
  const [a, b] = await Promise.all([startServer({ env }), startServer({ env })]);
  return { a, b, bucket, env };
}

const names = async (server: RunningServer): Promise<string[]> =>
  ((await (await fetch(`${server.url}/packages?format=json`)).json()) as { name: string }[]).map((p) => p.name).sort();

async function indexNames(bucket: string): Promise<string[]> {
  return [...(await bucketIndex(client, bucket, 'rs/')).records.keys()].sort();
}

describe('two replicas over one bucket', () => {
  let a: RunningServer;
  let b: RunningServer;
  let env: Record<string, string>;
  beforeAll(async () => {
    ({ a, b, env } = await replicas());
  });
  afterAll(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });

  it('an upload on A is served by B within the refresh interval, byte for byte', async () => {
    const zip = await templateZip('published on A');
    const started = Date.now();
    expect((await upload(a.url, 'spec-kit-template-claude-sh-v1.0.0.zip', zip)).status).toBe(201);
    await eventually(async () => expect(await names(b)).toContain('spec-kit-template-claude-sh-v1.0.0.zip'), 5000);
    // INDEX_REFRESH_SECONDS=1 here: seen within a poll or two.
    expect(Date.now() - started).toBeLessThan(2500);
    const fromB = Buffer.from(await (await fetch(`${b.url}/assets/spec-kit-template-claude-sh-v1.0.0.zip`)).arrayBuffer());
    expect(fromB.equals(zip)).toBe(true);
    expect((await (await fetch(`${b.url}/latest`)).json()).tag_name).toBe('v1.0.0');
  });

  it('an 8-way race for one name spread over A and B gives one 201 and seven 409', async () => {
    const payloads = Array.from({ length: 8 }, (_, i) => rawZip([{ name: 'payload.bin', data: Buffer.alloc(256 * 1024, 0x61 + i) }]));
    const responses = await Promise.all(payloads.map((p, i) => upload(i % 2 === 0 ? a.url : b.url, 'contested.zip', p)));
    expect(responses.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    const winner = (await responses.find((r) => r.status === 201)!.json()) as { sha256: string };
    await eventually(async () => {
      for (const server of [a, b]) {
        const listed = ((await (await fetch(`${server.url}/packages?format=json`)).json()) as { name: string; sha256: string }[]).find((p) => p.name === 'contested.zip');
        expect(listed?.sha256).toBe(winner.sha256);
      }
    }, 5000);
  });

  it('a delete on A is gone from B', async () => {
    await upload(b.url, 'short-lived.zip', 'short-lived');
    await eventually(async () => expect(await names(a)).toContain('short-lived.zip'), 5000);
    expect((await fetch(`${a.url}/assets/short-lived.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(204);
    await eventually(async () => {
      expect(await names(b)).not.toContain('short-lived.zip');
      expect((await fetch(`${b.url}/assets/short-lived.zip`)).status).toBe(404);
    }, 5000);
  });

  it('a snapshot made on A is served by B, holds its versions there too, and a racing name gets one 201', async () => {
    const form = new FormData();
    form.append('file', new Blob([(await catalogZip('extension', { id: 'replica-ext', version: '1.0.0' })) as BlobPart]), 'e.zip');
    expect((await fetch(`${a.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(201);
    const create = (server: RunningServer) =>
      fetch(`${server.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"replicated"}', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });
    const statuses = (await Promise.all([create(a), create(b)])).map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409]);
    const frozen = async (server: RunningServer) => (await (await fetch(`${server.url}/catalogs/snapshots/replicated/extensions.json`)).text()).replaceAll(server.url, 'BASE');
    await eventually(async () => expect(await frozen(b)).toBe(await frozen(a)), 5000);
    expect(JSON.parse(await frozen(b)).extensions['replica-ext'].version).toBe('1.0.0');
    const refused = await fetch(`${b.url}/assets/extension-replica-ext-1.0.0.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(refused.status).toBe(409);
  });

  it('a name deleted and published again on A is one package on B, found by its new id and not its old one; a snapshot deleted on A goes', async () => {
    const assets = async (server: RunningServer) => {
      const res = await fetch(`${server.url}/releases/tags/v4.0.0`);
      return res.status === 200 ? ((await res.json()) as { assets: { id: number; name: string; size: number }[] }).assets.map(({ id, name, size }) => ({ id, name, size })) : [];
    };
    await upload(a.url, 'spec-kit-template-codex-sh-v4.0.0.zip', 'first');
    await eventually(async () => expect(await assets(b)).toHaveLength(1), 5000);
    const first = (await assets(b))[0]!;
    const del = () => fetch(`${a.url}/assets/spec-kit-template-codex-sh-v4.0.0.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect((await del()).status).toBe(204);
    expect((await upload(a.url, 'spec-kit-template-codex-sh-v4.0.0.zip', 'second, a little longer')).status).toBe(201);
    const second = (await assets(a))[0]!;
    expect(second.id).not.toBe(first.id);
    await eventually(async () => expect(await assets(b)).toEqual([second]), 5000);
    expect((await fetch(`${b.url}/releases/assets/${first.id}`)).status).toBe(404);
    expect((await (await fetch(`${b.url}/releases/assets/${second.id}`)).json()).name).toBe('spec-kit-template-codex-sh-v4.0.0.zip');
    expect(await names(b)).toEqual(await names(a));
    const snapshots = async (server: RunningServer) => ((await (await fetch(`${server.url}/catalogs/snapshots`)).json()) as { snapshots?: { name: string }[] } | { name: string }[]);
    const snapshotNames = async (server: RunningServer) => { const body = await snapshots(server); return (Array.isArray(body) ? body : body.snapshots ?? []).map((x) => x.name).sort(); };
    expect((await fetch(`${a.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"short"}', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } })).status).toBe(201);
    await eventually(async () => expect(await snapshotNames(b)).toContain('short'), 5000);
    expect((await fetch(`${a.url}/catalogs/snapshots/short`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(204);
    await eventually(async () => expect(await snapshotNames(b)).not.toContain('short'), 5000);
    expect(await snapshotNames(b)).toEqual(await snapshotNames(a));
  });

  it('download counts from both replicas add up, and survive a restart', async () => {
    await upload(a.url, 'counted.zip', 'counted');
    await eventually(async () => expect(await names(b)).toContain('counted.zip'), 5000);
    for (const server of [a, a, b, b, b]) await (await fetch(`${server.url}/assets/counted.zip`)).arrayBuffer();
    const count = async (server: RunningServer) =>
      ((await (await fetch(`${server.url}/packages?format=json`)).json()) as { name: string; download_count: number }[]).find((p) => p.name === 'counted.zip')!.download_count;
    // Counts are written every 2 s and read at the next refresh.
    await eventually(async () => {
      expect(await count(a)).toBe(5);
      expect(await count(b)).toBe(5);
    }, 8000);
    await b.stop();
    b = await startServer({ env });
    expect(await count(b)).toBe(5);
  });
});

describe('retention and crashes with two replicas', () => {
  it('retention run from both keeps max_packages in all', async () => {
    const { a, b, bucket } = await replicas({ MAX_PACKAGES: '3' });
    try {
      for (let i = 0; i < 8; i++) expect((await upload(i % 2 === 0 ? a.url : b.url, `kept-${i}.zip`, `kept ${i}`)).status).toBe(201);
      const expected = ['kept-5.zip', 'kept-6.zip', 'kept-7.zip'];
      await eventually(async () => {
        expect(await indexNames(bucket)).toEqual(expected);
        expect(await names(a)).toEqual(expected);
        expect(await names(b)).toEqual(expected);
      }, 15000);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('kill -9 of A mid-upload: nothing partial on B, and B keeps serving', async () => {
    const { a, b, bucket } = await replicas();
    try {
      await upload(b.url, 'steady.zip', 'steady');
      const uploading = streamUpload(a.url, 'crashing.zip', 48 * 1024 * 1024, {
        abortAfter: 40 * 1024 * 1024,
        onProgress: (sent) => {
          if (sent >= 24 * 1024 * 1024 && a.process.exitCode === null) a.process.kill('SIGKILL');
        },
      });
      await uploading.catch(() => 'aborted');
      await a.exited;
      expect(await indexNames(bucket)).toEqual(['steady.zip']);
      expect(await names(b)).toEqual(['steady.zip']);
      expect((await fetch(`${b.url}/assets/crashing.zip`)).status).toBe(404);
      expect((await upload(b.url, 'after-crash.zip', 'after')).status).toBe(201);
      expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
    } finally {
      await Promise.all([a.stop().catch(() => undefined), b.stop()]);
    }
  });
});

describe('download_redirect', () => {
  it('answers 302 to a presigned URL of the store; following it gives the same bytes, and it counts', async () => {
    const { a, b } = await replicas({ DOWNLOAD_REDIRECT: 'true', DOWNLOAD_REDIRECT_EXPIRY_SECONDS: '60' });
    try {
      const zip = rawZip([{ name: 'data.bin', data: Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 253)) }]);
      expect((await upload(a.url, 'spec-kit-template-claude-sh-v2.0.0.zip', zip)).status).toBe(201);
      const res = await fetch(`${a.url}/assets/spec-kit-template-claude-sh-v2.0.0.zip`, { redirect: 'manual' });
      expect(res.status).toBe(302);
      const location = new URL(res.headers.get('location')!);
      expect(location.origin).toBe(new URL(s3.S3_ENDPOINT!).origin);
      expect(location.searchParams.get('X-Amz-Expires')).toBe('60');
      const direct = await fetch(location);
      expect(direct.status).toBe(200);
      expect(direct.headers.get('content-disposition')).toContain('spec-kit-template-claude-sh-v2.0.0.zip');
      expect(Buffer.from(await direct.arrayBuffer()).equals(zip)).toBe(true);
      // What the spec-kit CLI does: follow the redirect from /latest's browser_download_url.
      await eventually(async () => expect(await names(b)).toContain('spec-kit-template-claude-sh-v2.0.0.zip'), 5000);
      const release = await (await fetch(`${b.url}/latest`)).json();
      const followed = await fetch(release.assets[0].browser_download_url);
      expect(Buffer.from(await followed.arrayBuffer()).equals(zip)).toBe(true);
      // HEAD and conditional requests are still answered here.
      expect((await fetch(`${a.url}/assets/spec-kit-template-claude-sh-v2.0.0.zip`, { method: 'HEAD' })).status).toBe(200);
      const etag = `"${release.assets[0].digest.slice('sha256:'.length)}"`;
      expect((await fetch(`${a.url}/assets/spec-kit-template-claude-sh-v2.0.0.zip`, { headers: { 'if-none-match': etag }, redirect: 'manual' })).status).toBe(304);
      const count = async (server: RunningServer) => ((await (await fetch(`${server.url}/packages?format=json`)).json()) as { download_count: number }[])[0]!.download_count;
      await eventually(async () => expect(await count(a)).toBe(2), 8000);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
