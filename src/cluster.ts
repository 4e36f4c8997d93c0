import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import type { Storage } from './storage/storage.js';

/**
 * `workers: N` (or `auto`, one per core): N processes serve the same port over the same store, each as a replica does
 * (its own index, refreshed from the store; writes committed there, create-only). This primary process forks them,
 * replaces one that dies, and relays two things between them:
 * - a change: the worker that wrote it tells the others, which refresh at once (within milliseconds, where replicas
 *   wait for their next refresh); the periodic refresh stays, for a message lost to a worker that was restarting.
 *   The writer does not wait for them: two workers each committing would otherwise wait on the other's lock;
 * - metrics: `/metrics` on any worker answers the sum of all of them (prom-client's AggregatorRegistry).
 * It serves nothing and opens no store itself.
 */

const CHANGED = 'release-server:changed';
const METRICS = 'release-server:metrics';
const METRICS_ANSWER = 'release-server:metrics-answer';
/** A worker says it can answer COLLECT; the primary asks it for its own metrics, which it answers with COLLECTED. */
const READY = 'release-server:ready';
const COLLECT = 'release-server:collect';
const COLLECTED = 'release-server:collected';
/** A worker that has not given its metrics by then is left out of that scrape rather than failing it. */
const COLLECT_TIMEOUT_MS = 2000;

/** A worker that dies is replaced after this long... */
const RESTART_DELAY_MS = 1000;
/** ...unless this many died within CRASH_WINDOW_MS: then the configuration or the store is at fault, not one worker. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;
/** Workers have their own shutdown grace (10 s); past this the primary stops them hard. */
const STOP_GRACE_MS = 15_000;

type Message = { type: string; id?: number; text?: string; error?: string; metrics?: MetricObjectWithValues<MetricValue<string>>[] };

/**
 * Runs the primary: forks `count` workers of `script` (with `env` added to theirs) and looks after them until SIGTERM
 * or SIGINT.
 */
export function runPrimary(count: number, script: string, log: Logger, env: Record<string, string>): void {
  cluster.setupPrimary({ exec: script });
  const crashes: number[] = [];
  // Workers that can answer COLLECT: prom-client's clusterMetrics() asks every connected worker, and one still
  // starting (a replacement) has no listener yet, so the whole scrape waited 5 s and failed.
  const ready = new Set<Worker>();
  const collecting = new Map<number, (message: Message) => void>();
  let lastCollect = 0;
  const collect = (worker: Worker): Promise<Message | null> =>
    new Promise((resolve) => {
      const id = ++lastCollect;
      const done = (answer: Message | null): void => {
        clearTimeout(timer);
        worker.off('exit', exited);
        collecting.delete(id);
        resolve(answer);
      };
      const exited = (): void => done(null);
      const timer = setTimeout(exited, COLLECT_TIMEOUT_MS);
      worker.once('exit', exited);
      collecting.set(id, done);
      worker.send({ type: COLLECT, id });
    });
  let stopping = false;

  const fork = (index: number): void => {
    const worker = cluster.fork({ ...env, RELEASE_SERVER_WORKER: String(index) });
    worker.on('message', (message: Message) => void onMessage(worker, message));
    worker.once('exit', (code, signal) => {
      ready.delete(worker);
      if (stopping) return;
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
      if (crashes.length >= MAX_CRASHES) {
        log.fatal({ worker: index, code, signal, crashes: crashes.length }, `workers keep dying (${crashes.length} in a minute); stopping`);
        stop(1);
        return;
      }
      log.error({ worker: index, code, signal }, `worker ${index} exited; starting another`);
      // Not once stopping: stop() waits only for the workers it found, and a worker forked after it would serve on.
      setTimeout(() => {
        if (!stopping) fork(index);
      }, RESTART_DELAY_MS).unref();
    });
  };

  const onMessage = async (worker: Worker, message: Message): Promise<void> => {
    if (message?.type === CHANGED) {
      for (const other of Object.values(cluster.workers ?? {})) if (other && other !== worker && other.isConnected()) other.send({ type: CHANGED });
    } else if (message?.type === READY) {
      ready.add(worker);
    } else if (message?.type === COLLECTED && typeof message.id === 'number') {
      collecting.get(message.id)?.(message);
    } else if (message?.type === METRICS && typeof message.id === 'number') {
      try {
        const answers = await Promise.all([...ready].filter((w) => w.isConnected()).map(collect));
        const text = await AggregatorRegistry.aggregate(answers.flatMap((a) => (a?.metrics ? [a.metrics] : []))).metrics();
        worker.send({ type: METRICS_ANSWER, id: message.id, text });
      } catch (err) {
        worker.send({ type: METRICS_ANSWER, id: message.id, error: (err as Error).message });
      }
    }
  };

  const stop = (code: number): void => {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    if (workers.length === 0) process.exit(code);
    let left = workers.length;
    for (const worker of workers) {
      worker.once('exit', () => {
        left -= 1;
        if (left === 0) {
          log.info('stopped');
          process.exit(code);
        }
      });
      worker.process.kill('SIGTERM');
    }
    setTimeout(() => {
      log.warn({ graceMs: STOP_GRACE_MS }, 'workers still running after the grace period; stopping them');
      for (const worker of workers) worker.process.kill('SIGKILL');
    }, STOP_GRACE_MS).unref();
  };

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info({ signal, workers: count }, 'shutting down: stopping the workers');
      stop(0);
    });
  }
  // SIGHUP asks for the tokens file to be read again (src/auth/tokens.ts), which each worker does: Node's default for
  // it would end this process, and with it every worker.
  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  });
  log.info({ workers: count }, `starting ${count} worker processes`);
  for (let i = 1; i <= count; i++) fork(i);
}

