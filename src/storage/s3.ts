import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Logger } from 'pino';
import { contentTypeOf } from '../domain/names.js';
import { Digest } from './digest.js';
import { highestId, validateRecords } from './records.js';
import { asFull, batchProblem, StorageError, type BatchItem, type ByteRange, type PackageRecord, type StagedBlob, type Storage, type StoredRecord } from './storage.js';

export interface S3Settings {
  /** e.g. `http://127.0.0.1:7480`; the SDK's default (AWS) when null. */
  endpoint: string | null;
  region: string;
  bucket: string;
  /** Every key lives under it, e.g. `release-server/`; empty for the bucket's root. */
  prefix: string;
  forcePathStyle: boolean;
}

/** A blob no record names any more, and since when: deleted once no presigned URL or download can still need it. */
interface Retired {
  blob: string;
  /** ms since the epoch. */
  at: number;
}

interface IndexObject {
  version: 1;
  lastId: number;
  records: StoredRecord[];
  /** Records that failed validation when the index was loaded, kept verbatim: never served, never lost. */
  invalidRecords?: unknown[];
  retired?: Retired[];
  /** Ids of the last count batches applied (see Storage.addDownloads). */
  countBatches?: string[];
}

interface IndexState {
  records: Map<string, StoredRecord>;
  lastId: number;
  invalid: unknown[];
  retired: Retired[];
  countBatches: string[];
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
const KEEP_BATCHES = 64;
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

  /** Hands the object over to the index; the local copy is no longer needed. */
  claim(): void {
    if (this.settled) throw new Error('staged blob already published or discarded');
    this.settled = true;
    void rm(this.localCopy, { force: true });
  }

  async discard(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await rm(this.localCopy, { force: true });
    await this.storage.deleteKey(this.key);
  }
}

/**
 * Packages in an S3 bucket: each one's bytes under `blobs/<uuid>`, and every record in one object, `index.json`.
 * The index is the commit point. It is replaced with a conditional PutObject (`If-Match` its ETag, or
 * `If-None-Match: *` for the first), which this kind of store honours, while CompleteMultipartUpload ignores
 * conditions. So a package becomes visible only when an index naming its finished blob is written, and two
 * writers never overwrite each other's index unseen: the loser re-reads and applies its change again.
 *
 * Blobs are never rewritten: an overwrite is a new blob and a new record. A blob that a record stops naming
 * (replaced or removed) is listed in the index as retired, with the time, and deleted by a sweep (at open, and from
 * refresh() every few minutes) only once `retiredGraceMs` has passed: longer than a presigned URL lives, so a
 * redirect or a download that started from the old record still gets the old bytes. Not supported: a download
 * through this server lasting longer than the grace.
 *
 * A damaged index.json (not JSON, not an index) stops start-up and every write: it is never overwritten. A bad
 * record is logged by name and kept in the index as it is, but not served.
 */
