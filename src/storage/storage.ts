import type { Readable } from 'node:stream';
import type { PackageRecord, StoredRecord } from '../domain/record.js';

export type { PackageRecord, StoredRecord };

/** Bytes written to a private staging area: invisible until published, gone when discarded. */
export interface StagedBlob {
  readonly size: number;
  /** Lower-case hex SHA-256 of the bytes, computed while they streamed in. */
  readonly sha256: string;
  /** Reads staged bytes back (vetting opens the archive before it is published). `end` is inclusive. */
  read(range: ByteRange): Readable;
  /** A local file holding the staged bytes, until published or discarded: vetting (a worker thread) reads it there. */
  readonly localPath: string;
  /** Removes the staged bytes; a no-op once published or discarded. */
  discard(): Promise<void>;
}

/** One package of a `publishBatch`: staged bytes and the record they get. */
export interface BatchItem<R extends StoredRecord = StoredRecord> {
  staged: StagedBlob;
  record: R;
}

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * Where packages live. Bytes travel as streams; metadata is stored apart from them. Implementations make
 * `publish` atomic: readers see the old package or the new one, never a part. Bytes are immutable: an overwrite is
 * new bytes and a new record, and the bytes a record names stay readable through that record while a download that
 * started from it may still need them. Names reaching a storage have been checked with `unsafeNameReason` already.
 */
export interface Storage {
  /**
   * Prepares the store (removing what an interrupted write left in its own staging area) and lists every record.
   * Nothing the server did not store itself is ever adopted. Rejects with StorageError('damaged'), naming the file
   * and how to recover, when the index cannot be trusted; a damaged index is never rewritten.
   */
  open(): Promise<StoredRecord[]>;
  /**
   * Streams `source` into the staging area and makes it durable, at the latest before `publish` stores it (the
   * filesystem's fsync runs while the caller vets the bytes). Rejects, leaving nothing, when `source` fails.
   */
  stage(source: Readable): Promise<StagedBlob>;
  /**
   * Stores staged bytes for `record.name` with their record, replacing what was there, and resolves with the record
   * as stored (with its `blob`). The store decides its identity when it commits, whatever `id` the caller saw: a record
   * that replaces one keeps that one's id, first upload time and download count; one that replaces nothing (the
   * record the caller saw may have been removed since) gets the next id, which no package ever had, across restarts
   * and processes. With `ifAbsent`, rejects with StorageError('conflict') when the name exists in the
   * store, even if another process wrote it a moment ago. With `replaces`, the record of that other name (the same
   * package stored before under another name: version 1.0 published again as 1.0.0) goes in the same commit, and the
   * new record keeps its download count: no moment, and no crash, leaves both. A name absent by then removes nothing.
   */
  publish<R extends StoredRecord>(staged: StagedBlob, record: R, options?: PublishOptions): Promise<R>;
  /**
   * Publishes several staged blobs with their records in one commit: every record becomes visible at once, or none
   * does (a failure, or a crash, before the commit leaves the store as it was; bytes written before it are named by
   * no record and cleaned up as an interrupted publish's are). Ids, counts and replacement work as in `publish`, in
   * the order of `items`; resolves with the records as stored, in that order. With `ifAbsent`, one name that exists
   * fails the whole batch with StorageError('conflict') and changes nothing. Two items naming the same package
   * reject with a TypeError before anything is written. Every staged blob is used up either way (discarding one
   * afterwards is a no-op). An empty batch resolves with [] and writes nothing.
   */
  publishBatch<R extends StoredRecord>(items: readonly BatchItem<R>[], options?: { ifAbsent?: boolean }): Promise<R[]>;
  /**
   * Adds download counts to the stored ones, each to the record with its id, whatever that record is named by then;
   * counts of records that are gone are dropped. A `batch` id that was applied already is not applied again: a flush
   * retried after a failure (or after an answer that was lost) counts once.
   */
  addDownloads(counts: readonly DownloadCount[], batch?: string): Promise<void>;
  /**
   * Opens the bytes `record` names (the whole of them without a range). Rejects with StorageError('not-found') when
   * they are gone (the record was replaced or removed, and no download holds them any more).
   */
  read(record: StoredRecord, range?: ByteRange): Promise<Readable>;
  /**
   * Sets what a record says about its package beyond its bytes (today: its approval), in one commit, and resolves
   * with the record as stored. The bytes, name, id and sha256 never change this way. Rejects with
   * StorageError('not-found') when absent.
   */
  setApproval(name: string, approval: NonNullable<PackageRecord['approval']>, options?: WriteOptions): Promise<StoredRecord>;
  /** Removes a package's record; its bytes go once nothing refers to them. Rejects with StorageError('not-found') when absent. */
  remove(name: string, options?: WriteOptions): Promise<void>;
  /**
   * What other processes changed in the store since the last call, else null. Cheap when nothing changed: one
   * conditional request at most.
   */
  refresh(): Promise<ForeignChanges | null>;
  /** Resolves when the store can be read and written; rejects saying why not. */
  check(): Promise<void>;
  /** A URL that serves the record's bytes straight from the store for a while, where the store can make one. */
  presignedUrl?(record: StoredRecord, expiresInSeconds: number): Promise<string>;
}

