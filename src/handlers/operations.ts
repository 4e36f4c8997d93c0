import type { Response } from 'express';
import { fixedBody, sendFixed } from '../http/body-cache.js';
import { HttpProblem } from '../http/problem.js';
import { setPageHeaders } from '../http/security-headers.js';
import type { Metrics } from '../metrics.js';
import type { PackageService } from '../service/packages.js';
import { FAVICON_SVG } from '../web/favicon.js';
import type { Handler } from './types.js';

/**
 * The Redoc bundle is inlined, but it still points its sidebar logo at a CDN: the policy keeps the browser on
 * this host, so the page works the same with no internet access and tells no one it was read.
 */
const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self' 'unsafe-inline' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface OperationHandlerDeps {
  service: PackageService;
  metrics: Metrics;
  /** The contract's bytes, served as they are. */
  contract: Buffer;
  /** The Redoc page built at build time, or null when it was not built. */
  docsPage: Buffer | null;
}

export function operationHandlers({ service, metrics, contract, docsPage }: OperationHandlerDeps) {
  const getHealth: Handler<'getHealth'> = (_req, res) => {
    res.type('text/plain').send('OK');
  };

  const readiness = async (res: Response): Promise<void> => {
    try {
      await service.checkReady();
    } catch (err) {
      throw new HttpProblem(503, 'unavailable', (err as Error).message);
    }
    res.type('text/plain').send('READY');
  };
  const getReadiness: Handler<'getReadiness'> = (_req, res) => readiness(res);
  // Node leaves the body out of a HEAD answer.
  const headReadiness: Handler<'headReadiness'> = (_req, res) => readiness(res);
  const headHealth: Handler<'headHealth'> = (_req, res) => {
    res.type('text/plain').end();
  };

  const favicon = Buffer.from(FAVICON_SVG);
  const getFavicon: Handler<'getFavicon'> = (_req, res) => {
    res.set('Cache-Control', 'public, max-age=86400').type('image/svg+xml').send(favicon);
  };


  const getOpenApiDocument: Handler<'getOpenApiDocument'> = (_req, res) => {
    res.type('application/yaml').send(contract);
  };

  // 2.6 MB with Redoc inlined and a tenth of that gzipped: compressed once, and revalidated by its ETag.
  const docs = docsPage ? fixedBody('text/html; charset=utf-8', docsPage) : null;
  const getApiDocs: Handler<'getApiDocs'> = (_req, res) => {
    if (!docs) throw new HttpProblem(404, 'not-found', 'the API docs were not built; run `npm run build`');
    setPageHeaders(res, DOCS_CSP);
    sendFixed(res, docs);
  };

  const getMetrics: Handler<'getMetrics'> = async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.text());
  };

  return { getFavicon, getHealth, headHealth, getReadiness, headReadiness, getOpenApiDocument, getApiDocs, getMetrics };
}
