import { availableParallelism } from 'node:os';
import type { Piscina } from 'piscina';
import type { Verdict } from './vet.js';

export interface VettingPoolOptions {
  /** How long one upload's vetting may take, waiting for a thread included. */
  timeoutMs?: number;
  /** Heap of one worker thread, in MiB. */
  memoryMb?: number;
  maxThreads?: number;
  /** The worker module; vetting's own (worker.js beside this file) unless a test swaps it. */
  filename?: string;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MEMORY_MB = 256;

/**
 * Vetting runs here, in a small pool of worker threads, never on the event loop: a hostile archive or manifest
 * can cost a worker its time or memory budget, and then only that worker dies (piscina starts another); requests
 * keep being answered meanwhile. Each task has a deadline: past it the worker running it is terminated and the
 * upload refused as too slow to check. A worker that runs out of heap dies the same way.
 */
export class VettingPool {
  /** Made at the first upload: piscina is not loaded at start-up (its threads start on demand in any case). */
  private pool: Promise<Piscina<{ path: string }, Verdict>> | null = null;
  private readonly options: ConstructorParameters<typeof Piscina<{ path: string }, Verdict>>[0];
  private readonly timeoutMs: number;
  private readonly threads: number;
  /** Tasks handed to piscina (at most one per thread), and uploads waiting for a thread. */
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(options: VettingPoolOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const memoryMb = options.memoryMb ?? DEFAULT_MEMORY_MB;
    // One core is left to the event loop: two threads at most, one on a small machine.
    this.threads = options.maxThreads ?? Math.max(1, Math.min(2, availableParallelism() - 1));
    this.options = {
      filename: options.filename ?? new URL('./worker.js', import.meta.url).href,
      maxThreads: this.threads,
      minThreads: 0,
      idleTimeout: 30_000,
      // Below the event loop's priority (Linux nice is per thread), so that on a busy machine requests get the CPU
      // first; piscina applies it through the optional @napi-rs/nice, and skips it where that is missing.
      niceIncrement: 10,
      // Tasks await streams: a worker that blocked on Atomics between tasks would stall their clean-up.
      atomics: 'disabled',
      // A small young generation: vetting streams 64 KiB chunks, and a large one lets tens of MiB of them pile up between scavenges.
      resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: 8, stackSizeMb: 4 },
    };
  }

  /**
   * Vets the zip archive in the local file at `path`; a verdict, also when the check ran out of time or memory.
   * Uploads wait here for a free thread, so that the time budget counts vetting only, not a queue behind others.
   */
  async vet(path: string): Promise<Verdict> {
    await this.acquire();
    try {
      this.pool ??= import('piscina').then(({ Piscina }) => new Piscina(this.options));
      return await (await this.pool).run({ path }, { signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.name === 'AbortError' || e.message === 'The task has been aborted') {
        return { accepted: false, violations: [{ path: '(archive)', message: `the archive took too long to check (more than ${this.timeoutMs / 1000} s)` }] };
      }
      if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        return { accepted: false, violations: [{ path: '(archive)', message: 'the archive took too much memory to check' }] };
      }
      throw err;
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.running < this.threads) {
      this.running += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Hands the thread to the next upload waiting, if any. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running -= 1;
  }

  async close(): Promise<void> {
    if (this.pool) await (await this.pool).destroy();
  }
}
