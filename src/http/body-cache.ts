import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Response } from 'express';
import { notModified } from './conditional.js';

const MAX_ENTRIES = 64;
/** Download counts may lag this long behind in a cached body; everything else is current. */
const COUNTS_MAX_AGE_MS = 1000;
/** Below this, gzip saves less than its headers cost. */
const GZIP_MIN_BYTES = 1024;

interface Entry {
  revision: number;
  countsRevision: number;
  builtAt: number;
  type: string;
  bytes: Buffer;
  /** The same bytes gzipped, made on the first request that accepts gzip. */
  gzipped?: Buffer;
  etag: string;
}

export interface Revisions {
  /** Changes whenever the package set changes. */
  revision: number;
  /** Changes whenever a download is counted. */
  countsRevision: number;
}

/**
 * Response bodies kept until the packages they describe change, so an unchanged /latest or package page is
 * neither rebuilt nor re-serialised per request. A JSON body is first sent with res.json, which the contract's
 * response validation checks; only a body that passed is kept, and later requests get exactly those bytes.
 * Every body carries a strong ETag of its bytes and answers a matching If-None-Match with 304.
 */
export class BodyCache {
  private readonly entries = new Map<string, Entry>();

  sendJson(res: Response, key: string, now: Revisions, build: () => unknown): void {
    if (this.serveHit(res, key, now)) return;
    const body = build();
    const bytes = Buffer.from(JSON.stringify(body));
    const etag = strongEtag(bytes);
    if (notModified(res.req, etag)) {
      res.set('ETag', etag).status(304).end();
      return;
    }
    // Through res.json, which the contract's response validation wraps; Express keeps an ETag already set.
    res.set('ETag', etag);
    res.json(body);
    // Validation failed if the error handler answered instead (synchronously, inside res.json).
    this.keep(res, key, now, 'application/json; charset=utf-8', bytes, etag);
  }

  sendHtml(res: Response, key: string, now: Revisions, render: () => string): void {
    if (this.serveHit(res, key, now)) return;
    const bytes = Buffer.from(render());
    const etag = strongEtag(bytes);
    res.set('ETag', etag).type('text/html').send(bytes);
    this.keep(res, key, now, 'text/html; charset=utf-8', bytes, etag);
  }

  private serveHit(res: Response, key: string, now: Revisions): boolean {
    const hit = this.entries.get(key);
    if (!hit || hit.revision !== now.revision) return false;
    if (hit.countsRevision !== now.countsRevision && Date.now() - hit.builtAt >= COUNTS_MAX_AGE_MS) return false;
    sendFixed(res, hit);
    return true;
  }

  private keep(res: Response, key: string, now: Revisions, type: string, bytes: Buffer, etag: string): void {
    if (res.statusCode !== 200) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { revision: now.revision, countsRevision: now.countsRevision, builtAt: Date.now(), type, bytes, etag });
  }
}

/** A body that never changes while the process runs (the API docs, the pages' script and style sheet). */
export interface FixedBody {
  type: string;
  bytes: Buffer;
  etag: string;
  /** The same bytes gzipped, made on the first request that accepts gzip. */
  gzipped?: Buffer;
}

export function fixedBody(type: string, bytes: Buffer): FixedBody {
  return { type, bytes, etag: strongEtag(bytes) };
}

/**
 * Sends a body whose bytes and ETag are known: 304 for a matching If-None-Match, else the bytes, gzipped (once, then
 * kept) for a client that takes gzip. /latest with a thousand packages is ~450 KiB of JSON and ~10× smaller gzipped.
 */
export function sendFixed(res: Response, body: FixedBody): void {
  res.set('ETag', body.etag).vary('Accept-Encoding');
  if (notModified(res.req, body.etag)) {
    res.status(304).end();
  } else if (body.bytes.length >= GZIP_MIN_BYTES && res.req.acceptsEncodings('gzip', 'identity') === 'gzip') {
    body.gzipped ??= gzipSync(body.bytes);
    res.set('Content-Encoding', 'gzip').type(body.type).send(body.gzipped);
  } else {
    res.type(body.type).send(body.bytes);
  }
}

/** A strong validator of exactly these bytes: equal bytes give equal tags, on every replica. */
function strongEtag(bytes: Buffer): string {
  return `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 32)}"`;
}
