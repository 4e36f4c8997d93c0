import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

/** Log lines waiting for stdout, at most. */
const LOG_BUFFER_MAX_BYTES = 8 * 1024 * 1024;

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
    // Written asynchronously, off the request's path; pino flushes what is buffered when the process exits. What
    // stdout has not taken yet waits in memory: bounded, so that a log collector that stops reading costs lines past
    // the bound, not memory without end (the server would grow by every request's line until it ran out).
    destination ?? pino.destination({ dest: 1, sync: false, maxLength: LOG_BUFFER_MAX_BYTES }),
  );
}
