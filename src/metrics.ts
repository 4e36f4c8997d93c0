import { ClientAbortError } from './http/upload.js';
import { outcomeOf } from './http/request-log.js';
import { matchedOperationId } from './http/routes.js';
import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PackageKind } from './domain/kinds.js';
import { StorageError, type Storage } from './storage/storage.js';

/**
 * Every metric the server exports, in one registry. Labels are bounded by construction: an operationId of the
 * contract (or `none`), a status code, a package kind, a storage operation, a backend. Never a package name, a
 * path, a token or anything else a client chose.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({ name: 'release_server_http_requests_total', help: 'HTTP requests by operation and status', labelNames: ['operation', 'status'], registers: [this.registry] });
  private readonly duration = new Histogram({
    name: 'release_server_http_request_duration_seconds',
    help: 'Time to the last byte of the response, by operation',
    labelNames: ['operation'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly bytesIn = new Counter({ name: 'release_server_http_request_bytes_total', help: 'Request body bytes (by Content-Length), by operation', labelNames: ['operation'], registers: [this.registry] });
  private readonly bytesOut = new Counter({ name: 'release_server_http_response_bytes_total', help: 'Response body bytes (by Content-Length), by operation', labelNames: ['operation'], registers: [this.registry] });
  private readonly uploads = new Counter({ name: 'release_server_uploads_total', help: 'Packages stored, by kind', labelNames: ['kind'], registers: [this.registry] });
  private readonly downloads = new Counter({ name: 'release_server_downloads_total', help: 'Package downloads counted, by kind', labelNames: ['kind'], registers: [this.registry] });
  private readonly storageDuration = new Histogram({
    name: 'release_server_storage_operation_duration_seconds',
    help: 'Storage operations, by operation and backend',
    labelNames: ['operation', 'backend'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
    registers: [this.registry],
  });
  private readonly storageErrors = new Counter({ name: 'release_server_storage_errors_total', help: 'Failed storage operations, by operation and backend', labelNames: ['operation', 'backend'], registers: [this.registry] });

  /** Where the exported text comes from: this registry, or (in a worker) every worker's, summed. */
  private source: () => Promise<string> = () => this.registry.metrics();

  /** Exports what `text` gives instead of this process's own registry. */
  exportFrom(text: () => Promise<string>): void {
    this.source = text;
  }

  /** The exposition text `/metrics` answers. */
  text(): Promise<string> {
    return this.source();
  }

  constructor(source: { indexSize(): number; refreshLagSeconds(): number }) {
    collectDefaultMetrics({ register: this.registry });
    // Workers of one server each hold the whole index: summed across them, these would count it once per worker.
    new Gauge({ name: 'release_server_index_packages', help: 'Packages in this replica\'s index', aggregator: 'max', registers: [this.registry], collect() { this.set(source.indexSize()); } });
    new Gauge({
      name: 'release_server_index_refresh_lag_seconds',
      help: 'Seconds since this replica last matched its index with the store (0 when it is the only writer)',
      aggregator: 'max',
      registers: [this.registry],
      collect() {
        this.set(source.refreshLagSeconds());
      },
    });
  }

  /** Mirror syncs, read at each scrape: the running (or last) run's progress per source. */
  watchSyncs(statuses: () => readonly { name: string; running: boolean; last: { total: number; done: number; stored: number; unchanged: number; refused: unknown[]; bytes: number } | null }[]): void {
    new Gauge({
      name: 'release_server_sync_entries',
      aggregator: 'max',
      help: 'Entries of the running or last sync of each source: total, done, stored, unchanged, refused',
      labelNames: ['source', 'count'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of statuses()) {
          if (!s.last) continue;
          const { total, done, stored, unchanged, refused } = s.last;
          for (const [count, value] of Object.entries({ total, done, stored, unchanged, refused: refused.length })) this.set({ source: s.name, count }, value);
        }
      },
    });
    new Gauge({
      name: 'release_server_sync_bytes',
      aggregator: 'max',
      help: 'Bytes fetched by the running or last sync of each source',
      labelNames: ['source'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of statuses()) if (s.last) this.set({ source: s.name }, s.last.bytes);
      },
    });
    new Gauge({
      name: 'release_server_sync_running',
      aggregator: 'max',
      help: '1 while a sync of the source runs',
      labelNames: ['source'],
      registers: [this.registry],
      collect() {
        for (const s of statuses()) this.set({ source: s.name }, s.running ? 1 : 0);
      },
    });
  }

  /**
   * Counts each request when its response is done (status `aborted` when the client left first, `failed` when a read
   * error cut the answer short), under the operationId the contract's validator matched, or the one authorization saw
   * (a 401 or 429 never reaches the validator).
   */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const end = this.duration.startTimer();
      res.once('close', () => {
        const operation = matchedOperationId(req) ?? res.locals.operationId ?? 'none';
        end({ operation });
        const outcome = outcomeOf(res);
        this.requests.inc({ operation, status: outcome === 'finished' ? String(res.statusCode) : outcome });
        const sizeIn = Number(req.headers['content-length']);
        if (sizeIn > 0) this.bytesIn.inc({ operation }, sizeIn);
        const sizeOut = Number(res.getHeader('content-length'));
        if (sizeOut > 0) this.bytesOut.inc({ operation }, sizeOut);
      });
      next();
    };
  }

  uploaded(kind: PackageKind): void {
    this.uploads.inc({ kind });
  }

  downloaded(kind: PackageKind): void {
    this.downloads.inc({ kind });
  }

  /** The same storage, with each operation timed and its failures counted. */
  instrument<S extends Storage>(storage: S, backend: string): S {
    const metrics = this;
    // One wrapper per method, made on first use: a download must not allocate a closure to be timed.
    const wrappers = new Map<string, unknown>();
    return new Proxy(storage, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (typeof value !== 'function' || typeof property !== 'string' || property === 'constructor') return value;
        if (!wrappers.has(property)) wrappers.set(property, metrics.timed(target, property, value as (...a: unknown[]) => unknown, backend));
        return wrappers.get(property);
      },
    });
  }

  /** `method`, timed and its failures counted. */
  private timed(target: object, operation: string, method: (...args: unknown[]) => unknown, backend: string): (...args: unknown[]) => unknown {
    // A package that is not there, or a name another replica took, is an answer, not a failure of the store.
    const fail = (err: unknown) => {
      // Nor is an upload its client abandoned.
      if (err instanceof ClientAbortError) return;
      if (!(err instanceof StorageError && (err.code === 'not-found' || err.code === 'conflict'))) this.storageErrors.inc({ operation, backend });
    };
    return (...args) => {
      const end = this.storageDuration.startTimer({ operation, backend });
      try {
        const result = method.apply(target, args);
        if (result instanceof Promise) return result.then((r) => (end(), r), (err) => (end(), fail(err), Promise.reject(err)));
        end();
        return result;
      } catch (err) {
        end();
        fail(err);
        throw err;
      }
    };
  }
}
