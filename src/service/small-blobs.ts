import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import type { PackageRecord } from '../domain/record.js';
import type { ByteRange } from '../storage/storage.js';

/** Packages this small are kept in memory once read: most of what `specify` fetches is a few KiB. */
export const SMALL_BLOB_MAX_BYTES = 64 * 1024;
/** What the cache may hold in all, counted in bytes. */
const SMALL_BLOBS_MAX_TOTAL_BYTES = 8 * 1024 * 1024;

/**
 * The bytes of small packages, by sha256. A blob never changes once written, so a copy kept under its sha256 is never
 * stale: a replaced or removed package is refused by the index before its bytes are looked up. A copy is kept only
 * when its bytes hash to the record's sha256, so a damaged file on disk is never pinned in memory.
 */
export class SmallBlobs {
  private readonly cache = new LRUCache<string, Buffer>({ maxSize: SMALL_BLOBS_MAX_TOTAL_BYTES, sizeCalculation: (bytes) => bytes.length });

  constructor(private readonly read: (record: PackageRecord, range: ByteRange) => Promise<Readable>) {}

  /** All of a small package's bytes, or null when it is not small, or its stored bytes are not what was recorded. */
  async get(record: PackageRecord): Promise<Buffer | null> {
    if (record.size === 0 || record.size > SMALL_BLOB_MAX_BYTES) return null;
    const cached = this.cache.get(record.sha256);
    if (cached) return cached;
    const chunks: Buffer[] = [];
    for await (const chunk of await this.read(record, { start: 0, end: record.size - 1 })) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    if (createHash('sha256').update(bytes).digest('hex') !== record.sha256) return null;
    this.cache.set(record.sha256, bytes);
    return bytes;
  }
}
