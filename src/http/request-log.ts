import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { requestPath } from './routes.js';

declare module 'node:http' {
  interface ServerResponse {
    /** Why a response failed (a 5xx, a read error mid-stream): its request line carries it. */
    err?: Error;
  }
}

/**
 * How a response ended, read when it closes: sent whole; cut short by our side (a read error mid-download, after the
 * status line went), which carries its error; or abandoned by the client. One reading for the log and the metrics.
 */
export function outcomeOf(res: Response): 'finished' | 'failed' | 'aborted' {
  return res.writableFinished ? 'finished' : res.err !== undefined ? 'failed' : 'aborted';
}

/**
 * One line per request when its response is done: method, path (never the query, which may carry a token), status,
 * duration (ms) and bytes. Written by hand rather than with pino-http: that made a child logger and ran its
 * serializers for every request, a seventh of a small request's time in the profile.
 */
export function requestLog(logger: Logger): RequestHandler {
  const log = logger.child({ module: 'http' });
  let lastId = 0;
  return (req, res, next) => {
    const id = ++lastId;
    const started = performance.now();
    res.once('close', () => {
      const outcome = outcomeOf(res);
      const finished = outcome === 'finished';
      const failed = outcome === 'failed';
      const status = res.statusCode;
      // 503 is the readiness probe's "not yet" (or storage gone, which the probe reports): a warning, not a failure of
      // ours. A request its client abandoned is neither a success nor our failure: a warning, said as such.
      const level = failed ? 'error' : !finished ? 'warn' : status >= 500 && status !== 503 ? 'error' : status >= 400 ? 'warn' : 'info';
      if (!log.isLevelEnabled(level)) return;
      const path = pathOf(req);
      log[level](
        {
          req: { id, method: req.method, path, remoteAddress: req.socket.remoteAddress },
          res: { status },
          duration: Math.round(performance.now() - started),
          bytes: bytesSent(req, res),
          ...(finished ? {} : failed ? { failed: true } : { aborted: true }),
          ...(res.err ? { error: res.err } : {}),
        },
        `${req.method} ${path} ${finished ? status : failed ? `${status} cut short: ${res.err!.message}` : 'aborted by the client'}`,
      );
    });
    next();
  };
}

function pathOf(req: Request): string {
  const path = requestPath(req);
  // A request target in absolute form may carry user:password@ (a token as password): never logged.
  return path.charCodeAt(0) === 0x2f ? path : path.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/]*@/, '$1');
}

function bytesSent(req: Request, res: Response): number {
  if (req.method === 'HEAD') return 0;
  return Number(res.getHeader('content-length')) || 0;
}
