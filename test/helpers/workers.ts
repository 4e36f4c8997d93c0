import { readFile } from 'node:fs/promises';
import { get } from 'node:http';
import { expect } from 'vitest';
import { templateZip } from './packages.js';
import { TOKEN, type RunningServer } from './server.js';
import { eventually } from './storage-dir.js';
import { upload } from './upload.js';

/** Far less than the refresh interval the tests set: only the workers' messages can explain a change seen this soon. */
const WITHIN_MS = 1000;

/** A GET on a connection of its own: the kernel hands each new connection to one of the workers in turn. */
export function freshGet(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    request.once('timeout', () => request.destroy(new Error(`GET ${url}: no answer in 5 s`)));
    request.once('error', reject);
  });
}

/** Resolves once `count` workers listen (each only once its index is loaded). */
export async function workersListening(server: RunningServer, count = 2): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (server.logs().filter((l) => l.message.startsWith('listening on ')).length < count) {
    if (Date.now() > deadline) throw new Error(`${count} workers were not listening after 20 s`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Which workers wrote request lines for `path`. */
export function workersThatServed(server: RunningServer, path: string): Set<unknown> {
  return new Set(server.logs().filter((l) => l.module === 'http' && (l.req as { path?: string } | undefined)?.path === path).map((l) => l.worker));
}

/**
 * The behaviour every backend must keep with `WORKERS=2` and a refresh interval far longer than the test: a change
 * written through one worker is served by every worker at once (they tell each other), and a removal too.
 */
export async function expectChangesSeenByEveryWorker(server: RunningServer): Promise<void> {
  const name = 'spec-kit-template-claude-sh-v3.0.0.zip';
  // Make sure both workers hold the (empty) index and will answer 404 first.
  for (let i = 0; i < 8; i++) expect(await freshGet(`${server.url}/assets/${name}`)).toBe(404);
  expect(workersThatServed(server, `/assets/${name}`)).toEqual(new Set([1, 2]));
  expect((await upload(server.url, name, await templateZip('through one worker'))).status).toBe(201);
  await eventually(async () => {
    const statuses = await Promise.all(Array.from({ length: 8 }, () => freshGet(`${server.url}/assets/${name}`)));
    expect(statuses).toEqual(Array(8).fill(200));
  }, WITHIN_MS);
  expect((await fetch(`${server.url}/assets/${name}`, { method: 'DELETE', headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(204);
  await eventually(async () => {
    const statuses = await Promise.all(Array.from({ length: 8 }, () => freshGet(`${server.url}/assets/${name}`)));
    expect(statuses).toEqual(Array(8).fill(404));
  }, WITHIN_MS);
}

/** The pids of a process's children (its workers), from /proc. */
export async function childPids(pid: number): Promise<number[]> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return children.trim().split(/\s+/).filter(Boolean).map(Number);
}
