import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { testS3Client } from '../helpers/s3-server.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { eventually } from '../helpers/storage-dir.js';
import { childPids, expectChangesSeenByEveryWorker, freshGet, workersListening, workersThatServed } from '../helpers/workers.js';

const s3 = inject('s3');
const client = testS3Client(s3);

describe('WORKERS=2 on s3', () => {
  let server: RunningServer;
  beforeAll(async () => {
    const bucket = `rs-workers-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    // A refresh interval far beyond the test: only the workers telling each other can make a change seen at once.
    server = await startServer({ env: { ...s3, STORAGE_BACKEND: 's3', S3_BUCKET: bucket, S3_PREFIX: 'rs/', INDEX_REFRESH_SECONDS: '3600', WORKERS: '2' } });
    await workersListening(server);
  });
  afterAll(async () => {
    await server.stop();
  });

  it('a change written through one worker is served by every worker at once, and a removal too', async () => {
    await expectChangesSeenByEveryWorker(server);
  });

  it('stops every worker on SIGTERM, and exits 0', async () => {
    const workers = new Set(server.logs().filter((l) => l.message.startsWith('listening on ')).map((l) => l.worker));
    expect(workers).toEqual(new Set([1, 2]));
    expect(await server.stop()).toBe(0);
    expect(server.logs().filter((l) => l.message === 'stopped').length).toBeGreaterThanOrEqual(3);
  });
});

describe('WORKERS=2, as processes', () => {
  let server: RunningServer;
  beforeAll(async () => {
    const bucket = `rs-workers-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    // No AUTH_TOKEN: the one the server generates must work on every worker.
    server = await startServer({ env: { ...s3, STORAGE_BACKEND: 's3', S3_BUCKET: bucket, S3_PREFIX: 'rs/', WORKERS: '2', AUTH_TOKEN: '' } });
    await workersListening(server);
  });
  afterAll(async () => {
    await server.stop();
  });

  it('generates one token for the run, logged once, that every worker accepts', async () => {
    const generated = server.logs().filter((l) => typeof l.token === 'string');
    expect(generated).toHaveLength(1);
    const token = generated[0]!.token as string;
    const statuses = await Promise.all(
      Array.from({ length: 6 }, () => fetch(`${server.url}/assets/nothing.zip`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}`, Connection: 'close' } }).then((r) => r.status)),
    );
    expect(statuses).toEqual(Array(6).fill(404));
    expect(workersThatServed(server, '/assets/nothing.zip')).toEqual(new Set([1, 2]));
  });

  it('/metrics on any worker counts the requests of all of them', async () => {
    const before = await healthCount(server);
    for (let i = 0; i < 10; i++) expect(await freshGet(`${server.url}/healthz`)).toBe(200);
    expect(workersThatServed(server, '/healthz')).toEqual(new Set([1, 2]));
    for (let i = 0; i < 4; i++) expect(await healthCount(server)).toBe(before + 10);
  });

  it('takes SIGHUP (reload the tokens) to the primary into every worker, and stops nothing', async () => {
    const workerPids = await childPids(server.process.pid!);
    const from = server.stdout.length;
    process.kill(server.process.pid!, 'SIGHUP');
    await eventually(() => {
      const reloaded = server.logs().slice(from).filter((l) => l.message === 'tokens reloaded' && l.reason === 'SIGHUP');
      expect(new Set(reloaded.map((l) => l.worker))).toEqual(new Set([1, 2]));
    }, 5000);
    for (let i = 0; i < 6; i++) expect(await freshGet(`${server.url}/healthz`)).toBe(200);
    expect(await childPids(server.process.pid!)).toEqual(workerPids);
    expect(server.process.exitCode).toBeNull();
  });

  it('replaces a worker that dies, and keeps answering meanwhile', async () => {
    const workerPids = await childPids(server.process.pid!);
    expect(workerPids).toHaveLength(2);
    process.kill(workerPids[1]!, 'SIGKILL');
    await eventually(() => expect(server.logs().some((l) => l.module === 'cluster' && l.level === 'ERROR' && String(l.message).includes('starting another'))).toBe(true), 5000);
    // Once the primary knows, every connection goes to the worker left, until the new one is ready.
    for (let i = 0; i < 10; i++) expect(await freshGet(`${server.url}/healthz`)).toBe(200);
    await eventually(async () => expect(await childPids(server.process.pid!)).toHaveLength(2), 10_000);
    await eventually(() => expect(server.logs().filter((l) => l.message.startsWith('listening on '))).toHaveLength(3), 10_000);
    const served = server.stdout.length;
    for (let i = 0; i < 10; i++) expect(await freshGet(`${server.url}/healthz`)).toBe(200);
    const after = server.logs().slice(served).filter((l) => l.module === 'http');
    expect(new Set(after.map((l) => l.worker))).toEqual(new Set([1, 2]));
  });
});

describe('WORKERS=2, metrics while a worker is replaced', () => {
  let server: RunningServer;
  beforeAll(async () => {
    const bucket = `rs-workers-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    server = await startServer({ env: { ...s3, STORAGE_BACKEND: 's3', S3_BUCKET: bucket, S3_PREFIX: 'rs/', WORKERS: '2' } });
    await eventually(() => expect(server.logs().filter((l) => l.message.startsWith('listening on '))).toHaveLength(2), 10_000);
  });
  afterAll(async () => {
    await server.stop();
  });

  it('/metrics keeps answering, at once, while the replacement of a dead worker starts', async () => {
    const workerPids = await childPids(server.process.pid!);
    process.kill(workerPids[1]!, 'SIGKILL');
    await eventually(() => expect(server.logs().some((l) => l.module === 'cluster' && String(l.message).includes('starting another'))).toBe(true), 5000);
    // The replacement is forked after a second and takes a moment to start: a scrape must not wait for it.
    const answers: string[] = [];
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      const started = Date.now();
      const res = await fetch(`${server.url}/metrics`, { headers: { Connection: 'close' }, signal: AbortSignal.timeout(10_000) });
      answers.push(`${res.status} in ${Math.round((Date.now() - started) / 100) / 10} s`);
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(answers.filter((a) => !/^200 in [01](\.\d)? s$/.test(a))).toEqual([]);
    await eventually(() => expect(server.logs().filter((l) => l.message.startsWith('listening on '))).toHaveLength(3), 10_000);
  });
});

describe('WORKERS=2, stopping while a dead worker awaits its replacement', () => {
  it('starts no worker after SIGTERM, even one whose restart was already planned', async () => {
    const bucket = `rs-workers-${randomUUID().slice(0, 8)}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const server = await startServer({ env: { ...s3, STORAGE_BACKEND: 's3', S3_BUCKET: bucket, S3_PREFIX: 'rs/', WORKERS: '2' } });
    await eventually(() => expect(server.logs().filter((l) => l.message.startsWith('listening on '))).toHaveLength(2), 10_000);
    // An upload in flight on each worker (connections go to the workers in turn) keeps the one left stopping for
    // seconds after SIGTERM, as a slow client does.
    const { hostname, port } = new URL(server.url);
    const sockets = [0, 1].map(() => {
      const socket = connect({ host: hostname, port: Number(port) });
      socket.on('error', () => undefined);
      socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="spec-kit-template-claude-sh-v1.0.0.zip"\r\n\r\nPK`);
      return socket;
    });
    await new Promise((r) => setTimeout(r, 500));
    const workerPids = await childPids(server.process.pid!);
    process.kill(workerPids[1]!, 'SIGKILL');
    await eventually(() => expect(server.logs().some((l) => String(l.message).includes('starting another'))).toBe(true), 5000);
    process.kill(server.process.pid!, 'SIGTERM');
    // The replacement was due a second after the death: well past it, the primary must still have started none.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await childPids(server.process.pid!)).toEqual([workerPids[0]]);
    for (const socket of sockets) socket.destroy();
    expect(await server.exited).toBe(0);
  });
});

async function healthCount(server: RunningServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/release_server_http_requests_total\{operation="getHealth",status="200"\} (\d+)/.exec(text)?.[1] ?? 0);
}