/** In a worker process: its number (1…N), or null when the server runs as one process. */
export function workerNumber(): number | null {
  return cluster.isWorker ? Number(process.env.RELEASE_SERVER_WORKER) || null : null;
}

/** A worker's side of what the primary relays. */
export class WorkerLink {
  private lastId = 0;
  private readonly pending = new Map<number, (message: Message) => void>();

  constructor(registry: Registry, refresh: () => Promise<void>, private readonly log: Logger) {
    process.on('message', (message: Message) => {
      if (message?.type === COLLECT && typeof message.id === 'number') {
        // This worker's own metrics, for the primary to sum with the other workers'.
        const id = message.id;
        registry.getMetricsAsJSON().then(
          (metrics) => process.send?.({ type: COLLECTED, id, metrics }),
          (err) => this.log.warn({ err }, 'could not collect this worker\'s metrics'),
        );
      } else if (message?.type === CHANGED) {
        refresh().catch((err) => this.log.warn({ err }, 'could not take in another worker\'s change; the periodic refresh will'));
      } else if (message?.type === METRICS_ANSWER && typeof message.id === 'number') {
        this.pending.get(message.id)?.(message);
      }
    });
    process.send?.({ type: READY });
  }

  /** Tells the other workers that the store changed. */
  changed(): void {
    process.send?.({ type: CHANGED });
  }

  /** Every worker's metrics, summed, in the Prometheus text format. */
  async metrics(): Promise<string> {
    const answer = await this.ask({ type: METRICS }, 10_000);
    if (!answer) throw new Error('the primary did not answer with the workers\' metrics');
    if (answer.error !== undefined) throw new Error(`the workers' metrics: ${answer.error}`);
    return answer.text ?? '';
  }

  private ask(message: Message, timeoutMs: number): Promise<Message | null> {
    const id = ++this.lastId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, timeoutMs);
      this.pending.set(id, (answer) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(answer);
      });
      process.send?.({ ...message, id });
    });
  }
}

/** What changes the store, of a Storage: each of these, once it succeeded, is announced to the other workers. */
const WRITES = ['publish', 'publishBatch', 'addDownloads', 'setApproval', 'remove'] as const satisfies readonly (keyof Storage)[];

/** The same storage, calling `changed` after each write that succeeded. Every method runs on `storage` itself. */
export function announcingWrites<S extends Storage>(storage: S, changed: () => void): S {
  const writes = new Set<PropertyKey>(WRITES);
  const methods = new Map<PropertyKey, unknown>();
  return new Proxy(storage, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (!methods.has(property)) {
        const method = value as (...args: unknown[]) => unknown;
        methods.set(
          property,
          writes.has(property)
            ? async (...args: unknown[]) => {
                const result = await method.apply(target, args);
                changed();
                return result;
              }
            : method.bind(target),
        );
      }
      return methods.get(property);
    },
  });
}
