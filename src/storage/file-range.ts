import { close, read } from 'node:fs';
import { Readable } from 'node:stream';

/**
 * A byte range of an open file, as a Readable that owns the descriptor (closed when the stream ends or is
 * destroyed). Read as a stream, every chunk is a buffer of its own, as with fs.createReadStream. A download reads it
 * with `readAt` into buffers it reuses instead (http/stream.ts): a stream allocates a fresh buffer per chunk outside
 * the heap, and with 100 MiB downloads tens of MiB of spent buffers pile up before V8 collects them.
 */
export class FileRange extends Readable {
  /** Next offset the stream reads. */
  private position: number;
  private fdClosed = false;

  /** `end` is inclusive, as in fs.createReadStream. */
  constructor(
    private readonly fd: number,
    readonly start: number,
    readonly end: number,
    private readonly chunkSize: number,
  ) {
    super({ highWaterMark: chunkSize });
    this.position = start;
  }

  /** Bytes in the range. */
  get length(): number {
    return this.end - this.start + 1;
  }

  /**
   * Reads up to `length` bytes at `offset` (relative to the start of the range) into `buffer`: resolves with the
   * count, 0 past the end of the range or of the file.
   */
  readAt(buffer: Buffer, offset: number, length = buffer.length): Promise<number> {
    const wanted = Math.min(length, buffer.length, this.length - offset);
    if (wanted <= 0) return Promise.resolve(0);
    return new Promise((resolve, reject) => read(this.fd, buffer, 0, wanted, this.start + offset, (err, n) => (err ? reject(err) : resolve(n))));
  }

  override _read(): void {
    const wanted = Math.min(this.chunkSize, this.end + 1 - this.position);
    if (wanted <= 0) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafeSlow(wanted);
    read(this.fd, buffer, 0, wanted, this.position, (err, n) => {
      if (err) {
        this.destroy(err);
        return;
      }
      if (n === 0) {
        this.push(null);
        return;
      }
      this.position += n;
      this.push(n === wanted ? buffer : buffer.subarray(0, n));
    });
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (this.fdClosed) {
      done(err);
      return;
    }
    this.fdClosed = true;
    close(this.fd, (closeErr) => done(err ?? closeErr));
  }
}
