import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type * as ClientS3 from '@aws-sdk/client-s3';
import type { ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import type * as LibStorage from '@aws-sdk/lib-storage';
import type * as Presigner from '@aws-sdk/s3-request-presigner';
import type { Logger } from 'pino';
import { contentTypeOf } from '../domain/names.js';
import { Digest } from './digest.js';
import { FileSink } from './file-sink.js';
import { countsChange, Journal, placed, stateOf, type Change, type JournalBackend, type JournalState, type Retired } from './journal.js';
import { asFull, batchProblem, StorageError, type BatchItem, type ByteRange, type DownloadCount, type ForeignChanges, type PackageRecord, type StagedBlob, type Storage, type PublishOptions, type StoredRecord, type WriteOptions } from './storage.js';

// The SDK through require(), not import: imported as ES modules, Node first scans these CommonJS bundles (~1 MB) for
// their exports, ~35-45 ms of an s3 server's start-up, measured.
const require = createRequire(import.meta.url);
const {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} = require('@aws-sdk/client-s3') as typeof ClientS3;
const { Upload } = require('@aws-sdk/lib-storage') as typeof LibStorage;
const { getSignedUrl } = require('@aws-sdk/s3-request-presigner') as typeof Presigner;

export interface S3Settings {
  /** e.g. `http://127.0.0.1:7480`; the SDK's default (AWS) when null. */
  endpoint: string | null;
  region: string;
  bucket: string;
  /** Every key lives under it, e.g. `release-server/`; empty for the bucket's root. */
  prefix: string;
  forcePathStyle: boolean;
}

/** What a store written before the journal holds: every record in one object, `index.json`. */
interface IndexObject {
  version: 1;
  lastId: number;
  records: StoredRecord[];
  invalidRecords?: unknown[];
  retired?: Retired[];
  countBatches?: string[];
}

/**
 * Parts of 8 MiB, two in flight: an upload holds at most 16 MiB of the body in memory, and the RGW measured ~165
 * MiB/s with 8 MiB parts against ~112 with 5 MiB.
 */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 2;
/** Blobs and multipart uploads no index names, older than this, are what a crash left: swept at open. */
const LEFTOVER_AGE_MS = 60 * 60 * 1000;
const COMMIT_ATTEMPTS = 20;
/** Replaced and removed blobs stay this long by default: beyond download_redirect_expiry_seconds' default (900 s). */
const RETIRED_GRACE_MS = 25 * 60 * 1000;
/** How often refresh() also sweeps. */
const SWEEP_EVERY_MS = 5 * 60 * 1000;
/**
 * A checkpoint every 200 entries: start-up reads at most that many small objects after it (16 at a time), and the
 * checkpoint, which grows with the package count (~35 MB at 100,000), is written once per 200 changes.
 */
const CHECKPOINT_EVERY = 200;
const KEEP_CHECKPOINTS = 3;
const SEQ_KEY = /(\d{12})\.json$/;
const isS3Blob = (blob: string): boolean => blob.length > 0 && !blob.includes('..');
const STAGING_DIR_PREFIX = 'release-server-s3-staging-';

class S3StagedBlob implements StagedBlob {
  private settled = false;
  constructor(
    private readonly storage: S3Storage,
    readonly key: string,
    /** The same bytes on local disk, for vetting: read there instead of back over the network. */
    readonly localCopy: string,
    readonly size: number,
    readonly sha256: string,
    /** The upload, still sending its last parts while the caller vets the local copy: its error, or null once done. */
    private readonly upload: Promise<unknown>,
  ) {}

  get localPath(): string {
    return this.localCopy;
  }

  read(range: ByteRange): Readable {
    if (this.settled) throw new Error('staged blob already published or discarded');
    return createReadStream(this.localCopy, { start: range.start, end: range.end, highWaterMark: Math.max(1, Math.min(64 * 1024, range.end - range.start + 1)) });
  }

  /** False once published or discarded. */
  get usable(): boolean {
    return !this.settled;
  }

  /** Resolves once the object is complete in the bucket; rejects with the upload's error (discard cleans up). */
  async uploaded(): Promise<void> {
    const failure = await this.upload;
    if (failure !== null) throw failure;
  }

  /** Hands the object over to the index; the local copy is no longer needed. */
  claim(): void {
    if (this.settled) throw new Error('staged blob already published or discarded');
    this.settled = true;
    void rm(this.localCopy, { force: true });
  }

  /** Back from a publish that stored nothing (a stale one): the object can be published again, or discarded. */
  unclaim(): void {
    this.settled = false;
  }

  /**
   * Waits for an upload still in flight (all that is left to send is the last parts of a body received in full),
   * then deletes the object: nothing of it stays in the bucket.
   */
  async discard(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await rm(this.localCopy, { force: true });
    await this.upload;
    await this.storage.deleteKey(this.key);
  }
}

/**
 * Packages in an S3 bucket, every key under the prefix:
 *
 *     blobs/<uuid>               the bytes of one upload, never rewritten
 *     journal/<seq>.json         one change of the index each (journal.ts), created with If-None-Match: *
 *     checkpoints/<seq>.json     every record as of change <seq>, one per 200 changes; the last 3 kept
 *     index.json                 the whole index, as the version before the journal wrote it: read once, when there
 *                                is no checkpoint yet, as the first one; never written or deleted
 *
 * The next journal key, created with `If-None-Match: *` (which this kind of store honours, while
 * CompleteMultipartUpload ignores conditions), is the commit point: a package becomes visible only when an entry
 * naming its finished blob exists, and two writers never both commit one sequence number: the loser reads the entry
 * that won, decides its change again (a name taken meanwhile is a conflict; ids continue from the other's) and
 * writes the next number. A write costs one small object whatever the package count, and one checkpoint per 200
 * writes. Replicas see each other's writes by reading the next entry: one small GET per refresh while nothing
 * changed.
 *
 * Blobs are never rewritten: an overwrite is a new blob and a new record. A blob that a record stops naming
 * (replaced or removed) is listed in the index as retired, with the time, and deleted by a sweep (at open, and from
 * refresh() every few minutes) only once `retiredGraceMs` has passed: longer than a presigned URL lives, so a
 * redirect or a download that started from the old record still gets the old bytes. Not supported: a download
 * through this server lasting longer than the grace.
 *
 * A damaged checkpoint is never overwritten: start-up goes back to the one before when the journal leads past it,
 * and otherwise stops, naming the object; a damaged entry, or a damaged index.json read as the first checkpoint,
 * stops start-up and every write. A bad record is logged by name and kept in the index as it is, but not served.
 */
export class S3Storage implements Storage {
  readonly client: ClientS3.S3Client;
  private readonly indexKey: string;
  private readonly journal: Journal;
  private lastSweep = 0;
  private background: Promise<unknown> = Promise.resolve();
  private stagingDir: Promise<string> | null = null;
  private commits: Promise<unknown> = Promise.resolve();
  private opened = false;

  constructor(
    private readonly settings: S3Settings,
    private readonly log: Logger,
    private readonly options: {
      leftoverAgeMs?: number;
      retiredGraceMs?: number;
      sweepEveryMs?: number;
      /**
       * A test seam: awaited by publishBatch before its commit. A hook that throws is a failure there; one that never
       * settles is a crash there (the process never gets further).
       */
      beforeBatchCommit?: () => Promise<void>;
      /** A checkpoint every this many entries (tests make it small). */
      checkpointEvery?: number;
    } = {},
  ) {
    this.client = new S3Client({
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      region: settings.region,
      forcePathStyle: settings.forcePathStyle,
      // The SDK's default sends streamed bodies aws-chunked with a trailing checksum, which S3-compatible stores
      // such as Ceph RGW refuse; the bytes are hashed here anyway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    this.indexKey = `${settings.prefix}index.json`;
    this.journal = new Journal(this.journalBackend(), {
      checkpointEvery: options.checkpointEvery ?? CHECKPOINT_EVERY,
      keepCheckpoints: KEEP_CHECKPOINTS,
      checkBlob: isS3Blob,
      log,
      recovery: `Restore it from a backup or an earlier object version, then start again.`,
      readConcurrency: 16,
      legacy: () => this.readLegacyIndex(),
    });
  }

  private get state(): JournalState {
    return this.journal.state;
  }

  async open(): Promise<StoredRecord[]> {
    await this.check();
    try {
      await this.journal.open();
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError('unavailable', `cannot read the package index from bucket ${this.settings.bucket}: ${describe(err)}`, { cause: err });
    }
    // What open() read is the starting point, not a change to hand on.
    this.journal.takeForeign();
    this.opened = true;
    // Retired blobs past their grace now; what crashed uploads left is listed in the background (at 100,000 packages
    // that is a hundred LIST pages, which readiness need not wait for).
    await this.sweepRetired();
    this.lastSweep = Date.now();
    this.background = this.sweepLeftovers().catch((err) => this.log.warn({ err }, 'could not sweep what interrupted uploads left; will try again'));
    return [...this.state.records.values()].map((r) => ({ ...r }));
  }

  /** Resolves when the sweep and the checkpoint started in the background (if any) are done. */
  async settled(): Promise<void> {
    await this.background;
    await this.journal.settled();
  }

  /**
   * Resolves as soon as the body has been received, hashed and written to the local copy, while the multipart upload
   * may still be sending its last parts: the caller vets the local copy meanwhile, and publish waits for the upload
   * before it commits (the object is named by nothing until then; discard waits for it and deletes it). 100 MiB uploads
   * spent ~60 ms between the body's end and the completed object, and vetting ~30-100 ms after it.
   */
  async stage(source: Readable): Promise<StagedBlob> {
    const key = `${this.settings.prefix}blobs/${randomUUID()}`;
    const localCopy = join(await this.localStaging(), randomUUID());
    const digest = new Digest();
    const file = new FileSink(localCopy);
    // One pass over the upload: hashed, written to the local copy (vetting reads it there, not back from the
    // store), and passed on to the multipart upload; the file's backpressure holds the stream like the upload's.
    const tee = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        digest.update(chunk);
        if (file.write(chunk)) done(null, chunk);
        else file.once('drain', () => done(null, chunk));
      },
      flush(done) {
        // The last writes can fail after write() took them (a full disk): the local copy must not pass for whole.
        file.end((err?: Error | null) => done(err ?? null));
      },
    });
    file.once('error', (err) => tee.destroy(err));
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.settings.bucket, Key: key, Body: tee, ContentType: 'application/octet-stream' },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      // A failed upload aborts its multipart upload: no parts are left behind.
      leavePartsOnError: false,
    });
    const done = upload.done();
    const outcome = done.then(() => null, (err: unknown) => err);
    const received = pipeline(source, tee);
    try {
      // The body to its end; an upload that fails first (the store refused a part) fails this too, or the body,
      // held back by the upload, would never end.
      await Promise.all([received, Promise.race([received, done])]);
    } catch (err) {
      tee.destroy();
      file.destroy();
      await upload.abort().catch(() => undefined);
      await outcome;
      await this.deleteKey(key).catch(() => undefined);
      await rm(localCopy, { force: true });
      throw asFull(err, 'the local copy of the upload');
    }
    return new S3StagedBlob(this, key, localCopy, digest.size, digest.hex(), outcome);
  }

  /**
   * This process's directory for local copies of uploads in flight. Directories that processes which crashed
   * left in the temporary directory are removed once they are an hour old.
   */
  private localStaging(): Promise<string> {
    this.stagingDir ??= (async () => {
      const base = tmpdir();
      const cutoff = Date.now() - LEFTOVER_AGE_MS;
      for (const entry of await readdir(base).catch(() => [] as string[])) {
        if (!entry.startsWith(STAGING_DIR_PREFIX)) continue;
        const info = await stat(join(base, entry)).catch(() => null);
        if (info && info.mtimeMs < cutoff) await rm(join(base, entry), { recursive: true, force: true });
      }
      return mkdtemp(join(base, STAGING_DIR_PREFIX));
    })();
    return this.stagingDir;
  }

  async publish<R extends StoredRecord>(staged: StagedBlob, input: R, options: PublishOptions = {}): Promise<R> {
    if (!(staged instanceof S3StagedBlob)) throw new TypeError('blob was not staged by this storage');
    this.journal.assertCurrent(options.current);
    // A failed upload throws here, before the blob is claimed: the caller's discard removes what it left.
    await staged.uploaded();
    staged.claim();
    let stored!: R;
    try {
      // Decided inside the commit, against the index as it is in the bucket: a name another replica has just
      // published is a conflict here too, and ids come from the one counter every replica shares. The replaced
      // blob is retired, not deleted: a download or presigned URL from the old record may still read it.
      await this.commit((state) => {
        const replaced = state.records.get(input.name);
        if (options.ifAbsent && replaced) throw new StorageError('conflict', `${input.name} exists`);
        const renamed = options.replaces !== undefined && options.replaces !== input.name ? state.records.get(options.replaces) : undefined;
        let lastId = state.lastId;
        stored = placed(input, replaced ?? renamed, () => ++lastId, staged.key);
        const retire = [replaced, renamed].filter((r) => r !== undefined && r.blob !== staged.key).map((r) => ({ blob: r!.blob, at: Date.now() }));
        return { ...(renamed ? { remove: [renamed.name] } : {}), put: [{ ...stored }], lastId, ...(retire.length > 0 ? { retire } : {}) };
      }, options);
    } catch (err) {
      // A stale caller publishes the same object again, once it has decided again.
      if (err instanceof StorageError && err.code === 'stale') staged.unclaim();
      // Otherwise no index names the new blob: nothing can be reading it.
      else await this.deleteKey(staged.key).catch(() => undefined);
      throw err;
    }
    return stored;
  }

  /**
   * Order of writes, and why: every blob is in the bucket first (stage uploads it, each under a key of its own that
   * nothing names, and the batch waits for every upload to complete); then ONE journal entry, created conditionally,
   * names them all: the commit point, so every replica sees the whole batch or none of it. Conflicts and ids are
   * decided inside the commit against the index as the bucket holds it (a name another replica published a moment
   * ago conflicts too, and the whole batch fails). A failure before or at the commit deletes the batch's blobs; a
   * crash there leaves them unnamed, and the sweep at open removes them once they are older than the leftover age,
   * as it does an interrupted upload's.
   */
  async publishBatch<R extends StoredRecord>(items: readonly BatchItem<R>[], options: { ifAbsent?: boolean } = {}): Promise<R[]> {
    const problem = batchProblem(items, (s) => s instanceof S3StagedBlob && s.usable);
    if (problem) {
      await Promise.all(items.map(({ staged }) => staged.discard().catch(() => undefined)));
      throw new TypeError(problem);
    }
    if (items.length === 0) return [];
    const blobs = items.map(({ staged }) => staged as S3StagedBlob);
    try {
      for (const blob of blobs) await blob.uploaded();
    } catch (err) {
      await Promise.all(blobs.map((blob) => blob.discard().catch(() => undefined)));
      throw err;
    }
    for (const blob of blobs) blob.claim();
    let stored: R[] = [];
    try {
      await this.options.beforeBatchCommit?.();
      await this.commit((state) => {
        let lastId = state.lastId;
        const retire: Retired[] = [];
        stored = items.map(({ record: input }, i) => {
          const replaced = state.records.get(input.name);
          if (options.ifAbsent && replaced) throw new StorageError('conflict', `${input.name} exists; nothing of the batch was stored`);
          const key = blobs[i]!.key;
          const record = placed(input, replaced, () => ++lastId, key);
          if (replaced && replaced.blob !== key) retire.push({ blob: replaced.blob, at: Date.now() });
          return record;
        });
        return { put: stored.map((r) => ({ ...r })), lastId, ...(retire.length > 0 ? { retire } : {}) };
      });
    } catch (err) {
      // No index names the batch's blobs: nothing can be reading them.
      await Promise.all(blobs.map((blob) => this.deleteKey(blob.key).catch(() => undefined)));
      throw err;
    }
    return stored;
  }

  /**
   * With a batch id, the index remembers the batch: a flush whose entry was written but whose answer was lost, then
   * retried, finds its id there and adds nothing.
   */
  async addDownloads(counts: readonly DownloadCount[], batch?: string): Promise<void> {
    await this.commit((state) => (batch !== undefined && state.countBatches.includes(batch) ? null : countsChange(state, counts, batch)));
  }

  async refresh(): Promise<ForeignChanges | null> {
    // Nothing before open() has read the index: a worker hears of the others' changes while it is still opening, and
    // reading the journal then would replay it twice into one state.
    if (!this.opened) return null;
    const run = this.commits.then(async () => {
      try {
        await this.journal.catchUp();
      } catch (err) {
        if (err instanceof StorageError) throw err;
        throw new StorageError('unavailable', `cannot refresh the index: ${describe(err)}`, { cause: err });
      }
    });
    this.commits = run.catch(() => undefined);
    await run;
    if (Date.now() - this.lastSweep >= (this.options.sweepEveryMs ?? SWEEP_EVERY_MS)) {
      this.lastSweep = Date.now();
      this.background = this.sweep().catch((err) => this.log.warn({ err }, 'could not sweep retired blobs; will try again'));
    }
    return this.journal.takeForeign();
  }

  /** By the record's own blob, never by name: the bytes are the ones the record describes, or not-found. */
  async read(record: StoredRecord, range?: ByteRange): Promise<Readable> {
    if (!isS3Blob(record.blob)) throw new StorageError('not-found', `no bytes for ${record.name}`);
    return this.readKey(record.blob, range);
  }

  async setApproval(name: string, approval: NonNullable<PackageRecord['approval']>, options: WriteOptions = {}): Promise<StoredRecord> {
    let stored!: StoredRecord;
    await this.commit((state) => {
      const current = state.records.get(name);
      if (!current || current.kind === 'snapshot') throw new StorageError('not-found', `no package named ${name}`);
      stored = { ...current, approval };
      return { put: [{ ...stored }] };
    }, options);
    return stored;
  }

  async remove(name: string, options: WriteOptions = {}): Promise<void> {
    await this.commit((state) => {
      const removed = state.records.get(name);
      if (!removed) throw new StorageError('not-found', `no package named ${name}`);
      return { remove: [name], retire: [{ blob: removed.blob, at: Date.now() }] };
    }, options);
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.settings.bucket }));
    } catch (err) {
      const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
      const why = status === 404 ? 'it does not exist' : status === 403 ? 'access is denied (check the credentials)' : describe(err);
      throw new StorageError('unavailable', `bucket ${this.settings.bucket}${this.settings.endpoint ? ` at ${this.settings.endpoint}` : ''} cannot be used: ${why}`, { cause: err });
    }
  }

  /** The bytes of one object, streamed; a range is inclusive. Rejects with StorageError('not-found') when it is gone. */
  async readKey(key: string, range?: ByteRange): Promise<Readable> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.settings.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
      );
      return res.Body as Readable;
    } catch (err) {
      throw isNotFound(err) ? new StorageError('not-found', `no object ${key}`) : err;
    }
  }

  /**
   * A presigned GET of a package's bytes, valid `expiresInSeconds`, that saves as `filename`: the client downloads
   * from the store, not through this server (as GitHub redirects release assets).
   */
  async presignedUrl(record: StoredRecord, expiresInSeconds: number): Promise<string> {
    const { name } = record;
    if (!isS3Blob(record.blob)) throw new StorageError('not-found', `no bytes for ${name}`);
    const command = new GetObjectCommand({
      Bucket: this.settings.bucket,
      Key: record.blob,
      ResponseContentDisposition: `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
      ResponseContentType: contentTypeOf(name),
    });
    return getSignedUrl(this.client, command, { expiresIn: expiresInSeconds });
  }

  async deleteKey(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: key }));
  }

  /**
   * The index as the version before the journal kept it (index.json), as the first checkpoint; null when absent.
   * A damaged one stops start-up, named: it is never overwritten.
   */
  private async readLegacyIndex(): Promise<{ state: JournalState; file: string } | null> {
    const file = `s3://${this.settings.bucket}/${this.indexKey}`;
    const text = await this.readText(this.indexKey);
    if (text === null) return null;
    const index = indexObjectProblem(text);
    if (typeof index === 'string') {
      throw new StorageError('damaged', `the package index ${file} is damaged (${index}); the server never overwrites it. Restore it from a backup or an earlier object version, then start again`);
    }
    return { state: stateOf({ ...index, seq: 0 }, isS3Blob, this.log, file), file };
  }

  /** An object's text, or null when it is absent. */
  private async readText(key: string): Promise<string | null> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.settings.bucket, Key: key }));
      return await res.Body!.transformToString();
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** The journal's primitives on the bucket (see the class comment for the keys). */
  private journalBackend(): JournalBackend {
    const { bucket, prefix } = this.settings;
    const key = (what: 'checkpoint' | 'entry', seq: number) => `${prefix}${what === 'checkpoint' ? 'checkpoints' : 'journal'}/${String(seq).padStart(12, '0')}.json`;
    const list = async (what: 'checkpoint' | 'entry', after: number): Promise<number[]> => {
      const seqs: number[] = [];
      let token: string | undefined;
      do {
        const page: ListObjectsV2CommandOutput = await this.client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: key(what, 0).replace(/\d{12}\.json$/, ''), ContinuationToken: token, ...(token ? {} : { StartAfter: key(what, after) }) }),
        );
        for (const object of page.Contents ?? []) {
          const seq = Number(SEQ_KEY.exec(object.Key ?? '')?.[1] ?? NaN);
          if (Number.isSafeInteger(seq) && seq > after) seqs.push(seq);
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return seqs.sort((a, b) => a - b);
    };
    const create = async (k: string, text: string): Promise<boolean> => {
      try {
        await this.client.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: text, ContentType: 'application/json', IfNoneMatch: '*' }));
        return true;
      } catch (err) {
        // 412: the key exists. 409: a conditional write to it is in flight: taken too, read it and decide again.
        if (isPreconditionFailed(err) || (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 409)) return false;
        throw err;
      }
    };
    return {
      describe: (what, seq) => `s3://${bucket}/${key(what, seq)}`,
      listCheckpoints: () => list('checkpoint', -1),
      listEntries: (after) => list('entry', after),
      readCheckpoint: (seq) => this.readText(key('checkpoint', seq)),
      readEntry: (seq) => this.readText(key('entry', seq)),
      // A HEAD: a GET of a small object from RGW waits ~40 ms for its body, a HEAD ~5 ms.
      hasEntry: async (seq) => {
        try {
          await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key('entry', seq) }));
          return true;
        } catch (err) {
          if (isNotFound(err)) return false;
          throw err;
        }
      },
      writeEntry: (seq, text) => create(key('entry', seq), text),
      writeCheckpoint: async (seq, text) => void (await create(key('checkpoint', seq), text)),
      delete: async (what, seqs) => {
        for (let i = 0; i < seqs.length; i += 1000) {
          const Objects = seqs.slice(i, i + 1000).map((seq) => ({ Key: key(what, seq) }));
          const res = await this.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects, Quiet: true } }));
          if (res.Errors?.length) throw new Error(`could not delete ${res.Errors.length} old index objects, e.g. ${res.Errors[0]!.Key}: ${res.Errors[0]!.Message}`);
        }
      },
    };
  }

  /**
   * Decides a change against the newest state of the index and commits it as the next journal entry (journal.ts):
   * when another writer took that number first, its entries are read and `decide` runs again; it may throw to give
   * up (a conflict it found), or return null to write nothing. One commit at a time in this process.
   */
  private commit(decide: (state: JournalState) => Change | null, options: WriteOptions = {}): Promise<void> {
    const run = this.commits.then(() =>
      this.journal.commit((state) => {
        const change = decide(state);
        return change === null ? null : { change, result: undefined };
      }, options),
    );
    this.commits = run.catch(() => undefined);
    return run;
  }

  /**
   * Deletes retired blobs whose grace has passed (the object first, then the index entry: a crash between leaves an
   * entry whose delete is repeated), and what crashed uploads left: unfinished multipart uploads and blobs that no
   * record names and that were never retired, once old enough.
   */
  private async sweep(): Promise<void> {
    await this.sweepRetired();
    await this.sweepLeftovers();
  }

  private async sweepRetired(): Promise<void> {
    const graceCutoff = Date.now() - (this.options.retiredGraceMs ?? RETIRED_GRACE_MS);
    const expired = this.state.retired.filter((r) => r.at <= graceCutoff);
    for (const { blob } of expired) await this.deleteKey(blob);
    if (expired.length > 0) {
      const done = new Set(expired.map((r) => r.blob));
      await this.commit((state) => {
        const swept = state.retired.filter((r) => done.has(r.blob)).map((r) => r.blob);
        return swept.length > 0 ? { swept } : null;
      });
      this.log.info({ deleted: expired.length }, 'deleted blobs replaced or removed longer ago than the grace period');
    }
  }

  private async sweepLeftovers(): Promise<void> {
    const cutoff = Date.now() - (this.options.leftoverAgeMs ?? LEFTOVER_AGE_MS);
    // Named as of now; a blob published after this listing started is younger than the cutoff anyway.
    const named = new Set([...this.state.records.values(), ...(this.state.invalid as { blob?: string }[])].map((r) => r?.blob));
    for (const { blob } of this.state.retired) named.add(blob);
    let swept = 0;
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: `${this.settings.prefix}blobs/`, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        if (!object.Key || named.has(object.Key) || (object.LastModified?.getTime() ?? 0) > cutoff) continue;
        await this.deleteKey(object.Key);
        swept += 1;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const uploads = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.settings.bucket, Prefix: `${this.settings.prefix}blobs/` }));
    for (const upload of uploads.Uploads ?? []) {
      if ((upload.Initiated?.getTime() ?? 0) > cutoff) continue;
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.settings.bucket, Key: upload.Key, UploadId: upload.UploadId }));
      swept += 1;
    }
    if (swept > 0) this.log.info({ swept }, 'removed what interrupted uploads left in the bucket');
  }
}

