import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSink, WRITE_PIECE, writeInPieces } from '../../../src/storage/file-sink.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'file-sink-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const openDescriptors = async () => (await readdir('/proc/self/fd')).length;

describe('FileSink', () => {
  it('writes every byte in order, chunks smaller and larger than one write alike', async () => {
    const chunks = [1, WRITE_PIECE - 1, WRITE_PIECE, WRITE_PIECE + 1, 3 * 1024 * 1024 + 7, 0, 5].map((n) => randomBytes(n));
    const path = join(dir, 'out.bin');
    await pipeline(Readable.from(chunks), new FileSink(path));
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('creates only: an existing file is an error and keeps its bytes', async () => {
    const path = join(dir, 'taken.bin');
    await writeFile(path, 'first');
    await expect(pipeline(Readable.from([Buffer.from('second')]), new FileSink(path))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(path, 'utf8')).toBe('first');
  });

  it('has closed its descriptor when it finishes, and when it is destroyed halfway', async () => {
    const before = await openDescriptors();
    const finished = new FileSink(join(dir, 'a.bin'));
    await pipeline(Readable.from([randomBytes(200_000)]), finished);
    expect(await openDescriptors()).toBe(before);

    const source = new Readable({ read() {} });
    const cut = new FileSink(join(dir, 'b.bin'));
    const piped = pipeline(source, cut);
    source.push(randomBytes(100_000));
    await new Promise((resolve) => setTimeout(resolve, 20));
    source.destroy(new Error('the client went away'));
    await expect(piped).rejects.toThrow('the client went away');
    await new Promise<void>((resolve) => (cut.closed ? resolve() : cut.once('close', () => resolve())));
    expect(await openDescriptors()).toBe(before);
  });

  it('writes a text of many pieces whole, characters that straddle a piece boundary included', async () => {
    const text = 'é'.repeat(WRITE_PIECE) + '✓ end';
    const path = join(dir, 'text.json');
    const handle = await open(path, 'wx');
    await writeInPieces(handle, text);
    await handle.close();
    expect(await readFile(path, 'utf8')).toBe(text);
  });

  it('stops at the piece in flight when destroyed in the middle of a large chunk, and closes only after it', async () => {
    const path = join(dir, 'cut.bin');
    const sink = new FileSink(path);
    await new Promise<void>((resolve, reject) => sink.write(Buffer.from('x'), (err) => (err ? reject(err) : resolve())));
    const events: string[] = [];
    sink.once('close', () => events.push('close'));
    const written = new Promise<void>((resolve) => sink.write(Buffer.alloc(8 * WRITE_PIECE, 0x41), () => (events.push('write settled'), resolve())));
    sink.destroy();
    await written;
    await new Promise<void>((resolve) => (sink.closed ? resolve() : sink.once('close', () => resolve())));
    expect(events).toEqual(['write settled', 'close']);
    expect((await readFile(path)).length).toBe(1 + WRITE_PIECE);
  });
});
