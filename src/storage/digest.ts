import { createHash } from 'node:crypto';

/** Size and SHA-256 of bytes as they stream past, so no byte is read twice. */
export class Digest {
  private readonly hash = createHash('sha256');
  size = 0;

  /** A pipeline stage that passes every chunk on unchanged. */
  readonly tap = async function* (this: Digest, source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      this.hash.update(chunk);
      this.size += chunk.length;
      yield chunk;
    }
  }.bind(this);

  hex(): string {
    return this.hash.digest('hex');
  }
}