export class S3Storage implements Storage {
  readonly client: S3Client;
  private readonly indexKey: string;
  private records = new Map<string, StoredRecord>();
  private lastId = 0;
  private invalid: unknown[] = [];
  private retired: Retired[] = [];
  private countBatches: string[] = [];
  private lastSweep = 0;
  private etag: string | null = null;
  private stagingDir: Promise<string> | null = null;
  /** Set when the index was read from the bucket with another process's changes, until refresh() hands them on. */
  private changedUnseen = false;
  /**
   * How this store wants the ETag in a PutObject If-Match. HTTP says quoted, and AWS takes that; Ceph RGW compares
   * it unquoted and answers 412 to the quoted form. Learned on the first 412 that was not a lost race.
   */
  private bareIfMatch = false;
  private commits: Promise<unknown> = Promise.resolve();

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
  }

  async open(): Promise<StoredRecord[]> {
    await this.check();
    await this.load();
    this.changedUnseen = false;
    await this.sweep();
    this.lastSweep = Date.now();
    return [...this.records.values()].map(copy);
  }

  async stage(source: Readable): Promise<StagedBlob> {
    const key = `${this.settings.prefix}blobs/${randomUUID()}`;
    const localCopy = join(await this.localStaging(), randomUUID());
    const digest = new Digest();
    const file = createWriteStream(localCopy, { flags: 'wx' });
    // One pass over the upload: hashed, written to the local copy (vetting reads it there, not back from the
    // store), and passed on to the multipart upload; the file's backpressure holds the stream like the upload's.
    const tee = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        digest.update(chunk);
        if (file.write(chunk)) done(null, chunk);
        else file.once('drain', () => done(null, chunk));
      },
      flush(done) {
        file.end(() => done());
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
    try {
      await Promise.all([pipeline(source, tee), upload.done()]);
    } catch (err) {
      file.destroy();
      await upload.abort().catch(() => undefined);
      await this.deleteKey(key).catch(() => undefined);
      await rm(localCopy, { force: true });
      throw asFull(err, 'the local copy of the upload');
    }
    return new S3StagedBlob(this, key, localCopy, digest.size, digest.hex());
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

  async publish<R extends StoredRecord>(staged: StagedBlob, input: R, options: { ifAbsent?: boolean } = {}): Promise<R> {
    if (!(staged instanceof S3StagedBlob)) throw new TypeError('blob was not staged by this storage');
    staged.claim();
    let stored!: R;
    try {
      // Decided inside the commit, against the index as it is in the bucket: a name another replica has just
      // published is a conflict here too, and ids come from the one counter every replica shares. The replaced
      // blob is retired, not deleted: a download or presigned URL from the old record may still read it.
      await this.commit((state) => {
        const replaced = state.records.get(input.name);
        if (options.ifAbsent && replaced) throw new StorageError('conflict', `${input.name} exists`);
        // Counts belong to the store (addDownloads): a replaced package keeps its count.
        stored = { ...input, id: input.id === 0 ? ++state.lastId : input.id, downloadCount: replaced?.downloadCount ?? 0, blob: staged.key };
        state.records.set(input.name, { ...stored });
        if (replaced && replaced.blob !== staged.key) state.retired = [...state.retired, { blob: replaced.blob, at: Date.now() }];
      });
    } catch (err) {
      // No index names the new blob: nothing can be reading it.
      await this.deleteKey(staged.key).catch(() => undefined);
      throw err;
    }
    return stored;
  }

  /**
   * Order of writes, and why: every blob is in the bucket already (stage uploads it, each under a key of its own that
   * nothing names); then ONE conditional write of the index names them all: the commit point, so every replica sees
   * the whole batch or none of it. Conflicts and ids are decided inside the commit against the index as the bucket
   * holds it (a name another replica published a moment ago conflicts too, and the whole batch fails). A failure
   * before or at the commit deletes the batch's blobs; a crash there leaves them unnamed, and the sweep at open
   * removes them once they are older than the leftover age, as it does an interrupted upload's.
   */
  async publishBatch<R extends StoredRecord>(items: readonly BatchItem<R>[], options: { ifAbsent?: boolean } = {}): Promise<R[]> {
    const problem = batchProblem(items, (s) => s instanceof S3StagedBlob && s.usable);
    if (problem) {
      await Promise.all(items.map(({ staged }) => staged.discard().catch(() => undefined)));
      throw new TypeError(problem);
    }
    if (items.length === 0) return [];
    const blobs = items.map(({ staged }) => staged as S3StagedBlob);
    for (const blob of blobs) blob.claim();
    let stored: R[] = [];
    try {
      await this.options.beforeBatchCommit?.();
      await this.commit((state) => {
        stored = items.map(({ record: input }, i) => {
          const replaced = state.records.get(input.name);
          if (options.ifAbsent && replaced) throw new StorageError('conflict', `${input.name} exists; nothing of the batch was stored`);
          const key = blobs[i]!.key;
          const record: R = { ...input, id: input.id === 0 ? ++state.lastId : input.id, downloadCount: replaced?.downloadCount ?? 0, blob: key };
          state.records.set(input.name, { ...record });
          if (replaced && replaced.blob !== key) state.retired = [...state.retired, { blob: replaced.blob, at: Date.now() }];
          return record;
        });
      });
    } catch (err) {
      // No index names the batch's blobs: nothing can be reading them.
      await Promise.all(blobs.map((blob) => this.deleteKey(blob.key).catch(() => undefined)));
      throw err;
    }
    return stored;
  }

  /**
   * With a batch id, the index remembers the batch: a flush whose PutObject succeeded but whose answer was lost, then
   * retried, finds its id there and adds nothing.
   */
  async addDownloads(counts: ReadonlyMap<string, number>, batch?: string): Promise<void> {
    await this.commit((state) => {
      if (batch !== undefined && state.countBatches.includes(batch)) return;
      for (const [name, delta] of counts) {
        const current = state.records.get(name);
        if (current) state.records.set(name, { ...current, downloadCount: current.downloadCount + delta });
      }
      if (batch !== undefined) state.countBatches = [...state.countBatches, batch].slice(-KEEP_BATCHES);
    });
  }

  async refresh(): Promise<StoredRecord[] | null> {
    await this.commits;
    try {
      await this.load({ ifChanged: true });
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError('unavailable', `cannot refresh the index: ${describe(err)}`, { cause: err });
    }
    if (Date.now() - this.lastSweep >= (this.options.sweepEveryMs ?? SWEEP_EVERY_MS)) {
      this.lastSweep = Date.now();
      void this.sweep().catch((err) => this.log.warn({ err }, 'could not sweep retired blobs; will try again'));
    }
    if (!this.changedUnseen) return null;
    this.changedUnseen = false;
    return [...this.records.values()].map(copy);
  }

  /** By the record's own blob, never by name: the bytes are the ones the record describes, or not-found. */
  async read(record: StoredRecord, range?: ByteRange): Promise<Readable> {
    if (!isS3Blob(record.blob)) throw new StorageError('not-found', `no bytes for ${record.name}`);
    return this.readKey(record.blob, range);
  }

  async setApproval(name: string, approval: NonNullable<PackageRecord['approval']>): Promise<StoredRecord> {
    let stored!: StoredRecord;
    await this.commit((state) => {
      const current = state.records.get(name);
      if (!current || current.kind === 'snapshot') throw new StorageError('not-found', `no package named ${name}`);
      stored = { ...current, approval };
      state.records.set(name, { ...stored });
    });
    return stored;
  }

  async remove(name: string): Promise<void> {
    await this.commit((state) => {
      const removed = state.records.get(name);
      if (!removed) throw new StorageError('not-found', `no package named ${name}`);
      state.records.delete(name);
      state.retired = [...state.retired, { blob: removed.blob, at: Date.now() }];
    });
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
   * Reads the index object; an absent one is an empty store. With `ifChanged`, a conditional GET that costs one
   * small request and transfers nothing when the index is the one already held.
   */
  private async load(options: { ifChanged?: boolean } = {}): Promise<void> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.indexKey, ...(options.ifChanged && this.etag ? { IfNoneMatch: this.etag } : {}) }),
      );
      const text = await res.Body!.transformToString();
      const problem = indexObjectProblem(text);
      if (typeof problem === 'string') {
        throw new StorageError(
          'damaged',
          `the package index s3://${this.settings.bucket}/${this.indexKey} is damaged (${problem}); the server never overwrites it. Restore it from a backup or an earlier object version, then start again`,
        );
      }
      // Each record checked: one bad record is logged by name and kept aside, the others served.
      const { records, invalid } = validateRecords(problem.records, isS3Blob, this.log, `s3://${this.settings.bucket}/${this.indexKey}`);
      this.invalid = [...(problem.invalidRecords ?? []), ...invalid];
      this.records = new Map(records.map((r) => [r.name, r]));
      this.lastId = Math.max(this.lastId, problem.lastId, highestId(problem.records), highestId(this.invalid));
      this.retired = problem.retired ?? [];
      this.countBatches = problem.countBatches ?? [];
      this.etag = res.ETag ?? null;
      this.changedUnseen = true;
    } catch (err) {
      if (err instanceof StorageError) throw err;
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 304) return;
      if (!isNotFound(err)) throw new StorageError('unavailable', `cannot read ${this.indexKey} from bucket ${this.settings.bucket}: ${describe(err)}`, { cause: err });
      if (this.etag !== null || this.records.size > 0) this.changedUnseen = true;
      this.records = new Map();
      this.invalid = [];
      this.retired = [];
      this.countBatches = [];
      this.etag = null;
    }
  }

  /**
   * Applies `change` to a copy of the index and writes it conditionally. When another writer got there first
   * (412), reloads and applies the change again; `change` may throw to give up (a conflict it found). One commit
   * at a time in this process.
   */
  private commit(change: (state: IndexState) => void): Promise<void> {
    const run = this.commits.then(async () => {
      for (let attempt = 1; ; attempt += 1) {
        // Copy-on-write: the state held here changes only once the bucket took the new index.
        const state: IndexState = { records: new Map(this.records), lastId: this.lastId, invalid: this.invalid, retired: this.retired, countBatches: this.countBatches };
        change(state);
        const body: IndexObject = {
          version: 1,
          lastId: state.lastId,
          records: [...state.records.values()],
          ...(state.invalid.length > 0 ? { invalidRecords: state.invalid } : {}),
          ...(state.retired.length > 0 ? { retired: state.retired } : {}),
          ...(state.countBatches.length > 0 ? { countBatches: state.countBatches } : {}),
        };
        try {
          const res = await this.client.send(
            new PutObjectCommand({
              Bucket: this.settings.bucket,
              Key: this.indexKey,
              Body: JSON.stringify(body),
              ContentType: 'application/json',
              ...(this.etag ? { IfMatch: this.bareIfMatch ? this.etag.replaceAll('"', '') : this.etag } : { IfNoneMatch: '*' }),
            }),
          );
          this.records = state.records;
          this.lastId = state.lastId;
          this.retired = state.retired;
          this.countBatches = state.countBatches;
          this.etag = res.ETag ?? null;
          return;
        } catch (err) {
          if (!isPreconditionFailed(err) || attempt >= COMMIT_ATTEMPTS) throw err;
          const sent = this.etag;
          await this.load();
          // Nobody else wrote: the store did not take our form of the ETag.
          if (sent !== null && this.etag === sent && !this.bareIfMatch) this.bareIfMatch = true;
        }
      }
    });
    this.commits = run.catch(() => undefined);
    return run;
  }

  /**
   * Deletes retired blobs whose grace has passed (the object first, then the index entry: a crash between leaves an
   * entry whose delete is repeated), and what crashed uploads left: unfinished multipart uploads and blobs that no
   * record names and that were never retired, once old enough.
   */
  private async sweep(): Promise<void> {
    const graceCutoff = Date.now() - (this.options.retiredGraceMs ?? RETIRED_GRACE_MS);
    const expired = this.retired.filter((r) => r.at <= graceCutoff);
    for (const { blob } of expired) await this.deleteKey(blob);
    if (expired.length > 0) {
      const done = new Set(expired.map((r) => r.blob));
      await this.commit((state) => {
        state.retired = state.retired.filter((r) => !done.has(r.blob));
      });
      this.log.info({ deleted: expired.length }, 'deleted blobs replaced or removed longer ago than the grace period');
    }
    const cutoff = Date.now() - (this.options.leftoverAgeMs ?? LEFTOVER_AGE_MS);
    const named = new Set([...this.records.values(), ...(this.invalid as { blob?: string }[])].map((r) => r?.blob));
    for (const { blob } of this.retired) named.add(blob);
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

/** The service may change what it is handed (counts it adds); the state held here stays as stored. */
function copy(record: StoredRecord): StoredRecord {
  return { ...record };
}

/** Why index.json cannot be used, or the index; records are checked one by one afterwards. */
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
