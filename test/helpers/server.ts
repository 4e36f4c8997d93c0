import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
export const TOKEN = 'contract-test-token-0123456789';

export interface LogLine {
  level: string;
  message: string;
  timestamp: string;
  module: string;
  [key: string]: unknown;
}

export interface RunningServer {
  url: string;
  storagePath: string;
  process: ChildProcess;
  /** Every stdout line so far, raw. */
  stdout: string[];
  stderr: string[];
  logs(): LogLine[];
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Reuse a storage directory (a restart); a fresh temporary one otherwise. */
  storagePath?: string;
  /** Wait for /readyz (default) or only for the listening line. */
  waitReady?: boolean;
  /** Another way to start the server (e.g. as another user, from another copy of the app), and where. */
  command?: string[];
  cwd?: string;
}

/** Starts the production entry point (`node dist/main.js`) on a free loopback port, as an operator would. */
export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const storagePath = options.storagePath ?? (await mkdtemp(join(tmpdir(), 'rs-data-')));
  const [program, ...args] = options.command ?? [process.execPath, MAIN];
  const child = spawn(program!, args, {
    cwd: options.cwd,
    env: {
      PATH: process.env.PATH ?? '',
      CONFIG_PATH: join(storagePath, '..', 'no-such-config.yaml'),
      HOST: '127.0.0.1',
      PORT: '0',
      STORAGE_PATH: storagePath,
      AUTH_TOKEN: TOKEN,
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const listening = new Promise<number>((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        stdout.push(line);
        try {
          const parsed = JSON.parse(line) as LogLine;
          if (parsed.message.startsWith('listening on ')) resolve(Number(parsed.port));
        } catch {
          // asserted by the log tests
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
    void exited.then((code) => reject(new Error(`server exited (${code}) before listening:\n${stdout.join('\n')}\n${stderr.join('')}`)));
  });
  const port = await listening;
  const url = `http://127.0.0.1:${port}`;
  if (options.waitReady !== false) await waitForReady(url);
  const server: RunningServer = {
    url,
    storagePath,
    process: child,
    stdout,
    stderr,
    exited,
    logs: () => stdout.map((line) => JSON.parse(line) as LogLine),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  return server;
}

export async function waitForReady(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${url}/readyz`).catch(() => null);
    if (res?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs the server expecting it to refuse to start; returns its exit code and output. */
export async function runToExit(env: Record<string, string>, timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}
