import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { spentBuffers } from './spent-buffers.js';

/** Size and SHA-256 of bytes as they stream past, so no byte is read twice. */
export class Digest {
  private readonly hash = createHash('sha256');
  size = 0;

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    // Bytes streaming in (uploads on either backend, imports): each chunk arrived in a buffer of its own.
    spentBuffers(chunk.length);
  }

  /**
   * A pipeline stage that passes every chunk on unchanged. A Transform, not an async generator: measured on
   * 100 MiB uploads, alternating, it is ~20% faster (no promise per chunk).
   */
  passThrough(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        this.update(chunk);
        done(null, chunk);
      },
    });
  }

  hex(): string {
    return this.hash.digest('hex');
  }
}