/**
 * Downloads of one record, counted by its id: a record keeps its id when it is replaced, and when it is stored again
 * under another name (1.0 as 1.0.0), so counts made under the old name go on under the new one, in any process.
 * `name` is the name it had when counted.
 */
export interface DownloadCount {
  id: number;
  name: string;
  count: number;
}

export interface PublishOptions extends WriteOptions {
  ifAbsent?: boolean;
  replaces?: string;
}

export interface WriteOptions {
  /**
   * The caller decided on what refresh() last handed it (holds, pins, versions: rules the store does not know), so
   * the write must not land after another process's change to the records that this process has not taken in
   * yet: it then rejects with StorageError('stale') and stores nothing. A staged blob stays usable: refresh, decide
   * again, and publish it. Whichever of two conflicting writes commits second sees the first this way. A function
   * says which changed records matter (a removed one as it was); the others' changes to the rest do not count.
   */
  current?: boolean | ((changed: StoredRecord) => boolean);
}

/**
 * `full`: the store has no space left (ENOSPC, EDQUOT); `damaged`: the index cannot be trusted and start-up must
 * stop (the message names the file and the way to recover); `stale`: see WriteOptions.current.
 */
export type StorageErrorCode = 'not-found' | 'unavailable' | 'conflict' | 'full' | 'damaged' | 'stale';

export class StorageError extends Error {
  constructor(readonly code: StorageErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StorageError';
  }
}

/** True for "no space left" and "quota exceeded", whoever threw it. */
export function isDiskFull(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth += 1) {
    if (e instanceof StorageError && e.code === 'full') return true;
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return true;
  }
  return false;
}

/** The same error, as StorageError('full') when it says the disk is full. */
export function asFull(err: unknown, what: string): unknown {
  if (err instanceof StorageError || !isDiskFull(err)) return err;
  return new StorageError('full', `no space left for ${what}`, { cause: err });
}

/**
 * Why a batch cannot be published at all (a staged blob not this store's or used up already, a name twice), or null.
 */
export function batchProblem(items: readonly BatchItem[], usable: (staged: StagedBlob) => boolean): string | null {
  const names = new Set<string>();
  for (const { staged, record } of items) {
    if (!usable(staged)) return `the blob staged for ${record.name} was not staged by this storage, or was published or discarded already`;
    if (names.has(record.name)) return `the batch names ${record.name} twice`;
    names.add(record.name);
  }
  return null;
}

/**
 * Other processes' changes, as refresh() hands them on: the records they put (whole, as stored now) and the names they
 * removed; or, after this process had to reload the index from a checkpoint, every record (`whole`).
 */
export type ForeignChanges = { whole: true; records: StoredRecord[] } | { whole: false; records: StoredRecord[]; removed: string[] };
