import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { StorageError, type PackageRecord, type Storage } from '../../../src/storage/storage.js';
import { sha256 } from '../../helpers/zip.js';

export interface StorageHarness {
  /** A new, empty store. */
  fresh(): Promise<Storage>;
  /** Another instance over the same store, as after a restart. */
  reopen(storage: Storage): Promise<Storage>;
  /** Names of the objects or files the store holds outside its staging area, for "nothing visible" checks. */
  visible(storage: Storage): Promise<string[]>;
  /** Anything left in the staging area. */
  staged(storage: Storage): Promise<string[]>;
  /** Bytes the store holds that no record names, and anything left in the staging area: what a failure may leave. */
  unnamed(storage: Storage): Promise<string[]>;
  /** Another instance over the same store whose publishBatch awaits `hook` after writing the bytes, before its commit. */
  withBatchHook(storage: Storage, hook: () => Promise<void>): Promise<Storage>;
  /** Another instance over the same store that, at open, removes whatever an interrupted write left, however recent. */
  sweeping(storage: Storage): Promise<Storage>;
}

const record = (name: string, id: number, bytes: string, extra: Partial<PackageRecord> = {}): PackageRecord => ({
  id,
  name,
  size: Buffer.byteLength(bytes),
  sha256: sha256(bytes),
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  downloadCount: 0,
  kind: 'template',
  catalog: null,
  tag: null,
  blob: '',
  ...extra,
});

/** Downloads of a record, as the service counts them: by its id, under the name it had. */
const counted = (r: { id: number; name: string }, count: number) => ({ id: r.id, name: r.name, count });

