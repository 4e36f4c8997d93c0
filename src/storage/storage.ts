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
  /** Moves staged bytes to `record.name` with their record, replacing what was there. */
  publish(staged: StagedBlob, record: PackageRecord): Promise<void>;
  /** Rewrites a record whose bytes did not change (download counts). */
  saveRecord(record: PackageRecord): Promise<void>;
  /** Opens the bytes of a package (the whole of them without a range); rejects with StorageError('not-found') when they are gone. */
  read(name: string, range?: ByteRange): Promise<Readable>;
  /** Removes a package and its record; rejects with StorageError('not-found') when absent. */
  remove(name: string): Promise<void>;
  /** The next package id. No id a published package ever had is handed out again, across restarts too. */
  nextId(): Promise<number>;
  /** Resolves when the store can be read and written; rejects saying why not. */
  check(): Promise<void>;
}

export type StorageErrorCode = 'not-found' | 'unavailable';

export class StorageError extends Error {
  constructor(readonly code: StorageErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StorageError';
  }
}
