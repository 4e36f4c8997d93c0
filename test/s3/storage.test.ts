import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { describe, expect, inject, it } from 'vitest';
import { S3Storage, type S3Settings } from '../../src/storage/s3.js';
import type { PackageRecord, Storage } from '../../src/storage/storage.js';
import { describeStorage } from '../unit/storage/storage-suite.js';

const s3 = inject('s3');
Object.assign(process.env, { AWS_ACCESS_KEY_ID: s3.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: s3.AWS_SECRET_ACCESS_KEY });
const silent = pino({ level: 'silent' });
const settingsOf = new WeakMap<Storage, S3Settings>();

function at(settings: S3Settings): S3Storage {
  const storage = new S3Storage(settings, silent);
  settingsOf.set(storage, settings);
  return storage;
}

/** The records the bucket's index object holds, read straight from the bucket. */
async function indexed(storage: Storage): Promise<{ name: string; blob: string }[]> {
  const { bucket, prefix } = settingsOf.get(storage)!;
  try {
    const res = await (storage as S3Storage).client.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}index.json` }));
    return JSON.parse(await res.Body!.transformToString()).records;
  } catch {
    return [];
  }
}

async function unnamedBlobs(storage: Storage): Promise<string[]> {
  const { bucket, prefix } = settingsOf.get(storage)!;
  const client = (storage as S3Storage).client;
  const named = new Set((await indexed(storage)).map((r) => r.blob));
  const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}blobs/` }));
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}blobs/` }));
  return [...(objects.Contents ?? []).map((o) => o.Key!).filter((k) => !named.has(k)), ...(uploads.Uploads ?? []).map((u) => `upload ${u.Key}`)];
}

describeStorage('s3', {
  fresh: async () => {
    const settings: S3Settings = { endpoint: s3.S3_ENDPOINT!, region: s3.S3_REGION!, bucket: `rs-${randomUUID().slice(0, 8)}`, prefix: 'release-server/', forcePathStyle: true };
    const storage = at(settings);
    await storage.client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    return storage;
  },
  reopen: async (storage) => at(settingsOf.get(storage)!),
  visible: async (storage) => (await indexed(storage)).map((r) => r.name).sort(),
  // Blobs no record names, and multipart uploads not finished: what an interrupted upload would leave.
  staged: unnamedBlobs,
  // Blobs are the only bytes: those are every unnamed one.
  unnamed: unnamedBlobs,
  withBatchHook: async (storage, hook) => {
    const settings = settingsOf.get(storage)!;
    const hooked = new S3Storage(settings, silent, { beforeBatchCommit: hook });
    settingsOf.set(hooked, settings);
    return hooked;
  },
  // Leftovers are swept once older than the leftover age (an hour): here, at once.
  sweeping: async (storage) => {
    const settings = settingsOf.get(storage)!;
    const sweeper = new S3Storage(settings, silent, { leftoverAgeMs: 0 });
    settingsOf.set(sweeper, settings);
    return sweeper;
  },
});

describe('s3 storage specifics', () => {
  it('loses no update when two instances over one bucket write at once: the index is replaced only if unchanged', async () => {
    const settings: S3Settings = { endpoint: s3.S3_ENDPOINT!, region: s3.S3_REGION!, bucket: `rs-${randomUUID().slice(0, 8)}`, prefix: 'shared/', forcePathStyle: true };
    const a = at(settings);
    await a.client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    const b = at(settings);
    await Promise.all([a.open(), b.open()]);
    const names = Array.from({ length: 6 }, (_, i) => `pkg-${i}.zip`);
    await Promise.all(
      names.map(async (name, i) => {
        const storage = i % 2 === 0 ? a : b;
        const staged = await storage.stage(Readable.from([Buffer.from(name)]));
        await storage.publish(staged, { id: 100 + i, name, size: staged.size, sha256: staged.sha256, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', downloadCount: 0, tag: null, kind: 'template', catalog: null, blob: '' });
      }),
    );
    expect((await indexed(a)).map((r) => r.name).sort()).toEqual(names);
    const fresh = await at(settings).open();
    expect(fresh.map((r) => r.name).sort()).toEqual(names);
  });

  it('sweeps blobs no record names and unfinished multipart uploads once they are old enough', async () => {
    const settings: S3Settings = { endpoint: s3.S3_ENDPOINT!, region: s3.S3_REGION!, bucket: `rs-${randomUUID().slice(0, 8)}`, prefix: '', forcePathStyle: true };
    const storage = at(settings);
    await storage.client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    await storage.client.send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'blobs/left-by-a-crash', Body: 'partial' }));
    await storage.client.send(new CreateMultipartUploadCommand({ Bucket: settings.bucket, Key: 'blobs/unfinished' }));
    const kept = await storage.stage(Readable.from(['kept']));
    await storage.open();
    await storage.publish(kept, { id: 1, name: 'kept.zip', size: 4, sha256: kept.sha256, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', downloadCount: 0, tag: null, kind: 'template', catalog: null, blob: '' });
    // Young leftovers may be another replica's upload in flight: kept.
    await at(settings).open();
    expect(await staged(storage, settings)).toHaveLength(3);
    const sweeper = new S3Storage(settings, silent, { leftoverAgeMs: 0 });
    expect((await sweeper.open()).map((r) => r.name)).toEqual(['kept.zip']);
    expect(await staged(storage, settings)).toEqual([(await indexed(storage))[0]!.blob]);
    const [keptRecord] = await sweeper.open();
    expect(await text(await sweeper.read(keptRecord!))).toBe('kept');
  });
});

describe('s3: bytes and history are never mixed or lost', () => {
  const fresh = async (): Promise<S3Settings> => {
    const settings: S3Settings = { endpoint: s3.S3_ENDPOINT!, region: s3.S3_REGION!, bucket: `rs-${randomUUID().slice(0, 8)}`, prefix: 'p/', forcePathStyle: true };
    await at(settings).client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    return settings;
  };
  const rec = (name: string, staged: { size: number; sha256: string }): PackageRecord => ({
    id: 0, name, size: staged.size, sha256: staged.sha256, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', downloadCount: 0, tag: null, kind: 'template', catalog: null, blob: '',
  });
  const put = async (storage: S3Storage, name: string, bytes: string) => {
    const staged = await storage.stage(Readable.from([Buffer.from(bytes)]));
    return storage.publish(staged, rec(name, staged));
  };

  it('keeps replaced and removed blobs readable through their records for the grace period; the sweep deletes them after it', async () => {
    const settings = await fresh();
    const storage = at(settings);
    await storage.open();
    const v1 = await put(storage, 'p.zip', 'one');
    const v2 = await put(storage, 'p.zip', 'two');
    expect(await text(await storage.read(v1))).toBe('one');
    expect(await text(await storage.read(v2))).toBe('two');
    await storage.remove('p.zip');
    expect(await text(await storage.read(v2))).toBe('two');
    // Another instance within the grace sweeps nothing.
    await at(settings).open();
    expect(await text(await storage.read(v1))).toBe('one');
    const sweeper = new S3Storage(settings, silent, { retiredGraceMs: 0 });
    await sweeper.open();
    await expect(storage.read(v1)).rejects.toMatchObject({ code: 'not-found' });
    await expect(storage.read(v2)).rejects.toMatchObject({ code: 'not-found' });
    const index = JSON.parse(await (await storage.client.send(new GetObjectCommand({ Bucket: settings.bucket, Key: 'p/index.json' }))).Body!.transformToString());
    expect(index.retired ?? []).toEqual([]);
  });

  it('refuses to open on a damaged index.json, naming it, and never overwrites it', async () => {
    const settings = await fresh();
    const storage = at(settings);
    await storage.open();
    await put(storage, 'a.zip', 'a');
    const body = '{"version":1,"lastId":1,"records":[{"id":1,"na';
    await storage.client.send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'p/index.json', Body: body }));
    const error = await at(settings).open().catch((err: Error) => err);
    expect(error).toMatchObject({ code: 'damaged' });
    expect((error as Error).message).toContain(`s3://${settings.bucket}/p/index.json`);
    // The instance that was running cannot write over it either.
    await expect(put(storage, 'b.zip', 'b')).rejects.toMatchObject({ code: 'damaged' });
    const stored = await (await storage.client.send(new GetObjectCommand({ Bucket: settings.bucket, Key: 'p/index.json' }))).Body!.transformToString();
    expect(stored).toBe(body);
  });

  it('reports a bad record by name, serves the others, and keeps the bad one through later writes', async () => {
    const settings = await fresh();
    const storage = at(settings);
    await storage.open();
    await put(storage, 'good.zip', 'good');
    await put(storage, 'bad.zip', 'bad');
    const key = 'p/index.json';
    const index = JSON.parse(await (await storage.client.send(new GetObjectCommand({ Bucket: settings.bucket, Key: key }))).Body!.transformToString());
    index.records.find((r: PackageRecord) => r.name === 'bad.zip').size = -1;
    await storage.client.send(new PutObjectCommand({ Bucket: settings.bucket, Key: key, Body: JSON.stringify(index) }));
    const lines: { level: number; record?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const reopened = new S3Storage(settings, log);
    expect((await reopened.open()).map((r) => r.name)).toEqual(['good.zip']);
    expect(lines.some((l) => l.level === 50 && l.record === 'bad.zip')).toBe(true);
    await put(reopened, 'later.zip', 'later');
    const after = JSON.parse(await (await storage.client.send(new GetObjectCommand({ Bucket: settings.bucket, Key: key }))).Body!.transformToString());
    expect(after.invalidRecords.map((r: PackageRecord) => r.name)).toEqual(['bad.zip']);
  });
});

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

async function staged(storage: S3Storage, { bucket, prefix }: S3Settings): Promise<string[]> {
  const objects = await storage.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}blobs/` }));
  const uploads = await storage.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}blobs/` }));
  return [...(objects.Contents ?? []).map((o) => o.Key!), ...(uploads.Uploads ?? []).map((u) => u.Key!)];
}