const anyBlob = (r: PackageRecord): PackageRecord => ({ ...r, blob: expect.any(String) as unknown as string });

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The behaviour every Storage implementation promises; each implementation runs it unchanged. */
export function describeStorage(kind: string, harness: StorageHarness): void {
  describe(`${kind} storage`, () => {
    it('starts empty', async () => {
      const storage = await harness.fresh();
      expect(await storage.open()).toEqual([]);
      await expect(storage.check()).resolves.toBeUndefined();
    });

    it('stages with size and sha256, publishes atomically, reads back, and keeps records across a reopen', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const staged = await storage.stage(Readable.from([Buffer.from('hello '), Buffer.from('world')]));
      expect(staged.size).toBe(11);
      expect(staged.sha256).toBe(sha256('hello world'));
      expect(await harness.visible(storage)).toEqual([]);
      const rec = await storage.publish(staged, record('a.zip', 0, 'hello world'));
      expect(rec.id).toBeGreaterThan(0);
      expect(await harness.visible(storage)).toEqual(['a.zip']);
      expect(await harness.staged(storage)).toEqual([]);
      expect(rec.blob).not.toBe('');
      expect(await text(await storage.read(rec))).toBe('hello world');
      expect(await text(await storage.read(rec, { start: 6, end: 10 }))).toBe('world');
      const again = await harness.reopen(storage);
      expect(await again.open()).toEqual([rec]);
    });

    it('reads staged bytes back by range before they are published (vetting opens the archive there)', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const staged = await storage.stage(Readable.from([Buffer.from('0123456789')]));
      expect(await text(staged.read({ start: 0, end: 9 }))).toBe('0123456789');
      expect(await text(staged.read({ start: 7, end: 9 }))).toBe('789');
      expect(await text(staged.read({ start: 3, end: 3 }))).toBe('3');
      expect(await harness.visible(storage)).toEqual([]);
      await staged.discard();
      expect(await harness.staged(storage)).toEqual([]);
    });

    it('keeps a record\'s kind and catalog metadata across a reopen', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const staged = await storage.stage(Readable.from([Buffer.from('ext')]));
      const catalog = { id: 'acme', version: '1.0.0', name: 'Acme', description: 'd', tags: ['x'], provides: { commands: 1 } };
      const rec = await storage.publish(staged, record('extension-acme-1.0.0.zip', 0, 'ext', { kind: 'extension', catalog }));
      expect(await (await harness.reopen(storage)).open()).toEqual([rec]);
    });

    it('replaces a package on publish', async () => {
      const storage = await harness.fresh();
      await storage.open();
      await storage.publish(await storage.stage(Readable.from(['one'])), record('p.zip', 1, 'one'));
      const two = await storage.publish(await storage.stage(Readable.from(['two!'])), record('p.zip', 1, 'two!'));
      expect(await text(await storage.read(two))).toBe('two!');
      expect(await (await harness.reopen(storage)).open()).toEqual([anyBlob(record('p.zip', 1, 'two!'))]);
    });

    it('leaves nothing when the source fails mid-stream', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const failing = Readable.from(
        (async function* () {
          yield Buffer.alloc(64 * 1024, 1);
          throw new Error('client went away');
        })(),
      );
      await expect(storage.stage(failing)).rejects.toThrow('client went away');
      expect(await harness.staged(storage)).toEqual([]);
      expect(await harness.visible(storage)).toEqual([]);
    });

    it('discards staged bytes, and refuses to publish them afterwards', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const staged = await storage.stage(Readable.from(['bytes']));
      await staged.discard();
      await staged.discard();
      expect(await harness.staged(storage)).toEqual([]);
      await expect(storage.publish(staged, record('x.zip', 1, 'bytes'))).rejects.toThrow();
      expect(await harness.visible(storage)).toEqual([]);
    });

    it('says not-found for a missing package, on read and on remove', async () => {
      const storage = await harness.fresh();
      await storage.open();
      await expect(storage.read(record('nope.zip', 1, 'never stored', { blob: sha256('never stored') }))).rejects.toMatchObject({ code: 'not-found' });
      await expect(storage.remove('nope.zip')).rejects.toBeInstanceOf(StorageError);
    });

    it('removes a package and its record', async () => {
      const storage = await harness.fresh();
      await storage.open();
      await storage.publish(await storage.stage(Readable.from(['x'])), record('gone.zip', 1, 'x'));
      await storage.remove('gone.zip');
      expect(await harness.visible(storage)).toEqual([]);
      expect(await (await harness.reopen(storage)).open()).toEqual([]);
    });

    it('adds download counts without touching the bytes, keeps them when a package is replaced, and drops counts of packages that are gone', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const rec = await storage.publish(await storage.stage(Readable.from(['x'])), record('count.zip', 0, 'x'));
      await storage.addDownloads([counted(rec, 3)]);
      await storage.addDownloads([counted(rec, 4), { id: rec.id + 100, name: 'gone.zip', count: 9 }]);
      const [reloaded] = await (await harness.reopen(storage)).open();
      expect(reloaded).toEqual({ ...rec, downloadCount: 7 });
      expect(await text(await storage.read(rec))).toBe('x');
      const replaced = await storage.publish(await storage.stage(Readable.from(['y'])), { ...rec, sha256: sha256('y') });
      expect(replaced.downloadCount).toBe(7);
    });

    it('publishes a record that replaces one of another name (1.0 stored again as 1.0.0): the old name goes in the same change, its count stays', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const old = await storage.publish(await storage.stage(Readable.from(['v1.0'])), record('ext-1.0.zip', 0, 'v1.0'));
      await storage.addDownloads([counted(old, 5)]);
      const renamed = await storage.publish(await storage.stage(Readable.from(['v1.0.0'])), record('ext-1.0.0.zip', old.id, 'v1.0.0'), { replaces: 'ext-1.0.zip' });
      expect(renamed).toMatchObject({ id: old.id, name: 'ext-1.0.0.zip', downloadCount: 5 });
      expect(await text(await storage.read(renamed))).toBe('v1.0.0');
      expect(await (await harness.reopen(storage)).open()).toEqual([renamed]);
      expect(await harness.visible(storage)).toEqual(['ext-1.0.0.zip']);
      // A name that is gone by then removes nothing; a name equal to the record's own replaces it as usual.
      const again = await storage.publish(await storage.stage(Readable.from(['v1.0.0!'])), record('ext-1.0.0.zip', old.id, 'v1.0.0!'), { replaces: 'ext-1.0.zip' });
      expect(again.downloadCount).toBe(5);
      expect(await (await harness.reopen(storage)).open()).toEqual([again]);
    });

    it('adds counts made under an old name to the record with that id, whatever it is named now; a removed record\'s, or a reused name\'s, are dropped', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const old = await storage.publish(await storage.stage(Readable.from(['v1.0'])), record('ext-1.0.zip', 0, 'v1.0'));
      const gone = await storage.publish(await storage.stage(Readable.from(['g'])), record('gone.zip', 0, 'g'));
      // Counted by other processes before they heard of the rename and the removal.
      const early = [counted(old, 2), counted(gone, 4)];
      await storage.publish(await storage.stage(Readable.from(['v1.0.0'])), record('ext-1.0.0.zip', old.id, 'v1.0.0'), { replaces: 'ext-1.0.zip' });
      await storage.remove('gone.zip');
      const again = await storage.publish(await storage.stage(Readable.from(['g2'])), record('gone.zip', 0, 'g2'));
      await storage.addDownloads(early, 'early');
      await storage.addDownloads([counted(old, 1)]);
      const counts = Object.fromEntries((await (await harness.reopen(storage)).open()).map((r) => [r.name, r.downloadCount]));
      expect(counts).toEqual({ 'ext-1.0.0.zip': 3, 'gone.zip': 0 });
      expect(again.id).not.toBe(gone.id);
    });

    it('decides a record\'s identity at the commit: an id removed since is never given again, and a record replaced unseen keeps its own', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const first = await storage.publish(await storage.stage(Readable.from(['one'])), record('a.zip', 0, 'one'));
      await storage.addDownloads([counted(first, 3)]);
      await storage.remove('a.zip');
      // A caller whose view still held the removed record.
      const stale = await storage.publish(await storage.stage(Readable.from(['two'])), record('a.zip', first.id, 'two', { createdAt: '2025-01-01T00:00:00.000Z', updatedAt: '2026-02-01T00:00:00.000Z' }));
      expect(stale.id).toBeGreaterThan(first.id);
      expect(stale).toMatchObject({ downloadCount: 0, createdAt: '2026-02-01T00:00:00.000Z' });
      // A caller that had not seen the record it replaces.
      await storage.addDownloads([counted(stale, 2)]);
      const unseen = await storage.publish(await storage.stage(Readable.from(['three'])), record('a.zip', 0, 'three', { createdAt: '2026-03-01T00:00:00.000Z', updatedAt: '2026-03-01T00:00:00.000Z' }));
      expect(unseen).toMatchObject({ id: stale.id, downloadCount: 2, createdAt: '2026-02-01T00:00:00.000Z' });
      expect(await (await harness.reopen(storage)).open()).toEqual([unseen]);
    });

    it('refuses to publish over an existing name when asked to publish only if absent', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const one = await storage.publish(await storage.stage(Readable.from(['one'])), record('taken.zip', 0, 'one'), { ifAbsent: true });
      const second = await storage.stage(Readable.from(['two']));
      await expect(storage.publish(second, record('taken.zip', 0, 'two'), { ifAbsent: true })).rejects.toMatchObject({ code: 'conflict' });
      expect(await text(await storage.read(one))).toBe('one');
      expect(await harness.staged(storage)).toEqual([]);
    });

    it('hands out distinct ids to new records, and never again one a published package had, even after its removal and a reopen', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const ids = [];
      for (const name of ['a.zip', 'b.zip', 'c.zip']) ids.push((await storage.publish(await storage.stage(Readable.from([name])), record(name, 0, name))).id);
      expect(new Set(ids).size).toBe(3);
      await storage.remove('c.zip');
      const again = await harness.reopen(storage);
      await again.open();
      const next = await again.publish(await again.stage(Readable.from(['d'])), record('d.zip', 0, 'd'));
      expect(next.id).toBeGreaterThan(Math.max(...ids));
    });

    it('reads by the record: a download opened before an overwrite or a removal gets all of that record\'s bytes, and an old record never reads the new bytes', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const v1 = Buffer.alloc(3 * 1024 * 1024, 0x31);
      const v2 = Buffer.alloc(2 * 1024 * 1024 + 5, 0x32);
      const first = await storage.publish(await storage.stage(Readable.from([v1])), record('race.zip', 0, v1.toString()));
      const opened = await storage.read(first);
      const second = await storage.publish(await storage.stage(Readable.from([v2])), { ...record('race.zip', first.id, v2.toString()) });
      expect(second.blob).not.toBe(first.blob);
      expect((await bytesOf(opened)).equals(v1)).toBe(true);
      expect((await bytesOf(await storage.read(second))).equals(v2)).toBe(true);
      // The old record: its own bytes while they are kept (s3, for the grace period), or not-found (fs); never v2's.
      const late = await storage.read(first).then(bytesOf, (err: StorageError) => err);
      if (late instanceof Buffer) expect(late.equals(v1)).toBe(true);
      else expect(late).toMatchObject({ code: 'not-found' });
      const held = await storage.read(second);
      await storage.remove('race.zip');
      expect((await bytesOf(held)).equals(v2)).toBe(true);
    });

    it('counts a batch of downloads once, however often it is retried', async () => {
      const storage = await harness.fresh();
      await storage.open();
      const rec = await storage.publish(await storage.stage(Readable.from(['x'])), record('once.zip', 0, 'x'));
      await storage.addDownloads([counted(rec, 3)], 'batch-1');
      await storage.addDownloads([counted(rec, 3)], 'batch-1');
      await storage.addDownloads([counted(rec, 1)], 'batch-2');
      expect(await (await harness.reopen(storage)).open()).toEqual([{ ...rec, downloadCount: 4 }]);
    });

    describe('publishBatch', () => {
      const stageAll = (storage: Storage, contents: Record<string, string>) =>
        Promise.all(Object.entries(contents).map(async ([name, bytes]) => ({ staged: await storage.stage(Readable.from([Buffer.from(bytes)])), record: record(name, 0, bytes) })));

      it('publishes every package of a batch, with new ids in order, replacing and keeping counts as publish does', async () => {
        const storage = await harness.fresh();
        await storage.open();
        const old = await storage.publish(await storage.stage(Readable.from(['old'])), record('b.zip', 0, 'old'));
        await storage.addDownloads([counted(old, 5)]);
        const items = await stageAll(storage, { 'a.zip': 'alpha', 'b.zip': 'bravo', 'c.zip': 'charlie' });
        // A replacement keeps its id, as the service asks of publish.
        items[1]!.record.id = old.id;
        const stored = await storage.publishBatch(items);
        expect(stored.map((r) => r.name)).toEqual(['a.zip', 'b.zip', 'c.zip']);
        const [a, b, c] = stored;
        expect(b!.id).toBe(old.id);
        expect(new Set([a!.id, c!.id, old.id]).size).toBe(3);
        expect(a!.id).toBeGreaterThan(old.id);
        expect(c!.id).toBeGreaterThan(a!.id);
        expect(b!.downloadCount).toBe(5);
        expect(await text(await storage.read(a!))).toBe('alpha');
        expect(await text(await storage.read(b!))).toBe('bravo');
        expect(await harness.visible(storage)).toEqual(['a.zip', 'b.zip', 'c.zip']);
        const reopened = await (await harness.reopen(storage)).open();
        expect(reopened.sort((x, y) => x.name.localeCompare(y.name))).toEqual(stored);
        expect(await storage.publishBatch([])).toEqual([]);
      });

      it('changes nothing when one name of an ifAbsent batch exists, and uses up every staged blob', async () => {
        const storage = await harness.fresh();
        await storage.open();
        const taken = await storage.publish(await storage.stage(Readable.from(['first'])), record('taken.zip', 0, 'first'));
        const items = await stageAll(storage, { 'new-1.zip': 'n1', 'taken.zip': 'second', 'new-2.zip': 'n2' });
        await expect(storage.publishBatch(items, { ifAbsent: true })).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('taken.zip') });
        expect(await harness.visible(storage)).toEqual(['taken.zip']);
        expect(await text(await storage.read(taken))).toBe('first');
        expect(await harness.unnamed(storage)).toEqual([]);
        expect(await (await harness.reopen(storage)).open()).toEqual([taken]);
        // Used up: publishing them again is refused, and changes nothing either.
        await expect(storage.publishBatch(items.filter((i) => i.record.name !== 'taken.zip'))).rejects.toThrow();
        expect(await harness.visible(storage)).toEqual(['taken.zip']);
      });

      it('changes nothing when a stage fails part-way through a batch, or one staged blob is no longer usable', async () => {
        const storage = await harness.fresh();
        await storage.open();
        const staged = await stageAll(storage, { 'a.zip': 'a', 'b.zip': 'b' });
        const failing = Readable.from(
          (async function* () {
            yield Buffer.alloc(64 * 1024, 1);
            throw new Error('archive ended early');
          })(),
        );
        await expect(storage.stage(failing)).rejects.toThrow('archive ended early');
        // The caller (an import) gives up: it discards what it staged.
        for (const { staged: blob } of staged) await blob.discard();
        expect(await harness.visible(storage)).toEqual([]);
        expect(await harness.unnamed(storage)).toEqual([]);

        const items = await stageAll(storage, { 'c.zip': 'c', 'd.zip': 'd', 'e.zip': 'e' });
        await items[1]!.staged.discard();
        await expect(storage.publishBatch(items)).rejects.toThrow(/d\.zip/);
        expect(await harness.visible(storage)).toEqual([]);
        expect(await harness.unnamed(storage)).toEqual([]);

        const twice = await stageAll(storage, { 'f.zip': 'f' });
        twice.push({ staged: await storage.stage(Readable.from(['f2'])), record: record('f.zip', 0, 'f2') });
        await expect(storage.publishBatch(twice)).rejects.toThrow(/f\.zip twice/);
        expect(await harness.visible(storage)).toEqual([]);
        expect(await harness.unnamed(storage)).toEqual([]);
      });

      it('changes nothing, and leaves no bytes, when the batch fails between its blob writes and its commit', async () => {
        const first = await harness.fresh();
        await first.open();
        const kept = await first.publish(await first.stage(Readable.from(['kept'])), record('kept.zip', 0, 'kept'));
        const storage = await harness.withBatchHook(first, async () => {
          throw new Error('the commit could not be written');
        });
        await storage.open();
        const items = await stageAll(storage, { 'x.zip': 'x', 'y.zip': 'y', 'kept-again.zip': 'kept' });
        await expect(storage.publishBatch(items)).rejects.toThrow('the commit could not be written');
        expect(await harness.visible(storage)).toEqual(['kept.zip']);
        expect(await harness.unnamed(storage)).toEqual([]);
        // Identical bytes a record names are not taken away with the batch.
        expect(await text(await storage.read(kept))).toBe('kept');
      });

      it('after a crash between the blob writes and the commit, a restarted store shows nothing of the batch and keeps none of its bytes', async () => {
        const first = await harness.fresh();
        await first.open();
        const kept = await first.publish(await first.stage(Readable.from(['kept'])), record('kept.zip', 0, 'kept'));
        let reached!: () => void;
        const atCommit = new Promise<void>((resolve) => (reached = resolve));
        // Never settles: the process "dies" there, and no line after it runs.
        const crashing = await harness.withBatchHook(first, () => (reached(), new Promise<void>(() => undefined)));
        await crashing.open();
        const items = await stageAll(crashing, { 'x.zip': 'x'.repeat(100_000), 'y.zip': 'y', 'kept-again.zip': 'kept' });
        void crashing.publishBatch(items);
        await atCommit;
        expect(await harness.visible(first)).toEqual(['kept.zip']);
        const restarted = await harness.reopen(first);
        expect(await restarted.open()).toEqual([kept]);
        const swept = await harness.sweeping(first);
        expect(await swept.open()).toEqual([kept]);
        // s3 lists what crashes left in the background, after open: awaited here, not raced.
        await (swept as Storage & { settled(): Promise<void> }).settled();
        expect(await harness.unnamed(swept)).toEqual([]);
        expect(await text(await swept.read(kept))).toBe('kept');
        const next = await swept.publishBatch(await stageAll(swept, { 'x.zip': 'x' }));
        expect(next[0]!.id).toBeGreaterThan(kept.id);
      });
    });

    it('has nothing new to refresh when only this instance wrote', async () => {
      const storage = await harness.fresh();
      await storage.open();
      await storage.publish(await storage.stage(Readable.from(['x'])), record('mine.zip', 0, 'x'));
      expect(await storage.refresh()).toBeNull();
    });
  });
}
