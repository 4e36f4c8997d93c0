import type { Request, Response } from 'express';
import { CATALOG_KINDS } from '../domain/kinds.js';
import { contentTypeOf } from '../domain/names.js';
import { BodyCache } from '../http/body-cache.js';
import { notModified } from '../http/conditional.js';
import { HttpProblem } from '../http/problem.js';
import { setPageHeaders } from '../http/security-headers.js';
import { streamTo } from '../http/stream.js';
import type { UploadedFile } from '../http/upload.js';
import { assetUrl, baseUrl } from '../http/urls.js';
import type { Metrics } from '../metrics.js';
import type { PackageService } from '../service/packages.js';
import type { ByteRange } from '../storage/storage.js';
import type { Config } from '../config.js';
import type { WebPages } from '../web/pages.js';
import { toPackage } from './representations.js';
import type { Handler } from './types.js';

export interface PackageHandlerDeps {
  config: Config;
  service: PackageService;
  metrics: Metrics;
  webPages: WebPages;
}

export function packageHandlers({ config, service, metrics, webPages }: PackageHandlerDeps) {
  const bodies = new BodyCache();

  const uploadPackage: Handler<'uploadPackage'> = async (req, res) => {
    const file = (req.files as UploadedFile[] | undefined)?.[0];
    if (!file || file.fieldname !== 'file') throw new HttpProblem(400, 'invalid-request', 'send exactly one file, in the field "file"');
    const { record, created, removed } = await service.publish(file.originalname, file.staged, {
      overwrite: isTrue(req.query.overwrite),
      tag: req.query.tag,
      expectedSha256: req.get('x-checksum-sha256'),
      verified: res.locals.token?.verified ?? false,
      // Templates are never curated: only what a catalog offers waits for approval.
      ...(config.approveUploads ? {} : { approval: { state: 'pending' as const, at: new Date().toISOString(), by: res.locals.token?.name ?? 'unknown' } }),
    });
    const base = baseUrl(req, config.publicUrl);
    metrics.uploaded(record.kind);
    res.locals.audit = { package: record.name, size: record.size, sha256: record.sha256 };
    res.status(created ? 201 : 200).location(assetUrl(base, record.name)).json({ ...toPackage(record, base), removed_by_retention: removed });
  };

  // GET and HEAD share one handler; Node leaves the body out of HEAD responses.
  // Everything the response says (ETag, Content-Length, Last-Modified, Content-Range) and the bytes it sends come
  // from one record, and the bytes are opened through that record before a header is sent: an overwrite racing the
  // download cannot mix two versions, and bytes that are gone answer a clean error instead of a short body.
  const sendAsset = async (req: Request<{ filename: string }>, res: Response): Promise<void> => {
    const opened = await service.openAsset(req.params.filename, async (record) => {
      const etag = `"${record.sha256}"`;
      const lastModified = new Date(record.updatedAt).toUTCString();
      if (notModified(req, etag, record.updatedAt)) return { kind: 'not-modified' as const, etag, lastModified, range: undefined };
      if (config.downloadRedirectSeconds !== null && req.method === 'GET') {
        const url = await service.presignedUrl(record, config.downloadRedirectSeconds);
        if (url) return { kind: 'redirect' as const, url, etag, lastModified, range: undefined };
      }
      const range = requestedRange(req, record.size, etag, lastModified);
      if (req.method === 'HEAD' || record.size === 0) return { kind: 'headers' as const, etag, lastModified, range };
      // Always a range, so storage sizes its buffers to what is read.
      return { kind: 'bytes' as const, etag, lastModified, range, read: range ?? { start: 0, end: record.size - 1 } };
    }, (plan) => (plan.kind === 'bytes' ? plan.read : null));
    const { record, plan, bytes } = opened;
    res.set({ 'Accept-Ranges': 'bytes', ETag: plan.etag, 'Last-Modified': plan.lastModified, 'Cache-Control': 'no-cache' });
    if (plan.kind === 'not-modified') {
      res.status(304).end();
      return;
    }
    if (plan.kind === 'redirect') {
      // As GitHub does for release assets: the bytes come from the store, and every redirect counts as a download.
      service.recordDownload(record);
      metrics.downloaded(record.kind);
      res.set('Cache-Control', 'no-store').redirect(302, plan.url);
      return;
    }
    const { range } = plan;
    res.attachment(record.name).type(contentTypeOf(record.name));
    if (range) res.status(206).set('Content-Range', `bytes ${range.start}-${range.end}/${record.size}`);
    res.set('Content-Length', String(range ? range.end - range.start + 1 : record.size));
    if (!bytes) {
      res.end();
      return;
    }
    if (!range || range.start === 0) {
      service.recordDownload(record);
      metrics.downloaded(record.kind);
    }
    if (Buffer.isBuffer(bytes)) res.end(bytes);
    else await streamTo(bytes, res);
  };

  const deleteAsset: Handler<'deleteAsset'> = async (req, res) => {
    await service.remove(req.params.filename);
    res.status(204).end();
  };

  const listPackages: Handler<'listPackages'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    const kind = req.query.kind;
    // Inside the builders: a cached body must not cost a scan of every package per request.
    const records = () => (kind ? service.list().filter((r) => r.kind === kind) : service.list());
    const format = req.query.format ?? (req.accepts(['text/html', 'application/json']) === 'application/json' ? 'json' : 'html');
    res.vary('Accept');
    if (format === 'json') {
      bodies.sendJson(res, `json ${kind ?? 'all'} ${base}`, service, () => records().map((r) => toPackage(r, base)));
    } else {
      setPageHeaders(res);
      bodies.sendHtml(res, `html ${kind ?? 'all'} ${base}`, service, () =>
        webPages.packagesList(
          {
            releases: kind && kind !== 'template' ? [] : service.releases(),
            untagged: records().filter((r) => r.kind === 'template' && r.tag === null),
            catalogs: CATALOG_KINDS.filter((k) => !kind || k === kind).map((k) => ({ kind: k, packages: service.catalog(k) })),
            kind,
          },
          base,
        ),
      );
    }
  };

  const downloadAsset: Handler<'downloadAsset'> = sendAsset;
  const headAsset: Handler<'headAsset'> = sendAsset;
  return { uploadPackage, downloadAsset, headAsset, deleteAsset, listPackages };
}

/** The single byte range to send, or undefined for the whole file. Unsatisfiable ranges answer 416. */
function requestedRange(req: Request<{ filename: string }>, size: number, etag: string, lastModified: string): ByteRange | undefined {
  if (!req.headers.range) return undefined;
  // If-Range: a client whose copy is outdated gets the whole new file, not a piece of it.
  const ifRange = req.headers['if-range'];
  if (ifRange && ifRange !== etag && ifRange !== lastModified) return undefined;
  // A suffix longer than the file means all of it (RFC 9110 14.1.3), where range-parser says unsatisfiable.
  const suffix = /^bytes=-(\d+)$/.exec(req.headers.range.trim());
  if (suffix && size > 0 && Number(suffix[1]) >= size) return { start: 0, end: size - 1 };
  const ranges = req.range(size, { combine: true });
  if (ranges === -1) {
    throw new HttpProblem(416, 'range-not-satisfiable', `the range lies outside the package's ${size} bytes`, {
      'Content-Range': `bytes */${size}`,
    });
  }
  // Malformed, or several ranges: RFC 9110 lets a server answer those with the whole representation.
  if (ranges === -2 || ranges === undefined || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  return ranges[0];
}

/** The validator checks that `overwrite` is a boolean; Express 5's query getter may still hand it over as text. */
function isTrue(value: unknown): boolean {
  return value === true || value === 'true';
}
