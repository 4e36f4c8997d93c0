import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Options as HttpLoggerOptions } from 'pino-http';
import type { LogLevel } from './config.js';

/**
 * The root logger: one JSON object per line with `level` (upper-case label), `message`, `timestamp` (ISO 8601)
 * and, on every child, `module`. Credentials never reach it: request lines carry only the fields picked below.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      messageKey: 'message',
      errorKey: 'error',
      timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label.toUpperCase() }) },
      // Belt and braces: no code logs a header or a token value (audit lines carry a token's name only).
      redact: { paths: ['authorization', '*.authorization', '*.headers.authorization'], censor: '[redacted]' },
    },
    destination,
  );
}

/** pino-http settings: one line per request with method, path, status, duration (ms) and bytes. */
export function httpLoggerOptions(logger: Logger): HttpLoggerOptions {
  return {
    logger: logger.child({ module: 'http' }),
    customAttributeKeys: { responseTime: 'duration' },
    // 503 is the readiness probe's "not yet" (or storage gone, which the probe reports): a warning, not a failure of ours.
    // A request its client abandoned is neither a success nor our failure: a warning, said as such.
    customLogLevel: (_req, res, err) =>
      !res.writableFinished ? 'warn' : (err || res.statusCode >= 500) && res.statusCode !== 503 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info',
    customSuccessMessage: (req, res) => `${req.method} ${pathOf(req)} ${res.writableFinished ? res.statusCode : 'aborted by the client'}`,
    customErrorMessage: (req, res) => `${req.method} ${pathOf(req)} ${res.statusCode}`,
    customSuccessObject: (_req, res, value: object) => ({ ...value, bytes: bytesSent(res), ...(res.writableFinished ? {} : { aborted: true }) }),
    customErrorObject: (_req, res, _err, value: object) => ({ ...value, bytes: bytesSent(res) }),
    serializers: {
      req: (req: { id: unknown; method: string; url: string; remoteAddress?: string }) => ({
        id: req.id,
        method: req.method,
        path: req.url.split('?')[0],
        remoteAddress: req.remoteAddress,
      }),
      res: (res: { statusCode: number }) => ({ status: res.statusCode }),
    },
  };
}

function pathOf(req: IncomingMessage & { originalUrl?: string }): string {
  return (req.originalUrl ?? req.url ?? '').split('?')[0] ?? '';
}

function bytesSent(res: ServerResponse): number {
  if (res.req.method === 'HEAD') return 0;
  return Number(res.getHeader('content-length')) || 0;
}
