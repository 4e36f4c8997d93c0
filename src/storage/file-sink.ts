import { close, open, write } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/**
 * The most bytes one write(2) hands the kernel. Observed on these VMs (Firecracker, Linux 6.18, ext4): a write over
 * 64 KiB to a new file gets large page-cache folios, taken from the high-order free lists that the balloon reports
 * back to the host, so every first touch of them faults on the host. 100 MiB to a new file then fsync: 1,350–1,975 MB/s
 * in writes of 64 KiB, 77–117 MB/s in writes of 128 KiB to 4 MiB (~0.9 s of system time). Elsewhere the cost is
 * 1,600 syscalls per 100 MiB instead of 100.
 */
export const WRITE_PIECE = 64 * 1024;

/**
 * A new file (created exclusively: an existing one is an error, EEXIST) that a stream writes into, every chunk as
 * writes of at most WRITE_PIECE bytes and never gathered into one larger writev as fs.WriteStream does. 'finish'
 * comes after the descriptor is closed. The bytes are not fsynced here: the caller does that when it chooses.
 */
export class FileSink extends Writable {
  private fd = -1;
  private writing = false;
  /** The close that a destroy during a write left for the write's end. */
  private afterWrite: (() => void) | null = null;

  constructor(private readonly path: string) {
    super({ highWaterMark: WRITE_PIECE });
  }

  override _construct(callback: (err?: Error | null) => void): void {
    open(this.path, 'wx', (err, fd) => {
      if (!err) this.fd = fd;
      callback(err);
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.writeFrom(chunk, 0, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    const fd = this.fd;
    this.fd = -1;
    close(fd, callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const closeNow = () => {
      if (this.fd < 0) return callback(err);
      const fd = this.fd;
      this.fd = -1;
      close(fd, () => callback(err));
    };
    // Never close under a write in flight: the descriptor's number could be reused by another open meanwhile, and
    // the write would land in that file. As fs.WriteStream does, the close waits for it.
    if (this.writing) this.afterWrite = closeNow;
    else closeNow();
  }

  private writeFrom(chunk: Buffer, offset: number, callback: (err?: Error | null) => void): void {
    if (offset >= chunk.length) return callback();
    this.writing = true;
    write(this.fd, chunk, offset, Math.min(WRITE_PIECE, chunk.length - offset), null, (err, written) => {
      this.writing = false;
      const closing = this.afterWrite;
      this.afterWrite = null;
      if (closing) {
        // Destroyed meanwhile: the rest of the chunk is not written, and the write still settles, as Writable expects.
        callback(err);
        closing();
      } else if (err) callback(err);
      else if (written === 0) callback(new Error(`write(2) wrote nothing to ${this.path}`));
      else this.writeFrom(chunk, offset + written, callback);
    });
  }
}

/** Writes all of `text` to an open file from its current position, WRITE_PIECE bytes at a time. */
export async function writeInPieces(handle: FileHandle, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, offset, Math.min(WRITE_PIECE, bytes.length - offset));
    if (bytesWritten === 0) throw new Error('write(2) wrote nothing');
    offset += bytesWritten;
  }
}
