import type { Readable } from 'node:stream';
import type { CatalogMetadata } from '../domain/catalog.js';
import type { PackageKind } from '../domain/kinds.js';

/** What is known of one stored package; persisted beside its bytes. */
export interface PackageRecord {
  /** Stable, never reused. */
  id: number;
  name: string;
  size: number;
  /** Lower-case hex. */
  sha256: string;
  /** ISO 8601: when a package of this name was first stored. */
  createdAt: string;
  /** ISO 8601: when the current bytes were uploaded. */
  updatedAt: string;
  downloadCount: number;
  /** The release it belongs to (`v0.2.0`), or null; always null for catalog packages. */
  tag: string | null;
  /** Decided by the manifest at upload; records stored before kinds existed are templates. */
  kind: PackageKind;
  /** What the catalog shows of an extension, preset or workflow; null for a template. */
  catalog: CatalogMetadata | null;
}

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

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * Where packages live. Bytes travel as streams; metadata is stored apart from them. Implementations make
 * `publish` atomic: readers see the old package or the new one, never a part. Names reaching a storage
 * have been checked with `unsafeNameReason` already.
 */
export interface Storage {
  /** Prepares the store (removing what an interrupted write left), adopts packages that have no record yet, and lists them all. */
  open(): Promise<PackageRecord[]>;
  /** Streams `source` into the staging area and makes it durable. Rejects, leaving nothing, when `source` fails. */
  stage(source: Readable): Promise<StagedBlob>;
  /**
   * Moves staged bytes to `record.name` with their record, replacing what was there, and resolves with the record
   * as stored. A record with id 0 is new and gets the next id, which no package ever had, across restarts and
   * processes. With `ifAbsent`, rejects with StorageError('conflict') when the name exists in the store, even if
   * another process wrote it a moment ago.
   */
  publish(staged: StagedBlob, record: PackageRecord, options?: { ifAbsent?: boolean }): Promise<PackageRecord>;
  /** Adds download counts (by package name) to the stored ones; counts of packages that are gone are dropped. */
  addDownloads(counts: ReadonlyMap<string, number>): Promise<void>;
  /** Opens the bytes of a package (the whole of them without a range); rejects with StorageError('not-found') when they are gone. */
  read(name: string, range?: ByteRange): Promise<Readable>;
  /** Removes a package and its record; rejects with StorageError('not-found') when absent. */
  remove(name: string): Promise<void>;
  /**
   * Every record, when the store changed since the last call (another process wrote to it), else null. Cheap when
   * nothing changed: one conditional request at most.
   */
  refresh(): Promise<PackageRecord[] | null>;
  /** Resolves when the store can be read and written; rejects saying why not. */
  check(): Promise<void>;
  /** A URL that serves the package's bytes straight from the store for a while, where the store can make one. */
  presignedUrl?(name: string, expiresInSeconds: number): Promise<string>;
}

export type StorageErrorCode = 'not-found' | 'unavailable' | 'conflict';

export class StorageError extends Error {
  constructor(readonly code: StorageErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StorageError';
  }
}
