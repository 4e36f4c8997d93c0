import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { Agent, get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

// A log collector that stops reading (a stuck sidecar, a full disk behind a pipe): the request lines are written
// asynchronously, so whatever stdout does not take waits in memory. It must wait in a bounded buffer, not pile up.
it('keeps what waits for a stdout nobody reads bounded: past the bound, request lines are dropped, not held', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rs-log-'));
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', STORAGE_PATH: dir, CONFIG_PATH: join(dir, 'none.yaml'), HOST: '127.0.0.1', PORT: '0', AUTH_TOKEN: 'log-test-token-0123456789' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let text = '';
      const onData = (chunk: Buffer) => {
        text += chunk.toString('utf8');
        const port = /"port":(\d+)/.exec(text)?.[1];
        if (port) {
          child.stdout!.off('data', onData);
          child.stdout!.pause();
          resolve(Number(port));
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`server exited (${code})`)));
    });
    // ~20 MB of request lines (each 404 carries its long path twice) while nobody reads stdout.
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const path = `/assets/${'x'.repeat(400)}.zip`;
    const once = () =>
      new Promise<void>((resolve, reject) => get({ host: '127.0.0.1', port, path, agent }, (res) => res.resume().once('end', resolve)).once('error', reject));
    for (let sent = 0; sent < 20_000; sent += 200) await Promise.all(Array.from({ length: 200 }, once));
    agent.destroy();
    // Now read everything that was kept, until the server stops.
    let kept = 0;
    child.stdout!.on('data', (chunk: Buffer) => (kept += chunk.length));
    child.stdout!.resume();
    await new Promise((r) => setTimeout(r, 1000));
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    expect(kept).toBeGreaterThan(1024 * 1024);
    expect(kept).toBeLessThan(12 * 1024 * 1024);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}, 120_000);