/** Why a legacy index.json cannot be used, or the index; records are checked one by one afterwards. */
function indexObjectProblem(text: string): string | IndexObject {
  let index: IndexObject;
  try {
    index = JSON.parse(text) as IndexObject;
  } catch (err) {
    return `not valid JSON: ${(err as Error).message}`;
  }
  if (typeof index !== 'object' || index === null || Array.isArray(index)) return 'not a JSON object';
  if (index.version !== 1) return `unknown version ${JSON.stringify(index.version)}`;
  if (!Number.isSafeInteger(index.lastId) || index.lastId < 0) return 'lastId is not a non-negative integer';
  if (!Array.isArray(index.records)) return 'records is not a list';
  if (index.invalidRecords !== undefined && !Array.isArray(index.invalidRecords)) return 'invalidRecords is not a list';
  if (index.retired !== undefined && !(Array.isArray(index.retired) && index.retired.every((r) => typeof r?.blob === 'string' && typeof r.at === 'number'))) {
    return 'retired is not a list of blobs and times';
  }
  if (index.countBatches !== undefined && !(Array.isArray(index.countBatches) && index.countBatches.every((b) => typeof b === 'string'))) {
    return 'countBatches is not a list of text';
  }
  return index;
}

/** The object is missing (not the bucket: a missing bucket is a store that is not there). */
function isNotFound(err: unknown): boolean {
  return err instanceof S3ServiceException && err.name !== 'NoSuchBucket' && (err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata.httpStatusCode === 404);
}

function isPreconditionFailed(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.name === 'PreconditionFailed' || err.$metadata.httpStatusCode === 412);
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
