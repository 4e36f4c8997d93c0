import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { overwriteRace } from '../helpers/race.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bucketIndex, testS3Client } from '../helpers/s3-server.js';
import { catalogZip, rawZip, stepZip, templateZip } from '../helpers/packages.js';
import { runToExit, startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { catalogAdd, stepAdd } from '../helpers/speckit-catalog-client.js';
import { specifyInit } from '../helpers/specify-client.js';
import { streamUpload, upload } from '../helpers/upload.js';
import { eventually } from '../helpers/storage-dir.js';
import { sha256 } from '../helpers/zip.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const s3 = inject('s3');
const client = testS3Client(s3);

/** The environment that puts a server on a bucket of its own (made here) on the test S3 server. */
async function s3Env(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const bucket = `rs-api-${randomUUID().slice(0, 8)}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return { ...s3, STORAGE_BACKEND: 's3', S3_BUCKET: bucket, S3_PREFIX: 'release-server/', MAX_PACKAGES: '0', ...extra };
}

let server: RunningServer;
let env: Record<string, string>;
beforeAll(async () => {
  env = await s3Env();
  server = await startServer({ env });
});
afterAll(async () => {
  await server.stop();
});

const bytesOf = async (res: Response): Promise<Buffer> => Buffer.from(await res.arrayBuffer());

describe('the API on the s3 backend', () => {
  it('publishes, serves /latest to the specify client, and downloads byte-identical with Range, ETag, HEAD and 304', async () => {
    const zip = await templateZip('s3 template');
    const res = await upload(server.url, 'spec-kit-template-claude-sh-v1.0.0.zip', zip);
    expect(res.status).toBe(201);
    const pkg = await res.json();
    expect(pkg).toMatchObject({ sha256: sha256(zip), size: zip.length, kind: 'template' });
    const got = await specifyInit(`${server.url}/latest`, 'claude', 'sh');
    expect(got.zip.equals(zip)).toBe(true);
    const url = `${server.url}/assets/spec-kit-template-claude-sh-v1.0.0.zip`;
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(zip.length));
    const etag = head.headers.get('etag')!;
    expect(etag).toBe(`"${sha256(zip)}"`);
    expect((await fetch(url, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const part = await fetch(url, { headers: { range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect((await bytesOf(part)).equals(zip.subarray(10, 20))).toBe(true);
    expect((await fetch(url, { headers: { range: `bytes=${zip.length}-` } })).status).toBe(416);
  });

  it('answers an 8-way race for one name with one 201 and seven 409', async () => {
    const payloads = Array.from({ length: 8 }, (_, i) => rawZip([{ name: 'payload.bin', data: Buffer.alloc(512 * 1024, 0x41 + i) }]));
    const responses = await Promise.all(payloads.map((p) => upload(server.url, 'race.zip', p)));
    expect(responses.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    const stored = await bytesOf(await fetch(`${server.url}/assets/race.zip`));
    expect(payloads.some((p) => p.equals(stored))).toBe(true);
  });

  it('streams a 40 MiB upload in parts and refuses a hostile archive without storing it', async () => {
    const result = await streamUpload(server.url, 'big.zip', 40 * 1024 * 1024, { fill: 0x33 });
    expect(result).toMatchObject({ status: 201 });
    const size = JSON.parse((result as { body: string }).body).size;
    let received = 0;
    for await (const chunk of (await fetch(`${server.url}/assets/big.zip`)).body!) received += (chunk as Uint8Array).length;
    expect(received).toBe(size);
    const refused = await upload(server.url, 'evil.zip', rawZip([{ name: '../evil.txt', data: 'x' }]));
    expect(refused.status).toBe(422);
    expect((await fetch(`${server.url}/assets/evil.zip`)).status).toBe(404);
  });

  it('serves catalogs unchanged: the test client installs an extension', async () => {
    expect((await upload(server.url, 'e.zip', await catalogZip('extension', { id: 's3-ext', version: '2.0.0' }))).status).toBe(201);
    const project = await mkdtemp(join(tmpdir(), 'rs-s3-project-'));
    const installed = await catalogAdd(`${server.url}/catalogs/extensions.json`, 'extension', 's3-ext', project);
    expect(installed.manifest.extension!.version).toBe('2.0.0');
  });

  it('serves a step file by file from ranges of the stored zip, and a snapshot of it, across a restart', async () => {
    const helper = 'def lint(text):\n    return text.strip()\n'.repeat(50);
    expect((await upload(server.url, 's.zip', await stepZip('s3-step', { extra: { 'lib/helper.py': helper } }))).status).toBe(201);
    const made = await fetch(`${server.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"s3-snap"}', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });
    expect(made.status).toBe(201);
    await server.stop();
    server = await startServer({ env });
    const entry = (await (await fetch(`${server.url}/catalogs/snapshots/s3-snap/steps.json`)).json()).steps['s3-step'];
    const project = await mkdtemp(join(tmpdir(), 'rs-s3-project-'));
    const installed = await stepAdd(`${server.url}/catalogs/snapshots/s3-snap/steps.json`, 's3-step', project);
    expect(await readFile(join(installed.path, 'lib/helper.py'), 'utf8')).toBe(helper);
    expect(await (await fetch(entry.init_url)).text()).toContain('type_key = "s3-step"');
    expect((await fetch(`${server.url}/catalogs/snapshots/s3-snap`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(204);
  });

  it('exports a snapshot and imports it into a server on another bucket, in one commit; a torn archive changes nothing there', async () => {
    expect((await upload(server.url, 'e.zip', await catalogZip('extension', { id: 's3-gap', version: '1.0.0' }))).status).toBe(201);
    const made = await fetch(`${server.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"s3-gap"}', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });
    expect(made.status).toBe(201);
    const archive = Buffer.from(await (await fetch(`${server.url}/export?snapshot=s3-gap`, { headers: { authorization: `Bearer ${TOKEN}` } })).arrayBuffer());
    const target = await startServer({ env: await s3Env() });
    try {
      const post = (body: Buffer) => fetch(`${target.url}/import`, { method: 'POST', body: body as BodyInit, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-tar' } });
      expect((await post(archive.subarray(0, archive.length - 2048))).status).toBe(422);
      expect(await (await fetch(`${target.url}/packages?format=json`)).json()).toEqual([]);
      const res = await post(archive);
      expect(res.status).toBe(200);
      expect((await res.json()).imported).toContain('extension-s3-gap-1.0.0.zip');
      const project = await mkdtemp(join(tmpdir(), 'rs-s3-project-'));
      expect((await catalogAdd(`${target.url}/catalogs/extensions.json`, 'extension', 's3-gap', project)).entry.version).toBe('1.0.0');
    } finally {
      await target.stop();
    }
    expect((await fetch(`${server.url}/catalogs/snapshots/s3-gap`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(204);
  });

  it('deletes, and keeps everything across a restart on the same bucket', async () => {
    await upload(server.url, 'doomed.zip', 'doomed');
    expect((await fetch(`${server.url}/assets/doomed.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(204);
    // The new process listens on another port: compare all but the URLs.
    const listed = async () => ((await (await fetch(`${server.url}/packages?format=json`)).json()) as Record<string, unknown>[]).map(({ download_url: _, ...p }) => p);
    const before = await listed();
    expect(before.length).toBeGreaterThan(3);
    await server.stop();
    server = await startServer({ env });
    expect(await listed()).toEqual(before);
    expect((await fetch(`${server.url}/assets/doomed.zip`)).status).toBe(404);
  });

  it('exports storage metrics for the s3 backend and a refresh lag within the interval', async () => {
    expect((await upload(server.url, 'metered.zip', 'metered')).status).toBe(201);
    await eventually(async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const value = (series: string) => Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.slice(series.length + 1) ?? 0);
      expect(value('release_server_storage_operation_duration_seconds_count{operation="publish",backend="s3"}')).toBe(1);
      // The default interval is 2 s: polled at least once, and never further behind than a poll or two.
      expect(value('release_server_storage_operation_duration_seconds_count{operation="refresh",backend="s3"}')).toBeGreaterThan(0);
      expect(value('release_server_index_refresh_lag_seconds')).toBeLessThan(5);
      expect(text).not.toContain(s3.AWS_SECRET_ACCESS_KEY!);
    }, 8000);
  });

  /** No multipart upload open, and no blob that no record names (retired ones, kept for the grace period, are named). */
  const nothingLeftBehind = () =>
    eventually(async () => {
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: env.S3_BUCKET, Prefix: 'release-server/blobs/' }));
      expect(uploads.Uploads ?? []).toEqual([]);
      const index = await bucketIndex(client, env.S3_BUCKET!, 'release-server/');
      const named = new Set([...index.records.values(), ...index.retired].map((r) => r.blob));
      const objects = await client.send(new ListObjectsV2Command({ Bucket: env.S3_BUCKET, Prefix: 'release-server/blobs/' }));
      expect((objects.Contents ?? []).map((o) => o.Key).filter((k) => !named.has(k!))).toEqual([]);
    }, 10_000);

  // Vetting runs while the last parts are still being uploaded: a refusal must cut that upload short or delete it.
  it('refuses a hostile archive of several parts and a wrong checksum with 4xx, leaving no object, multipart upload or journal entry', async () => {
    const before = await bucketIndex(client, env.S3_BUCKET!, 'release-server/');
    const hostile = rawZip([{ name: '../evil.txt', data: Buffer.alloc(24 * 1024 * 1024, 0x45) }]);
    const refused = await upload(server.url, 'hostile.zip', hostile);
    expect(refused.status).toBe(422);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    const big = rawZip([{ name: 'payload.bin', data: Buffer.alloc(24 * 1024 * 1024, 0x46) }]);
    const mismatch = await upload(server.url, 'mismatch.zip', big, { checksum: sha256(Buffer.from('other bytes')) });
    expect(mismatch.status).toBeGreaterThanOrEqual(400);
    expect(mismatch.status).toBeLessThan(500);
    expect(mismatch.headers.get('content-type')).toContain('application/problem+json');
    await nothingLeftBehind();
    const after = await bucketIndex(client, env.S3_BUCKET!, 'release-server/');
    // Download counts may be flushed meanwhile (entries of their own); no publish was: no id was handed out.
    expect(after.lastId).toBe(before.lastId);
    expect([...after.records.keys()].filter((n) => n.includes('hostile') || n.includes('mismatch') || n.includes('evil'))).toEqual([]);
    for (const name of ['hostile.zip', 'mismatch.zip']) expect((await fetch(`${server.url}/assets/${name}`)).status).toBe(404);
  });

  it('a client that goes away mid-upload leaves no multipart upload and no blob behind', async () => {
    const result = await streamUpload(server.url, 'abandoned.zip', 40 * 1024 * 1024, { abortAfter: 20 * 1024 * 1024 });
    expect(result).toBe('aborted');
    await nothingLeftBehind();
    expect((await fetch(`${server.url}/assets/abandoned.zip`)).status).toBe(404);
  });

  it('streams a 100 MiB upload without holding it in memory', async () => {
    const pid = server.process.pid!;
    const memory = async () => {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
      return { peak: kib('VmHWM'), now: kib('VmRSS') };
    };
    expect((await upload(server.url, 'warm-up.zip', 'warm up')).status).toBe(201);
    const baseline = (await memory()).now;
    const result = await streamUpload(server.url, 'hundred.zip', 100 * 1024 * 1024, { fill: 0x44 });
    expect(result).toMatchObject({ status: 201 });
    // Two 8 MiB parts in flight (lib-storage copies each part once more), the multipart parser and vetting's reads,
    // and buffers not yet collected: 45-69 MiB measured here and in CI. Holding the 100 MiB upload would add that much
    // on top of all of it.
    const peak = (await memory()).peak - baseline;
    expect(peak).toBeLessThan(80 * 1024 * 1024);
  });

  it('serves every download racing an overwrite from one version: ETag, length and bytes agree', async () => {
    const result = await overwriteRace(server.url, 'spec-kit-template-claude-sh-v7.0.0.zip', { ms: 3000, parallel: 6 });
    console.info(`s3 overwrite race: ${result.downloads} downloads, ${result.ok} consistent, ${result.mixed.length} mixed, ${result.overwrites} overwrites, other statuses ${JSON.stringify(result.other)}`);
    expect(result.ok).toBeGreaterThan(20);
    expect(result.mixed.slice(0, 5)).toEqual([]);
    expect(result.other).toEqual({});
  });

  it('refuses to start on a damaged index.json with one FATAL line naming it, and leaves it as it is', async () => {
    const damagedEnv = await s3Env();
    const body = '{"version":1,"lastId":3,"rec';
    await client.send(new PutObjectCommand({ Bucket: damagedEnv.S3_BUCKET, Key: 'release-server/index.json', Body: body }));
    const { code, stdout } = await runToExit({ ...damagedEnv, CONFIG_PATH: '/nonexistent', AUTH_TOKEN: TOKEN });
    expect(code).toBe(1);
    const fatal = stdout.split('\n').filter((l) => l.includes('"FATAL"'));
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toContain(`s3://${damagedEnv.S3_BUCKET}/release-server/index.json is damaged`);
    const stored = await (await client.send(new GetObjectCommand({ Bucket: damagedEnv.S3_BUCKET!, Key: 'release-server/index.json' }))).Body!.transformToString();
    expect(stored).toBe(body);
  });

  it('refuses to start on a bucket that does not exist, naming it', async () => {
    const { code, stdout } = await runToExit({ ...s3, CONFIG_PATH: '/nonexistent', AUTH_TOKEN: TOKEN, STORAGE_BACKEND: 's3', S3_BUCKET: 'no-such-bucket-here' });
    expect(code).toBe(1);
    expect(stdout).toContain('bucket no-such-bucket-here at');
    expect(stdout).toContain('it does not exist');
  });
});
