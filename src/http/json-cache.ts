import { gzipSync } from 'node:zlib';
import type { Response } from 'express';
import { notModified } from './conditional.js';

const MAX_ENTRIES = 64;
/** Download counts may lag this long behind in a cached body; everything else is current. */
const COUNTS_MAX_AGE_MS = 1000;

interface Entry {
  revision: number;
  countsRevision: number;
  builtAt: number;
  bytes: Buffer;
  /** The same bytes gzipped, made on the first request that accepts gzip. */
  gzipped?: Buffer;
  etag: string;
}

/** Below this, gzip saves less than its headers cost. */
const GZIP_MIN_BYTES = 1024;

export interface Revisions {
  /** Changes whenever the package set changes. */
  revision: number;
  /** Changes whenever a download is counted. */
  countsRevision: number;
}

/**
 * Serialised JSON bodies kept until the packages they describe change, so an unchanged /latest is neither
 * rebuilt nor re-serialised per request. Each body is first sent with res.json, which the contract's response
 * validation checks; only a body that passed is kept, and later requests get exactly those bytes.
 */
export class JsonBodyCache {
  private readonly entries = new Map<string, Entry>();

  send(res: Response, key: string, now: Revisions, build: () => unknown): void {
    const hit = this.entries.get(key);
    if (hit && hit.revision === now.revision && (hit.countsRevision === now.countsRevision || Date.now() - hit.builtAt < COUNTS_MAX_AGE_MS)) {
      res.set('ETag', hit.etag).vary('Accept-Encoding');
      if (notModified(res.req, hit.etag)) {
        res.status(304).end();
      } else if (hit.bytes.length >= GZIP_MIN_BYTES && res.req.acceptsEncodings('gzip', 'identity') === 'gzip') {
        // /latest with a thousand packages is ~450 KiB of JSON and ~10× smaller gzipped; compressed once, not per request.
        hit.gzipped ??= gzipSync(hit.bytes);
        res.set('Content-Encoding', 'gzip').type('application/json; charset=utf-8').send(hit.gzipped);
      } else {
        res.type('application/json; charset=utf-8').send(hit.bytes);
      }
      return;
    }
    const body = build();
    res.json(body);
    // Validation failed if the error handler answered instead (synchronously, inside res.json).
    const etag = res.get('ETag');
    if (res.statusCode !== 200 || !etag) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { ...now, builtAt: Date.now(), bytes: Buffer.from(JSON.stringify(body)), etag });
  }
}
