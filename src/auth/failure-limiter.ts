const WINDOW_MS = 60_000;
const MAX_ADDRESSES = 10_000;

interface Window {
  start: number;
  failures: number;
  warned: boolean;
}

/**
 * Failed authentications per client address, in one-minute windows. After `perMinute` failures, the next attempt
 * (with any credential) waits out the window. The addresses held are bounded: the least recently failing are forgotten first.
 */
export class FailureLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly perMinute: number,
    private readonly onBlocked: (address: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds the address must wait, or 0. */
  retryAfter(address: string): number {
    if (this.perMinute === 0) return 0;
    const window = this.windows.get(address);
    if (!window) return 0;
    const left = window.start + WINDOW_MS - this.now();
    if (left <= 0) {
      this.windows.delete(address);
      return 0;
    }
    return window.failures >= this.perMinute ? Math.ceil(left / 1000) : 0;
  }

  fail(address: string): void {
    if (this.perMinute === 0) return;
    const now = this.now();
    let window = this.windows.get(address);
    if (!window || window.start + WINDOW_MS <= now) window = { start: now, failures: 0, warned: false };
    window.failures += 1;
    this.windows.delete(address); // re-inserted last: Map order is the eviction order
    this.windows.set(address, window);
    if (window.failures >= this.perMinute && !window.warned) {
      window.warned = true;
      this.onBlocked(address);
    }
    if (this.windows.size > MAX_ADDRESSES) this.windows.delete(this.windows.keys().next().value!);
  }
}
