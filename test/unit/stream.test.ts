import { randomBytes } from 'node:crypto';
import { open } from 'node:fs';
import { Readable } from 'node:stream';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Response } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEND_CHUNK, streamTo } from '../../src/http/stream.js';
import { FileRange } from '../../src/storage/file-range.js';

const SIZE = 3 * SEND_CHUNK + 12345;
let dir: string;
let path: string;
let bytes: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stream-test-'));
  path = join(dir, 'blob');
  bytes = randomBytes(SIZE);
  await writeFile(path, bytes);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function openRange(start: number, end: number, file = path): Promise<FileRange> {
  return new Promise((resolve, reject) => open(file, 'r', (err, fd) => (err ? reject(err) : resolve(new FileRange(fd, start, end, Math.min(SEND_CHUNK, end - start + 1))))));
}

/** A server that sends `range()` with streamTo, and what became of each range it sent. */
async function serve(range: () => Promise<FileRange>): Promise<{ server: Server; url: string; sent: FileRange[]; done: Promise<void>[] }> {
  const sent: FileRange[] = [];
  const done: Promise<void>[] = [];
  const server = createServer(async (_req, res) => {
    const file = await range();
    sent.push(file);
    res.setHeader('content-length', String(file.length));
    done.push(streamTo(file, res as unknown as Response));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, sent, done };
}

function download(url: string, options: { abortAfter?: number } = {}): Promise<{ body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const req = get(url, (res) => {
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        received += c.length;
        if (options.abortAfter !== undefined && received >= options.abortAfter) req.destroy();
      });
      res.on('end', () => resolve({ body: Buffer.concat(chunks), complete: res.complete }));
      res.on('error', () => resolve({ body: Buffer.concat(chunks), complete: false }));
      res.on('close', () => resolve({ body: Buffer.concat(chunks), complete: res.complete }));
    });
    req.on('error', () => resolve({ body: Buffer.concat(chunks), complete: false }));
  });
}

describe('downloads of a file range (streamTo with reused buffers)', () => {
  it('sends every byte of a file larger than its buffers, and of ranges within it, then closes the file', async () => {
    for (const [start, end] of [[0, SIZE - 1], [1000, 2 * SEND_CHUNK + 7], [SEND_CHUNK, 2 * SEND_CHUNK - 1], [5, 5], [SIZE - 10, SIZE - 1]] as const) {
      const { server, url, sent, done } = await serve(() => openRange(start, end));
      try {
        const { body, complete } = await download(url);
        expect(complete).toBe(true);
        expect(body.equals(bytes.subarray(start, end + 1))).toBe(true);
        await Promise.all(done);
        expect(sent[0]!.destroyed).toBe(true);
      } finally {
        server.close();
      }
    }
  });

  it('sends the same bytes to parallel downloads (buffers are never shared between them)', async () => {
    const { server, url, done } = await serve(() => openRange(0, SIZE - 1));
    try {
      const results = await Promise.all(Array.from({ length: 6 }, () => download(url)));
      for (const { body } of results) expect(body.equals(bytes)).toBe(true);
      await Promise.all(done);
      // And again, with buffers kept from the first round.
      for (const { body } of await Promise.all(Array.from({ length: 3 }, () => download(url)))) expect(body.equals(bytes)).toBe(true);
    } finally {
      server.close();
    }
  });

  it('closes the file when the client goes away mid-download', async () => {
    const { server, url, sent, done } = await serve(() => openRange(0, SIZE - 1));
    try {
      const { body, complete } = await download(url, { abortAfter: SEND_CHUNK });
      expect(complete).toBe(false);
      expect(body.length).toBeLessThan(SIZE);
      await Promise.all(done);
      expect(sent[0]!.destroyed).toBe(true);
    } finally {
      server.close();
    }
  });

  it('cuts the response short when the file is shorter than its record says', async () => {
    const short = join(dir, 'short');
    await writeFile(short, bytes);
    const { server, url, done } = await serve(async () => {
      const file = await openRange(0, SIZE - 1, short);
      await truncate(short, 2 * SEND_CHUNK + 1);
      return file;
    });
    try {
      const { body, complete } = await download(url);
      expect(complete).toBe(false);
      expect(body.length).toBeLessThan(SIZE);
      expect(body.equals(bytes.subarray(0, body.length))).toBe(true);
      await Promise.all(done);
    } finally {
      server.close();
    }
  });

  it('reads as a plain stream too (export, step files): the range, in chunks of its own', async () => {
    const file = await openRange(10, 2 * SEND_CHUNK + 99);
    const chunks: Buffer[] = [];
    for await (const chunk of file) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(bytes.subarray(10, 2 * SEND_CHUNK + 100))).toBe(true);
    expect(new Set(chunks.map((c) => c.buffer)).size).toBe(chunks.length);
    expect(file.destroyed).toBe(true);
  });

  it('settles at once and lets go of the bytes when the client left before they were opened (an s3 round trip)', async () => {
    const outcomes: { kind: string; settled: boolean; destroyed: boolean }[] = [];
    let finished!: () => void;
    const allDone = new Promise<void>((resolve) => (finished = resolve));
    const server = createServer((_req, res) => {
      res.once('close', async () => {
        for (const [kind, source] of [['piped', new Readable({ read() {} })], ['file', await openRange(0, SIZE - 1)]] as const) {
          let settled = false;
          void streamTo(source, res as unknown as Response).then(() => (settled = true));
          await new Promise((resolve) => setImmediate(resolve));
          outcomes.push({ kind, settled, destroyed: source.destroyed });
        }
        finished();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const req = get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      req.on('error', () => undefined);
      req.once('socket', (socket) => socket.once('connect', () => setTimeout(() => req.destroy(), 20)));
      await allDone;
      expect(outcomes).toEqual([
        { kind: 'piped', settled: true, destroyed: true },
        { kind: 'file', settled: true, destroyed: true },
      ]);
    } finally {
      server.close();
    }
  });
});
