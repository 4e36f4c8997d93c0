import type { Request } from 'express';

/**
 * RFC 9110 section 13.2.2, as the origin: If-None-Match (weak comparison) decides when present, else
 * If-Modified-Since. Express's req.fresh would not do: it is a cache's rule and says "stale" whenever the
 * request carries Cache-Control: no-cache, as fetch() adds to every conditional request.
 */
export function notModified(req: Pick<Request, 'headers'>, etag: string, lastModified?: string): boolean {
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch) {
    const opaque = (tag: string): string => tag.trim().replace(/^W\//, '');
    return ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => opaque(tag) === opaque(etag));
  }
  const ifModifiedSince = Date.parse(req.headers['if-modified-since'] ?? '');
  if (lastModified === undefined || Number.isNaN(ifModifiedSince)) return false;
  // Last-Modified has whole seconds.
  return Math.floor(Date.parse(lastModified) / 1000) * 1000 <= ifModifiedSince;
}
