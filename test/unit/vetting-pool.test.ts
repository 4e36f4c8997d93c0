import { afterAll, describe, expect, it } from 'vitest';
import { VettingPool } from '../../src/vetting/pool.js';

const stub = new URL('../helpers/stub-vetting-worker.mjs', import.meta.url).href;
const pool = new VettingPool({ filename: stub, timeoutMs: 1_000, memoryMb: 32, maxThreads: 1 });
afterAll(() => pool.close());

describe('the vetting pool: a time and a memory budget per upload, and a worker that dies is replaced', () => {
  it('answers with the worker\'s verdict', async () => {
    expect(await pool.vet('fine')).toMatchObject({ accepted: true, kind: 'template' });
  });

  it('a task past its time budget: its worker is terminated, the upload refused, and the next task still runs', async () => {
    const started = Date.now();
    expect(await pool.vet('spin')).toEqual({ accepted: false, violations: [{ path: '(archive)', message: expect.stringContaining('took too long to check') }] });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await pool.vet('fine')).toMatchObject({ accepted: true });
  });

  it('a task past its memory budget: refused, and the next task still runs', async () => {
    expect(await pool.vet('hog')).toEqual({ accepted: false, violations: [{ path: '(archive)', message: 'the archive took too much memory to check' }] });
    expect(await pool.vet('fine')).toMatchObject({ accepted: true });
  });

  it('the time budget counts vetting only: uploads queued behind a slow one get their own', async () => {
    // One thread: the second task waits ~1 s for it, then runs within its own budget.
    const [slow, queued] = await Promise.all([pool.vet('spin'), pool.vet('fine')]);
    expect(slow).toMatchObject({ accepted: false });
    expect(queued).toMatchObject({ accepted: true });
  });

  it('a bug in vetting is an error (a 500), not a verdict', async () => {
    await expect(pool.vet('throw')).rejects.toThrow('a bug in vetting');
  });
});
