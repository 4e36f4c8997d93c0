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
import { StorageError, type ByteRange, type PackageRecord, type StagedBlob, type Storage } from './storage.js';

export interface S3Settings {
  /** e.g. `http://127.0.0.1:7480`; the SDK's default (AWS) when null. */
  endpoint: string | null;
  region: string;
  bucket: string;
  /** Every key lives under it, e.g. `release-server/`; empty for the bucket's root. */
  prefix: string;
  forcePathStyle: boolean;
}

/** A record as the index object holds it: with the key of its bytes. */
interface StoredRecord extends PackageRecord {
  blob: string;
}

interface IndexObject {
  version: 1;
  lastId: number;
  records: StoredRecord[];
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
const STAGING_DIR_PREFIX = 'release-server-s3-staging-';

class S3StagedBlob implements StagedBlob {
  private settled = false;
  constructor(
    private readonly storage: S3Storage,
    readonly key: string,
    /** The same bytes on local disk, for vetting: read there instead of back over the network. */
    private readonly localCopy: string,
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
 */
export class S3Storage implements Storage {
  readonly client: S3Client;
  private readonly indexKey: string;
  private records = new Map<string, StoredRecord>();
  private lastId = 0;
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
    private readonly options: { leftoverAgeMs?: number } = {},
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

  async open(): Promise<PackageRecord[]> {
    await this.check();
    await this.load();
    this.changedUnseen = false;
    await this.sweep();
    return [...this.records.values()].map(withoutBlob);
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
      throw err;
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

  async publish(staged: StagedBlob, input: PackageRecord, options: { ifAbsent?: boolean } = {}): Promise<PackageRecord> {
    if (!(staged instanceof S3StagedBlob)) throw new TypeError('blob was not staged by this storage');
    staged.claim();
    let replaced: StoredRecord | undefined;
    let stored!: PackageRecord;
    try {
      // Decided inside the commit, against the index as it is in the bucket: a name another replica has just
      // published is a conflict here too, and ids come from the one counter every replica shares.
      await this.commit((state) => {
        replaced = state.records.get(input.name);
        if (options.ifAbsent && replaced) throw new StorageError('conflict', `${input.name} exists`);
        // Counts belong to the store (addDownloads): a replaced package keeps its count.
        stored = { ...input, id: input.id === 0 ? ++state.lastId : input.id, downloadCount: replaced?.downloadCount ?? 0 };
        state.records.set(input.name, { ...stored, blob: staged.key });
      });
    } catch (err) {
      await this.deleteKey(staged.key).catch(() => undefined);
      throw err;
    }
    if (replaced && replaced.blob !== staged.key) await this.deleteKey(replaced.blob).catch((err) => this.log.warn({ err }, 'could not delete a replaced blob'));
    return stored;
  }

  async addDownloads(counts: ReadonlyMap<string, number>): Promise<void> {
    await this.commit((state) => {
      for (const [name, delta] of counts) {
        const current = state.records.get(name);
        if (current) state.records.set(name, { ...current, downloadCount: current.downloadCount + delta });
      }
    });
  }

  async refresh(): Promise<PackageRecord[] | null> {
    await this.commits;
    try {
      await this.load({ ifChanged: true });
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError('unavailable', `cannot refresh the index: ${describe(err)}`, { cause: err });
    }
    if (!this.changedUnseen) return null;
    this.changedUnseen = false;
    return [...this.records.values()].map(withoutBlob);
  }

  async read(name: string, range?: ByteRange): Promise<Readable> {
    const record = this.records.get(name);
    if (!record) throw new StorageError('not-found', `no package named ${name}`);
    return this.readKey(record.blob, range);
  }

  async remove(name: string): Promise<void> {
    let removed: StoredRecord | undefined;
    await this.commit((state) => {
      removed = state.records.get(name);
      if (!removed) throw new StorageError('not-found', `no package named ${name}`);
      state.records.delete(name);
    });
    await this.deleteKey(removed!.blob).catch((err) => this.log.warn({ err }, 'could not delete a removed blob'));
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
  async presignedUrl(name: string, expiresInSeconds: number): Promise<string> {
    const record = this.records.get(name);
    if (!record) throw new StorageError('not-found', `no package named ${name}`);
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
      const index = JSON.parse(await res.Body!.transformToString()) as IndexObject;
      this.records = new Map(index.records.map((r) => [r.name, r]));
      this.lastId = Math.max(this.lastId, index.lastId, ...index.records.map((r) => r.id));
      this.etag = res.ETag ?? null;
      this.changedUnseen = true;
    } catch (err) {
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 304) return;
      if (!isNotFound(err)) throw new StorageError('unavailable', `cannot read ${this.indexKey} from bucket ${this.settings.bucket}: ${describe(err)}`, { cause: err });
      if (this.etag !== null || this.records.size > 0) this.changedUnseen = true;
      this.records = new Map();
      this.etag = null;
    }
  }

  /**
   * Applies `change` to a copy of the index and writes it conditionally. When another writer got there first
   * (412), reloads and applies the change again; `change` may throw to give up (a conflict it found). One commit
   * at a time in this process.
   */
  private commit(change: (state: { records: Map<string, StoredRecord>; lastId: number }) => void): Promise<void> {
    const run = this.commits.then(async () => {
      for (let attempt = 1; ; attempt += 1) {
        const state = { records: new Map(this.records), lastId: this.lastId };
        change(state);
        const body: IndexObject = { version: 1, lastId: state.lastId, records: [...state.records.values()] };
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

  /** Removes what crashed uploads left: unfinished multipart uploads and blobs no record names, once old enough. */
  private async sweep(): Promise<void> {
    const cutoff = Date.now() - (this.options.leftoverAgeMs ?? LEFTOVER_AGE_MS);
    const named = new Set([...this.records.values()].map((r) => r.blob));
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

function withoutBlob({ blob: _, ...record }: StoredRecord): PackageRecord {
  return record;
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
