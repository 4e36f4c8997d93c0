import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, createReadStream, constants, fstat, open as openFd, type Stats } from 'node:fs';
import { access, link, mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { tagOfName } from '../domain/version.js';
import { mapLimit } from './concurrency.js';
import { Digest } from './digest.js';
import { FileRange } from './file-range.js';
import { FileSink, writeInPieces } from './file-sink.js';
import { highestId, validateRecords } from './records.js';
import { checkpointText, countsChange, Journal, placed, type Change, type JournalBackend, type JournalState } from './journal.js';
import { asFull, batchProblem, StorageError, type BatchItem, type ByteRange, type DownloadCount, type ForeignChanges, type PackageRecord, type StagedBlob, type Storage, type PublishOptions, type StoredRecord, type WriteOptions } from './storage.js';

/** The directory, inside storage_path, that holds everything this server stores. Nothing outside it is touched. */
export const STATE_DIR = '.release-server';
/** Checkpoints kept (index/<seq>.json), with the journal entries after the oldest: what a damaged one falls back to. */
const KEEP_CHECKPOINTS = 3;
/** A checkpoint every this many journal entries: start-up reads at most this many small files after it. */
const CHECKPOINT_EVERY = 1000;
const GENERATION = /^(\d{12})\.json$/;
/** A batch's list of the blobs it is about to link, in tmp/ (see publishBatch). */
const BATCH_INTENT = /^batch-[0-9a-f-]+\.json$/;
/** A blob's name: its sha256, and since workers share a directory a suffix of its own per publish (see blobName). */
const BLOB = /^[0-9a-f]{64}(?:-[0-9a-f]{16})?$/;

const READ_CHUNK = 1024 * 1024;
const VET_CHUNK = 64 * 1024;
const HASH_CONCURRENCY = 8;

type State = JournalState;

/** The recovery command the FATAL line names. */
export function recoveryCommand(root: string): string {
  return `npm run -s recover-index -- ${JSON.stringify(root)} (or: node dist/recover-index.js ${JSON.stringify(root)})`;
}

export function generationName(seq: number): string {
  return `${String(seq).padStart(12, '0')}.json`;
}

export const isFsBlob = (blob: string): boolean => BLOB.test(blob);

/** A blob named by its sha256 alone, as stores from before workers name them: several records may name it. */
const isSharedBlob = (blob: string): boolean => blob.length === 64;

/**
 * The blob a replaced record names, when the bytes published over it are the same: the new record keeps it, so that
 * a download or a `/files` URL reading it is not cut off by an upload that changed nothing. Decided in the commit,
 * against the newest entry: only the writer that replaces that record ever releases its blob.
 */
function keptBlob(replaced: StoredRecord | undefined, staged: StagedBlob): string | undefined {
  return replaced && replaced.sha256 === staged.sha256 && replaced.size === staged.size && isFsBlob(replaced.blob) ? replaced.blob : undefined;
}

/**
 * A name for the bytes of one publish, never used before: `<sha256>-<16 hex>`. No two records ever share a blob made
 * this way, so removing one record's blob can never take another's bytes, even when another process (a worker) is
 * storing identical bytes at that moment. Stores written before workers name blobs by their sha256 alone, shared by
 * every record of those bytes; they are read as they are.
 */
function blobName(sha256: string): string {
  return `${sha256}-${randomBytes(8).toString('hex')}`;
}

class FsStagedBlob implements StagedBlob {
  private settled = false;
  /**
   * Settles when the bytes are on disk (their fsync, which runs while the upload is vetted). Publish waits for it
   * before a link makes them a blob; a failure is handled there, never unhandled here.
   */
  readonly durable: Promise<void>;

  constructor(readonly path: string, readonly size: number, readonly sha256: string, durable: Promise<void>) {
    this.durable = durable;
    durable.catch(() => undefined);
  }

  get localPath(): string {
    return this.path;
  }

  /** False once published or discarded. */
  get usable(): boolean {
    return !this.settled;
  }

  /** Hands the file over to publish; after this, discard leaves it alone. */
  claim(): void {
    if (this.settled) throw new Error('staged blob already published or discarded');
    this.settled = true;
  }

  /** Back from a publish that stored nothing and left the file (a stale one): usable and discardable again. */
  unclaim(): void {
    this.settled = false;
  }

  read(range: ByteRange): Readable {
    if (this.settled) throw new Error('staged blob already published or discarded');
    // Small reads: vetting streams the whole archive once more, and 1 MiB buffers would pile up between collections.
    return createReadStream(this.path, { start: range.start, end: range.end, highWaterMark: Math.max(1, Math.min(VET_CHUNK, range.end - range.start + 1)) });
  }

  async discard(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await rm(this.path, { force: true });
  }
}

/**
 * Packages on a filesystem, everything under `root/.release-server/` (the state directory):
 *
 *     blobs/<2 hex>/<sha256>-<16 hex>   the bytes of one publish (blobName): written once, create-only, never rewritten
 *     journal/<seq>.json       one change of the index each (journal.ts), create-only: the commit points
 *     index/<seq>.json         checkpoints: every record as of change <seq>, one per 1,000 changes; the last 3 kept
 *     tmp/                     staging (uploads, entries and checkpoints being written); swept at start-up
 *     trash/                   removed files whose space is being freed after the answer (dispose); swept at start-up
 *
 * Workers (`workers: N`, one server's processes) share the directory as replicas share a bucket: each holds its own
 * index, commits by the journal's create-only entries (a worker that loses the race for a number reads the winner's
 * entry and decides again), and takes in the others' entries on refresh(). Each stages in a directory of its own,
 * tmp/w<N>/ and trash/w<N>/, which it sweeps when it starts: the worker that had it before is dead by then, and the
 * others' files are never touched. Worker 1 also sweeps what belongs to no running worker (a server that ran with more
 * workers, or alone). Blobs are never shared between records (blobName), so no worker can remove bytes another is
 * committing a record for.
 *
 * Anything else in `root` (a config file, a key, notes, a package file put there by hand, the legacy `.meta/` and
 * `.tmp/`) is never adopted, served, listed or deleted; start-up names it at WARN. An index written by the previous
 * layout (`root/.meta/index.json` with the packages as files in `root`) is migrated once (see migrateLegacy). A
store from before the journal (index/ generations only, one per change) is read as it is: its newest generation is
the checkpoint, and changes go to journal/ from there on.
 *
 * Order of writes, and why:
 * - publish: (1) the staged bytes are fsynced in tmp/ (the fsync starts when staging ends, runs while the upload is
 *   vetted, and publish waits for it); (2) hard-linked to a new blob name, create-only, and the
 *   directory synced: a crash here leaves a blob no record names, which is never served; (3) the next journal
 *   entry is written with the new record (tmp file, fsync, create-only link, directory fsync): this is the commit
 *   point, a few hundred bytes whatever the package count; (4) only then does the in-memory state change (a failed
 *   write changes nothing, so a retry does not apply a change twice); every 1,000th entry is followed by a
 *   checkpoint, written in the background (journal.ts says why that order loses nothing); (5) the replaced blob is
 *   unlinked if no record names it any more (only blobs of a store written before workers are named by several). A
 *   download that opened it keeps reading the old inode; one that has its record but did not open it yet gets
 *   not-found and asks again (handlers/packages.ts).
 * - publishBatch: as publish, for many packages, with one commit: (1) the staged bytes are fsynced in tmp/ (stage);
 *   (2) a batch intent, tmp/batch-<uuid>.json listing every blob about to be linked, is written and
 *   fsynced with its directory, before any link: it is how a restart finds the blobs a crash left; (3) each blob is
 *   hard-linked create-only, as in publish; (4) ONE journal entry with every record of the batch: the commit
 *   point, so readers and a restart see all of the batch or none of it; (5) the in-memory state; (6) the intent is
 *   removed, then replaced blobs are released. A failure before (4) unlinks the blobs the batch created and removes
 *   the intent: the store is as it was. A crash before (4) leaves
 *   the intent in tmp/: open() reads it before it sweeps tmp/ and unlinks each listed blob that no record of the
 *   index names, so nothing of the batch remains. A crash after (4) leaves an intent whose blobs are all
 *   named: none is touched. A torn intent (a crash while writing it) means no link was made yet: nothing to remove.
 * - A damaged checkpoint or entry is never overwritten or deleted: open() starts from the checkpoint before a damaged
 *   one when the journal leads past it, and otherwise refuses, naming the file and `recover-index`.
 *
 * Not supported: two servers writing one directory (one server owns it, with its workers; use s3 for replicas on
 * several machines); identical bytes published under two names are stored twice (one blob per record; the price of
 * workers never racing over a shared blob); blobs that a crash of a single publish left without a record are not collected
 * automatically (they are invisible; `recover-index` lists them); a batch's are (above). A store in the layout before
 * the state directory is migrated by a server running alone (`workers: 1`); workers refuse to start on one. When
 * open() stops on a damaged index, tmp/ has already been swept and a crashed batch's blobs stay, unnamed, for
 * `recover-index` to list: nothing is deleted on the word of an index that cannot be read.
 */
export class FilesystemStorage implements Storage {
  readonly stateDir: string;
  private readonly blobsDir: string;
  private readonly tmpDir: string;
  private readonly indexDir: string;
  private readonly journalDir: string;
  private readonly journal: Journal;
  /** Files on their way out: renamed here at once, unlinked after the answer (see dispose). */
  private readonly trashDir: string;
  private commits: Promise<unknown> = Promise.resolve();
  private opened = false;

  constructor(
    private readonly root: string,
    private readonly log: Logger,
    private readonly options: {
      /**
       * A test seam: awaited by publishBatch after every blob is linked and before the commit. A hook that throws is
       * a failure there; one that never settles is a crash there (the process never gets further).
       */
      beforeBatchCommit?: () => Promise<void>;
      /** A checkpoint every this many entries (tests make it small). */
      checkpointEvery?: number;
      /** A test seam: awaited after an entry is written and before the checkpoint that follows it. */
      beforeCheckpoint?: () => Promise<void>;
      /** This process is worker `number` of `count` sharing the directory (see the class comment). */
      worker?: { number: number; count: number };
    } = {},
  ) {
    this.stateDir = join(root, STATE_DIR);
    this.blobsDir = join(this.stateDir, 'blobs');
    const own = options.worker ? `w${options.worker.number}` : '';
    this.tmpDir = join(this.stateDir, 'tmp', own);
    this.indexDir = join(this.stateDir, 'index');
    this.journalDir = join(this.stateDir, 'journal');
    this.trashDir = join(this.stateDir, 'trash', own);
    this.journal = new Journal(fsJournalBackend(this.tmpDir, this.indexDir, this.journalDir), {
      checkpointEvery: options.checkpointEvery ?? CHECKPOINT_EVERY,
      keepCheckpoints: KEEP_CHECKPOINTS,
      checkBlob: isFsBlob,
      log,
      recovery: `Recover with: ${recoveryCommand(root)}`,
      ...(options.beforeCheckpoint ? { beforeCheckpoint: options.beforeCheckpoint } : {}),
    });
  }

  private get state(): State {
    return this.journal.state;
  }

  /** Resolves once a checkpoint being written in the background is on disk. */
  settled(): Promise<void> {
    return this.journal.settled();
  }

  async open(): Promise<StoredRecord[]> {
    await mkdir(this.indexDir, { recursive: true });
    await mkdir(this.journalDir, { recursive: true });
    await mkdir(this.blobsDir, { recursive: true });
    // Only the server's own staging area, and of that only this process's (see the class comment): what an
    // interrupted upload, batch or index write left there. Read before the sweep: the blobs a batch that crashed
    // before its commit linked.
    const stale = await this.ownedEntries(join(this.stateDir, 'tmp'));
    const batchBlobs = await readBatchIntents(stale);
    for (const path of stale) await rm(path, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    // What the previous run was still freeing (dispose).
    for (const path of await this.ownedEntries(join(this.stateDir, 'trash'))) await rm(path, { recursive: true, force: true });

    const hasCheckpoint = (await readdir(this.indexDir)).some((name) => GENERATION.test(name));
    const hasEntries = (await readdir(this.journalDir)).some((name) => GENERATION.test(name));
    if (!hasCheckpoint && !hasEntries && !(await this.migrateLegacy())) {
      // Blobs without any index: the index was removed. Starting empty would lose every record silently.
      if ((await readdir(this.blobsDir)).length > 0) {
        throw new StorageError(
          'damaged',
          `the package index is missing from ${this.indexDir} but ${this.blobsDir} holds packages; nothing was changed. Restore index/ from a backup, or start over with an empty index that keeps the blobs: ${recoveryCommand(this.root)}`,
        );
      }
    }
    // The newest good checkpoint and the journal after it (an empty store gets its first, empty, checkpoint).
    await this.journal.open();
    // What open() read is the starting point, not a change to hand on.
    this.journal.takeForeign();
    this.opened = true;
    await this.dropUnnamed(batchBlobs);
    if ((this.options.worker?.number ?? 1) === 1) await this.warnForeign();
    return [...this.state.records.values()].map((r) => ({ ...r }));
  }

  /**
   * The entries of `dir` (tmp/ or trash/) that this process may clear at start-up: all of them for a server alone;
   * a worker's own w<N>, and for worker 1 also whatever belongs to no running worker.
   */
  private async ownedEntries(dir: string): Promise<string[]> {
    const names = await readdir(dir).catch(() => [] as string[]);
    const worker = this.options.worker;
    if (!worker) return names.map((name) => join(dir, name));
    const running = new Set(Array.from({ length: worker.count }, (_, i) => `w${i + 1}`));
    return names.filter((name) => name === `w${worker.number}` || (worker.number === 1 && !running.has(name))).map((name) => join(dir, name));
  }

  /** Unlinks those of `blobs` that no record (valid or kept aside) names: what a batch that never committed linked. */
  private async dropUnnamed(blobs: Set<string>): Promise<void> {
    if (blobs.size === 0) return;
    const named = new Set([...this.state.records.values()].map((r) => r.blob));
    for (const r of this.state.invalid) named.add((r as { blob?: string } | null)?.blob ?? '');
    const dropped: string[] = [];
    for (const blob of blobs) {
      if (named.has(blob)) continue;
      try {
        await unlink(this.blobPath(blob));
        dropped.push(blob);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err, blob }, 'could not remove a blob an interrupted batch left');
      }
    }
    if (dropped.length > 0) this.log.info({ blobs: dropped }, `removed ${dropped.length} blobs that a batch interrupted before its commit left`);
  }

  async stage(source: Readable): Promise<StagedBlob> {
    const path = join(this.tmpDir, randomUUID());
    const digest = new Digest();
    try {
      await pipeline(source, digest.passThrough(), new FileSink(path));
    } catch (err) {
      await rm(path, { force: true });
      throw asFull(err, 'the upload');
    }
    // The bytes are final: their fsync (~45 ms for 100 MiB here) runs while the service vets them (~35 ms), and
    // publish waits for it before a link makes them a blob.
    return new FsStagedBlob(path, digest.size, digest.hex(), fsyncFile(path));
  }

  async publish<R extends StoredRecord>(staged: StagedBlob, input: R, options: PublishOptions = {}): Promise<R> {
    if (!(staged instanceof FsStagedBlob)) throw new TypeError('blob was not staged by this storage');
    this.journal.assertCurrent(options.current);
    // Early, from what this process knows; the commit decides again against the newest entry, which another worker
    // may have written a moment ago.
    if (options.ifAbsent && this.state.records.has(input.name)) {
      await staged.discard();
      throw new StorageError('conflict', `${input.name} exists`);
    }
    staged.claim();
    const blob = blobName(staged.sha256);
    let replaced: StoredRecord | undefined;
    let renamed: StoredRecord | undefined;
    let stored: R;
    let stale = false;
    try {
      await staged.durable.catch((err: unknown) => {
        throw asFull(err, 'the upload');
      });
      await this.linkBlob(staged.path, blob);
      try {
        stored = await this.commit((state) => {
          replaced = state.records.get(input.name);
          if (options.ifAbsent && replaced) throw new StorageError('conflict', `${input.name} exists`);
          renamed = options.replaces !== undefined && options.replaces !== input.name ? state.records.get(options.replaces) : undefined;
          let lastId = state.lastId;
          const record = placed(input, replaced ?? renamed, () => ++lastId, keptBlob(replaced, staged) ?? blob);
          return { change: { ...(renamed ? { remove: [renamed.name] } : {}), put: [record], lastId }, result: record };
        }, options);
      } catch (err) {
        // No record names the blob this publish made: it goes. A stale caller publishes the staged bytes again.
        await this.releaseBlob(blob);
        stale = err instanceof StorageError && err.code === 'stale';
        throw asFull(err, 'the package index');
      }
    } finally {
      if (stale) staged.unclaim();
      else await this.dispose(staged.path);
    }
    // The same bytes again keep the blob they had (a download or /files URL reading it goes on); the new link goes.
    if (stored.blob !== blob) await this.releaseBlob(blob);
    else if (replaced) await this.releaseBlob(replaced.blob);
    if (renamed) await this.releaseBlob(renamed.blob);
    return { ...stored };
  }

  /** The order of writes, and why, is in the class comment. */
  async publishBatch<R extends StoredRecord>(items: readonly BatchItem<R>[], options: { ifAbsent?: boolean } = {}): Promise<R[]> {
    const staged = items.map((item) => item.staged);
    const discardAll = () => Promise.all(staged.map((s) => s.discard().catch(() => undefined)));
    const problem = batchProblem(items, (s) => s instanceof FsStagedBlob && s.usable);
    if (problem) {
      await discardAll();
      throw new TypeError(problem);
    }
    if (items.length === 0) return [];
    const taken = options.ifAbsent ? items.find((item) => this.state.records.has(item.record.name)) : undefined;
    if (taken) {
      await discardAll();
      throw new StorageError('conflict', `${taken.record.name} exists; nothing of the batch was stored`);
    }
    const blobs = staged as FsStagedBlob[];
    for (const blob of blobs) blob.claim();
    const names = blobs.map((blob) => blobName(blob.sha256));
    const intent = join(this.tmpDir, `batch-${randomUUID()}.json`);
    const created: string[] = [];
    const replaced: StoredRecord[] = [];
    let stored: R[];
    try {
      try {
        await writeDurably(intent, JSON.stringify({ blobs: names }));
        await syncDir(this.tmpDir);
        for (const blob of blobs) await blob.durable;
        for (const [i, blob] of blobs.entries()) {
          await this.linkBlob(blob.path, names[i]!);
          created.push(names[i]!);
        }
        await this.options.beforeBatchCommit?.();
        stored = await this.commit((state) => {
          replaced.length = 0;
          let lastId = state.lastId;
          const records = items.map(({ record: input }, i) => {
            const previous = state.records.get(input.name);
            if (options.ifAbsent && previous) throw new StorageError('conflict', `${input.name} exists; nothing of the batch was stored`);
            if (previous) replaced.push(previous);
            return placed(input, previous, () => ++lastId, keptBlob(previous, blobs[i]!) ?? names[i]!);
          });
          return { change: { put: records, lastId }, result: records };
        });
      } catch (err) {
        // No record names the blobs this batch made: they go.
        for (const name of created) await this.releaseBlob(name);
        throw asFull(err, 'the batch');
      }
    } finally {
      await Promise.all(blobs.map((blob) => this.dispose(blob.path)));
      await rm(intent, { force: true });
    }
    const kept = new Set(stored.map((r) => r.blob));
    for (const unused of names) if (!kept.has(unused)) await this.releaseBlob(unused);
    for (const old of new Set(replaced.map((r) => r.blob))) if (!kept.has(old)) await this.releaseBlob(old);
    return stored.map((r) => ({ ...r }));
  }

  async addDownloads(counts: readonly DownloadCount[], batch?: string): Promise<void> {
    if (batch !== undefined && this.state.countBatches.includes(batch)) return;
    try {
      await this.commit((state) => {
        const change = batch !== undefined && state.countBatches.includes(batch) ? null : countsChange(state, counts, batch);
        return change && { change, result: undefined };
      });
    } catch (err) {
      throw asFull(err, 'the download counts');
    }
  }

  /**
   * Other workers' entries (see the class comment); a server alone owns its directory and has nothing to take in.
   * Nothing before open() has read the index: a worker hears of the others' changes while it is still opening, and
   * reading the journal then would replay it twice into one state.
   */
  async refresh(): Promise<ForeignChanges | null> {
    if (!this.options.worker || !this.opened) return null;
    const run = this.commits.then(() => this.journal.catchUp());
    this.commits = run.catch(() => undefined);
    await run;
    return this.journal.takeForeign();
  }

  async read(record: StoredRecord, range?: ByteRange): Promise<Readable> {
    if (!isFsBlob(record.blob)) throw new StorageError('not-found', `no bytes for ${record.name}`);
    // The callback API: on the hot path of every download, fs/promises' FileHandle costs several times more.
    const fd = await new Promise<number>((resolve, reject) =>
      openFd(this.blobPath(record.blob), 'r', (err, fd) => (err ? reject(asNotFound(err, record.name)) : resolve(fd))),
    );
    let end = range?.end;
    if (end === undefined) {
      try {
        end = (await new Promise<Stats>((resolve, reject) => fstat(fd, (err, stats) => (err ? reject(err) : resolve(stats))))).size - 1;
      } catch (err) {
        closeSync(fd);
        throw err;
      }
    }
    const start = range?.start ?? 0;
    // A buffer no larger than what is read: a 1 KiB package must not allocate 1 MiB. A download sends it with reused
    // buffers instead (FileRange, http/stream.ts).
    return new FileRange(fd, start, end, Math.max(1, Math.min(READ_CHUNK, end - start + 1)));
  }

  async setApproval(name: string, approval: NonNullable<PackageRecord['approval']>, options: WriteOptions = {}): Promise<StoredRecord> {
    try {
      return await this.commit((state) => {
        const current = state.records.get(name);
        if (!current || current.kind === 'snapshot') throw new StorageError('not-found', `no package named ${name}`);
        const record = { ...current, approval };
        return { change: { put: [record] }, result: { ...record } };
      }, options);
    } catch (err) {
      throw asFull(err, 'the package index');
    }
  }

  async remove(name: string, options: WriteOptions = {}): Promise<void> {
    const removed = await this.commit((state) => {
      const record = state.records.get(name);
      if (!record) throw new StorageError('not-found', `no package named ${name}`);
      return { change: { remove: [name] }, result: record };
    }, options);
    await this.releaseBlob(removed.blob);
  }

  async check(): Promise<void> {
    const probe = join(this.tmpDir, `probe-${randomUUID()}`);
    try {
      await access(this.root, constants.R_OK | constants.W_OK);
      const handle = await open(probe, 'wx');
      try {
        await handle.writeFile('ok');
      } finally {
        await handle.close();
      }
      await readFile(probe);
    } catch (err) {
      const why = asFull(err, 'the readiness probe') instanceof StorageError ? 'no space left' : (err as Error).message;
      throw new StorageError('unavailable', `storage at ${this.root} is not readable and writable: ${why}`, { cause: err });
    } finally {
      // Also when the write failed half-way (a full disk): a probe never leaves a file behind.
      await rm(probe, { force: true }).catch(() => undefined);
    }
  }

  /**
   * Removes a file from where it was at once, and frees its bytes after: unlinking the last link of a 100 MiB file
   * frees its blocks inside the call, 25-70 ms here, which an upload that replaced a package (or sent bytes that are
   * stored already) would otherwise wait for before its answer. It is renamed into trash/ (a rename on the same
   * filesystem), and unlinked there without being waited for; what a crash leaves in trash/ goes at the next start.
   * A file that is not there is no error.
   */
  private async dispose(path: string): Promise<void> {
    const trashed = join(this.trashDir, randomUUID());
    for (let attempt = 1; ; attempt += 1) {
      try {
        await rename(path, trashed);
        break;
      } catch (err) {
        // The trash directory is made on first use; a file that is gone already is no error.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 1) {
          await mkdir(this.trashDir, { recursive: true });
          continue;
        }
        // Anything else (a file gone already, another filesystem): removed in place, as before.
        await rm(path, { force: true });
        return;
      }
    }
    void unlink(trashed).catch((err: unknown) => this.log.warn({ err, path: trashed }, 'could not free a removed file (it goes at the next start)'));
  }

  private blobPath(blob: string): string {
    return join(this.blobsDir, blob.slice(0, 2), blob);
  }

  /**
   * Decides a change against the state and commits it as the next journal entry (journal.ts); the state changes
   * only once the entry is on disk, so a failed write changes nothing and a retry applies once. One at a time.
   */
  private commit<T>(decide: (state: State) => { change: Change; result: T } | null, options: WriteOptions = {}): Promise<T> {
    const run = this.commits.then(() => this.journal.commit(decide, options));
    this.commits = run.catch(() => undefined);
    return run;
  }

  /**
   * The previous layout: packages as files in `root`, their records in `root/.meta/index.json`. Each record's file
   * is hashed; when its size and sha256 match, it is linked into blobs/ and the record keeps its id, times, count,
   * tag, kind and catalog metadata. The first checkpoint is written (the commit point), and only then are the
   * migrated files unlinked from `root`: a crash before that leaves them as ignored foreign files, and the checkpoint
   * is the truth. A file whose bytes differ from its record, or a record without its file, is not migrated and is
   * logged at ERROR by name; files without a record, and `.meta/` and `.tmp/`, are left as they are.
   */
  private async migrateLegacy(): Promise<boolean> {
    const legacyFile = join(this.root, '.meta', 'index.json');
    let text: string;
    try {
      text = await readFile(legacyFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    // Workers starting together would each migrate, and each unlink the files the others are still hashing.
    if (this.options.worker) {
      throw new StorageError('unavailable', `${this.root} holds packages in the layout of an older version; start the server once with workers: 1 (WORKERS=1) to migrate them, then with workers`);
    }
    let legacy: { lastId?: unknown; records?: unknown };
    try {
      legacy = JSON.parse(text) as typeof legacy;
      if (typeof legacy !== 'object' || legacy === null || !Array.isArray(legacy.records)) throw new Error('records is not a list');
    } catch (err) {
      throw new StorageError(
        'damaged',
        `the legacy package index ${legacyFile} is damaged (${(err as Error).message}); nothing was changed. Restore it from a backup, or move it aside to start with an empty store (the package files stay where they are, ignored)`,
      );
    }
    const raw = legacy.records as Record<string, unknown>[];
    const notMigrated: string[] = [];
    const candidates = await mapLimit(raw, HASH_CONCURRENCY, async (entry) => {
      if (typeof entry !== 'object' || entry === null || typeof entry.name !== 'string') return entry;
      const { mtimeMs: _, ...rest } = entry;
      const record = {
        ...rest,
        tag: rest.tag === undefined ? tagOfName(entry.name) : rest.tag,
        kind: rest.kind ?? 'template',
        catalog: rest.catalog ?? null,
        blob: '',
      } as Record<string, unknown>;
      const path = join(this.root, entry.name);
      const digest = new Digest();
      try {
        for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK })) digest.update(chunk as Buffer);
      } catch (err) {
        notMigrated.push(entry.name);
        this.log.error({ name: entry.name, err }, `legacy package ${entry.name} was not migrated: its file cannot be read; its record is kept aside`);
        return record;
      }
      const sha256 = digest.hex();
      if (sha256 !== record.sha256 || digest.size !== record.size) {
        notMigrated.push(entry.name);
        this.log.error(
          { name: entry.name, recorded: record.sha256, found: sha256 },
          `legacy package ${entry.name} was not migrated: its bytes differ from its record; the file is left where it is and its record kept aside (upload it again to serve it)`,
        );
        return { ...record, blob: '' };
      }
      record.blob = sha256;
      return record;
    });
    // Only records whose bytes check out get a blob; anything else fails validation below and is kept aside.
    const { records, invalid } = validateRecords(candidates, isFsBlob, this.log, legacyFile);
    // One directory sync per fan-out directory at the end, not one per blob: 10,000 packages migrate in seconds.
    for (const record of records) await this.linkBlob(join(this.root, record.name), record.blob, { sync: false, shared: true });
    for (const fan of new Set(records.map((r) => r.blob.slice(0, 2)))) await syncDir(join(this.blobsDir, fan));
    const state: State = {
      seq: 0,
      records: new Map(records.map((r) => [r.name, r])),
      lastId: Math.max(typeof legacy.lastId === 'number' ? legacy.lastId : 0, highestId(raw)),
      invalid,
      countBatches: [],
      retired: [],
    };
    // The first checkpoint is the commit point of the migration.
    await writeGenerationFile(this.tmpDir, this.indexDir, checkpointText(state), 0);
    for (const record of records) await unlink(join(this.root, record.name)).catch(() => undefined);
    await syncDir(this.root);
    this.log.info(
      { from: legacyFile, to: this.stateDir, migrated: records.length, notMigrated, kept: invalid.length },
      `migrated ${records.length} packages from the legacy layout; ${legacyFile} and the files without a record are left as they are`,
    );
    return true;
  }

  /** Names, at WARN, what lies in `root` besides the state directory: it is ignored, never served, listed or deleted. */
  private async warnForeign(): Promise<void> {
    const foreign = (await readdir(this.root)).filter((name) => name !== STATE_DIR).sort();
    if (foreign.length === 0) return;
    this.log.warn(
      { count: foreign.length, files: foreign.slice(0, 20) },
      `ignoring ${foreign.length} entries in ${this.root} that are not the server's (its state is in ${STATE_DIR}/): never served, listed or deleted`,
    );
  }

  /**
   * Makes `path` the blob `name` (create-only, by hard link; the directory synced). A name that exists is an error,
   * except where `shared` (the legacy migration: records of identical bytes there share one blob named by its sha256).
   */
  private async linkBlob(path: string, name: string, options: { sync?: boolean; shared?: boolean } = {}): Promise<void> {
    const dir = join(this.blobsDir, name.slice(0, 2));
    try {
      await mkdir(dir, { recursive: true });
      await link(path, join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && options.shared) return;
      throw asFull(err, 'the package');
    }
    if (options.sync !== false) await syncDir(dir);
  }

  /**
   * Unlinks a blob unless a record names it. Only a store written before workers has blobs that several records name;
   * a blob made since is named by one record, and by none once this is called.
   */
  private async releaseBlob(blob: string): Promise<void> {
    // Only those need the look through every record (at 100,000 packages, on every upload that replaces one).
    if (isSharedBlob(blob)) for (const record of this.state.records.values()) if (record.blob === blob) return;
    // A record kept aside as invalid may name it too: kept, so that repairing the record finds its bytes.
    if (this.state.invalid.some((r) => (r as { blob?: unknown } | null)?.blob === blob)) return;
    await this.dispose(this.blobPath(blob)).catch((err) => this.log.warn({ err, blob }, 'could not remove a blob no record names'));
  }
}

