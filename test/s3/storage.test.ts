import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { describe, expect, inject, it } from 'vitest';
import { S3Storage, type S3Settings } from '../../src/storage/s3.js';
import type { PackageRecord, Storage } from '../../src/storage/storage.js';
import { bucketIndex } from '../helpers/s3-server.js';
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

/** The records the bucket's index holds (newest checkpoint and the journal after it), read straight from the bucket. */
async function indexed(storage: Storage): Promise<{ name: string; blob: string }[]> {
  const { bucket, prefix } = settingsOf.get(storage)!;
  return [...(await bucketIndex((storage as S3Storage).client, bucket, prefix)).records.values()];
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

  it('a write is one small journal object whatever the package count, and another instance sees it on its next refresh', async () => {
    const settings: S3Settings = { endpoint: s3.S3_ENDPOINT!, region: s3.S3_REGION!, bucket: `rs-${randomUUID().slice(0, 8)}`, prefix: 'j/', forcePathStyle: true };
    const a = new S3Storage(settings, silent, { checkpointEvery: 1000 });
    settingsOf.set(a, settings);
    await a.client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    const b = at(settings);
    await Promise.all([a.open(), b.open()]);
    const keys = async () => (await a.client.send(new ListObjectsV2Command({ Bucket: settings.bucket, Prefix: 'j/' }))).Contents!.filter((o) => !o.Key!.startsWith('j/blobs/')).map((o) => ({ key: o.Key!, size: o.Size! }));
    const publish = async (name: string) => {
      const staged = await a.stage(Readable.from([Buffer.from(name)]));
      return a.publish(staged, { id: 0, name, size: staged.size, sha256: staged.sha256, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', downloadCount: 0, tag: null, kind: 'template', catalog: null, blob: '' });
    };
    for (let i = 0; i < 30; i++) await publish(`p${i}.zip`);
    expect((await b.refresh())!.records).toHaveLength(30);
    const before = await keys();
    await publish('p30.zip');
    const written = (await keys()).filter((k) => !before.some((o) => o.key === k.key));
    expect(written.map((k) => k.key)).toEqual(['j/journal/000000000031.json']);
    // As small with 30 packages stored as the first entry was with none.
    expect(written[0]!.size).toBeLessThan(before.find((k) => k.key === 'j/journal/000000000001.json')!.size + 16);
    expect(before.map((k) => k.key)).not.toContain('j/index.json');
    // Only what changed is handed on: the one new record, not all 31.
    const seen = await b.refresh();
    expect(seen).toMatchObject({ whole: false, removed: [] });
    expect(seen!.records.map((r) => r.name)).toEqual(['p30.zip']);
    expect(await b.refresh()).toBeNull();
    await a.remove('p3.zip');
    expect(await b.refresh()).toEqual({ whole: false, records: [], removed: ['p3.zip'] });
  });

  it('an instance that fell behind further than the kept journal reloads from the newest checkpoint', async () => {
    const settings: S3Settings = { endpoint: s3.S3_ENDPOINT!, region: s3.S3_REGION!, bucket: `rs-${randomUUID().slice(0, 8)}`, prefix: '', forcePathStyle: true };
    const a = new S3Storage(settings, silent, { checkpointEvery: 3 });
    settingsOf.set(a, settings);
    await a.client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    const b = at(settings);
    await Promise.all([a.open(), b.open()]);
    for (let i = 0; i < 16; i++) {
      const staged = await a.stage(Readable.from([Buffer.from(`p${i}`)]));
      await a.publish(staged, { id: 0, name: `p${i}.zip`, size: staged.size, sha256: staged.sha256, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', downloadCount: 0, tag: null, kind: 'template', catalog: null, blob: '' });
      await a.settled();
    }
    const listed = (await a.client.send(new ListObjectsV2Command({ Bucket: settings.bucket }))).Contents!.map((o) => o.Key!).filter((k) => !k.startsWith('blobs/'));
    expect(listed.filter((k) => k.startsWith('checkpoints/'))).toEqual(['checkpoints/000000000009.json', 'checkpoints/000000000012.json', 'checkpoints/000000000015.json']);
    expect(listed.filter((k) => k.startsWith('journal/'))[0]).toBe('journal/000000000010.json');
    const seen = await b.refresh();
    expect(seen!.whole).toBe(true);
    expect(seen!.records.map((r) => r.name).sort()).toEqual(Array.from({ length: 16 }, (_, i) => `p${i}.zip`).sort());
  });

  it('an instance that fell behind further than the kept journal and then writes commits after every change, never under a used number', async () => {
    const settings: S3Settings = { endpoint: s3.S3_ENDPOINT!, region: s3.S3_REGION!, bucket: `rs-${randomUUID().slice(0, 8)}`, prefix: '', forcePathStyle: true };
    const [a, b] = [new S3Storage(settings, silent, { checkpointEvery: 3 }), new S3Storage(settings, silent, { checkpointEvery: 3 })];
    settingsOf.set(a, settings);
    await a.client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    await Promise.all([a.open(), b.open()]);
    const put = async (storage: S3Storage, name: string) => {
      const staged = await storage.stage(Readable.from([Buffer.from(name)]));
      return storage.publish(staged, { id: 0, name, size: staged.size, sha256: staged.sha256, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', downloadCount: 0, tag: null, kind: 'template', catalog: null, blob: '' });
    };
    for (let i = 0; i < 16; i++) {
      await put(a, `p${i}.zip`);
      await a.settled();
    }
    // b heard of none of it (no refresh), and its next entry number was used and pruned long ago.
    expect((await put(b, 'late.zip')).id).toBe(17);
    expect((await indexed(a)).map((r) => r.name).sort()).toEqual([...Array.from({ length: 16 }, (_, i) => `p${i}.zip`), 'late.zip'].sort());
    expect((await a.refresh())!.records.map((r) => r.name)).toEqual(['late.zip']);
  });

  it('starts from the checkpoint before a damaged one when the journal leads past it, and refuses on a damaged entry, naming it', async () => {
    const settings: S3Settings = { endpoint: s3.S3_ENDPOINT!, region: s3.S3_REGION!, bucket: `rs-${randomUUID().slice(0, 8)}`, prefix: 'd/', forcePathStyle: true };
    const a = new S3Storage(settings, silent, { checkpointEvery: 3 });
    settingsOf.set(a, settings);
    await a.client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
    await a.open();
    for (let i = 0; i < 7; i++) {
      const staged = await a.stage(Readable.from([Buffer.from(`p${i}`)]));
      await a.publish(staged, { id: 0, name: `p${i}.zip`, size: staged.size, sha256: staged.sha256, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', downloadCount: 0, tag: null, kind: 'template', catalog: null, blob: '' });
    }
    await a.settled();
    const cut = '{"version":3,"seq":6,"lastId":6,"records":[{"na';
    await a.client.send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'd/checkpoints/000000000006.json', Body: cut }));
    expect((await at(settings).open()).map((r) => r.name).sort()).toEqual(Array.from({ length: 7 }, (_, i) => `p${i}.zip`));
    await a.client.send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'd/journal/000000000007.json', Body: '{"version":1,"seq":7,"la' }));
    const error = await at(settings).open().catch((err: Error) => err);
    expect(error).toMatchObject({ code: 'damaged' });
    expect((error as Error).message).toContain(`s3://${settings.bucket}/d/journal/000000000007.json`);
    expect((await a.client.send(new GetObjectCommand({ Bucket: settings.bucket, Key: 'd/checkpoints/000000000006.json' }))).ContentLength).toBe(cut.length);
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
    await sweeper.settled();
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
    const early = at(settings);
    await early.open();
    await early.settled();
    expect(await text(await storage.read(v1))).toBe('one');
    const sweeper = new S3Storage(settings, silent, { retiredGraceMs: 0 });
    await sweeper.open();
    await expect(storage.read(v1)).rejects.toMatchObject({ code: 'not-found' });
    await expect(storage.read(v2)).rejects.toMatchObject({ code: 'not-found' });
    expect((await bucketIndex(storage.client, settings.bucket, 'p/')).retired).toEqual([]);
  });

  it('refuses to open on a damaged index.json of the layout before the journal, naming it, and never overwrites it', async () => {
    const settings = await fresh();
    const storage = at(settings);
    const body = '{"version":1,"lastId":1,"records":[{"id":1,"na';
    await storage.client.send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'p/index.json', Body: body }));
    const error = await storage.open().catch((err: Error) => err);
    expect(error).toMatchObject({ code: 'damaged' });
    expect((error as Error).message).toContain(`s3://${settings.bucket}/p/index.json`);
    const stored = await (await storage.client.send(new GetObjectCommand({ Bucket: settings.bucket, Key: 'p/index.json' }))).Body!.transformToString();
    expect(stored).toBe(body);
  });

  it('takes an index.json of the layout before the journal in as its first checkpoint, keeping ids, counts and retired blobs; it is never written again', async () => {
    const settings = await fresh();
    const storage = at(settings);
    const blob = await storage.stage(Readable.from(['legacy']));
    const legacy = { version: 1, lastId: 41, records: [{ ...rec('old.zip', blob), id: 7, downloadCount: 9, blob: (blob as unknown as { key: string }).key }], retired: [{ blob: 'p/blobs/gone', at: Date.now() }] };
    const body = JSON.stringify(legacy);
    await storage.client.send(new PutObjectCommand({ Bucket: settings.bucket, Key: 'p/index.json', Body: body }));
    const [old] = await storage.open();
    expect(old).toMatchObject({ name: 'old.zip', id: 7, downloadCount: 9 });
    expect(await text(await storage.read(old!))).toBe('legacy');
    expect((await put(storage, 'new.zip', 'new')).id).toBe(42);
    const index = await bucketIndex(storage.client, settings.bucket, 'p/');
    expect(index.retired.map((r) => r.blob)).toEqual(['p/blobs/gone']);
    expect([...index.records.keys()].sort()).toEqual(['new.zip', 'old.zip']);
    expect(await (await storage.client.send(new GetObjectCommand({ Bucket: settings.bucket, Key: 'p/index.json' }))).Body!.transformToString()).toBe(body);
  });

  it('reports a bad record by name, serves the others, and keeps the bad one through later writes and checkpoints', async () => {
    const settings = await fresh();
    const storage = at(settings);
    await storage.open();
    await put(storage, 'good.zip', 'good');
    await put(storage, 'bad.zip', 'bad');
    const key = 'p/journal/000000000002.json';
    const entry = JSON.parse(await (await storage.client.send(new GetObjectCommand({ Bucket: settings.bucket, Key: key }))).Body!.transformToString());
    entry.put.find((r: PackageRecord) => r.name === 'bad.zip').size = -1;
    await storage.client.send(new PutObjectCommand({ Bucket: settings.bucket, Key: key, Body: JSON.stringify(entry) }));
    const lines: { level: number; record?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const reopened = new S3Storage(settings, log, { checkpointEvery: 3 });
    expect((await reopened.open()).map((r) => r.name)).toEqual(['good.zip']);
    expect(lines.some((l) => l.level === 50 && l.record === 'bad.zip')).toBe(true);
    await put(reopened, 'later.zip', 'later');
    await reopened.settled();
    const checkpoint = JSON.parse(await (await storage.client.send(new GetObjectCommand({ Bucket: settings.bucket, Key: 'p/checkpoints/000000000003.json' }))).Body!.transformToString());
    expect(checkpoint.invalidRecords.map((r: PackageRecord) => r.name)).toEqual(['bad.zip']);
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
