import { describe, expect, it } from 'vitest';
import { FailureLimiter } from '../../src/auth/failure-limiter.js';

describe('FailureLimiter', () => {
  it('blocks the attempt after the limit of failures, for the rest of its minute, then forgives it', () => {
    let now = 1_000_000;
    const warned: string[] = [];
    const limiter = new FailureLimiter(3, (a) => warned.push(a), () => now);
    for (let i = 0; i < 2; i++) limiter.fail('a');
    expect(limiter.retryAfter('a')).toBe(0);
    limiter.fail('a');
    expect(limiter.retryAfter('a')).toBe(60);
    limiter.fail('a');
    expect(warned).toEqual(['a']);
    expect(limiter.retryAfter('b')).toBe(0);
    now += 45_000;
    expect(limiter.retryAfter('a')).toBe(15);
    now += 15_000;
    expect(limiter.retryAfter('a')).toBe(0);
    limiter.fail('a');
    expect(limiter.retryAfter('a')).toBe(0);
  });

  it('is off at 0', () => {
    const limiter = new FailureLimiter(0, () => undefined);
    for (let i = 0; i < 100; i++) limiter.fail('a');
    expect(limiter.retryAfter('a')).toBe(0);
  });

  it('holds a bounded number of addresses', () => {
    const limiter = new FailureLimiter(2, () => undefined);
    for (let i = 0; i < 20_000; i++) limiter.fail(`10.0.${i >> 8}.${i & 255}`);
    limiter.fail('10.0.0.0'); // the oldest was forgotten: this is its first failure again
    expect(limiter.retryAfter('10.0.0.0')).toBe(0);
    limiter.fail('10.0.78.31');
    expect(limiter.retryAfter('10.0.78.31')).toBeGreaterThan(0);
  });
});