/**
 * The blobs that batch intents list, in the staging entries given (files, or a worker's directory of them); a torn
 * intent lists nothing (no link was made before it was whole).
 */
async function readBatchIntents(paths: readonly string[]): Promise<Set<string>> {
  const files: string[] = [];
  for (const path of paths) {
    const inside = await readdir(path).catch(() => null);
    files.push(...(inside ? inside.map((name) => join(path, name)) : [path]));
  }
  const blobs = new Set<string>();
  for (const file of files) {
    if (!BATCH_INTENT.test(basename(file))) continue;
    try {
      const intent = JSON.parse(await readFile(file, 'utf8')) as { blobs?: unknown };
      if (Array.isArray(intent.blobs)) for (const blob of intent.blobs) if (typeof blob === 'string' && isFsBlob(blob)) blobs.add(blob);
    } catch {
      // torn: written before any link
    }
  }
  return blobs;
}

/** Makes a file's bytes durable. */
async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `text` to a new file and fsyncs it. */
async function writeDurably(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await writeInPieces(handle, text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function asNotFound(err: unknown, name: string): unknown {
  return (err as NodeJS.ErrnoException).code === 'ENOENT' ? new StorageError('not-found', `the bytes of ${name} are gone`) : err;
}

/**
 * Writes `text` as `dir/<seq>.json`: a temp file in `tmpDir`, fsynced, then hard-linked to its name (create-only: an
 * existing file is never replaced) and the directory synced. The temp file goes either way, so a full disk leaves
 * nothing behind. Resolves false, writing nothing, when the name is taken. The server and the recovery command
 * both write checkpoints and journal entries this way.
 */
export async function writeGenerationFile(tmpDir: string, dir: string, text: string, seq: number): Promise<boolean> {
  const tmp = join(tmpDir, `index-${seq}-${randomUUID()}`);
  try {
    const handle = await open(tmp, 'wx');
    try {
      await writeInPieces(handle, text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(tmp, join(dir, generationName(seq)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    await syncDir(dir);
    return true;
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** The journal's primitives on a directory: checkpoints in `indexDir`, entries in `journalDir`, each `<seq>.json`. */
function fsJournalBackend(tmpDir: string, indexDir: string, journalDir: string): JournalBackend {
  const list = async (dir: string) =>
    (await readdir(dir).catch(() => [] as string[]))
      .map((name) => GENERATION.exec(name)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  const read = async (path: string) => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  };
  return {
    describe: (what, seq) => join(what === 'checkpoint' ? indexDir : journalDir, generationName(seq)),
    listCheckpoints: () => list(indexDir),
    listEntries: async (after) => (await list(journalDir)).filter((s) => s > after),
    readCheckpoint: (seq) => read(join(indexDir, generationName(seq))),
    readEntry: (seq) => read(join(journalDir, generationName(seq))),
    hasEntry: async (seq) => {
      try {
        await access(join(journalDir, generationName(seq)));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
    },
    writeEntry: (seq, text) => writeGenerationFile(tmpDir, journalDir, text, seq),
    writeCheckpoint: async (seq, text) => void (await writeGenerationFile(tmpDir, indexDir, text, seq)),
    delete: async (what, seqs) => {
      for (const seq of seqs) await rm(join(what === 'checkpoint' ? indexDir : journalDir, generationName(seq)), { force: true });
    },
  };
}


export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
