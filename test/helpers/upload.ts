import { request } from 'node:http';
import { crc32 } from 'node:zlib';
import { templateZip } from './packages.js';
import { TOKEN } from './server.js';

export interface UploadOptions {
  token?: string | null;
  /** The whole Authorization header, instead of `Bearer <token>`. */
  authorization?: string;
  overwrite?: string | boolean;
  checksum?: string;
  field?: string;
}

/**
 * POST /upload with one file, the way `curl -F file=@name` sends it. Text is sent as `templateZip(text)`, a template
 * holding it (the server takes zip archives only); bytes are sent as they are.
 */
export async function upload(base: string, name: string, bytes: Uint8Array | string, options: UploadOptions = {}): Promise<Response> {
  const form = new FormData();
  const body = typeof bytes === 'string' ? await templateZip(bytes) : bytes;
  form.append(options.field ?? 'file', new Blob([body as BlobPart]), name);
  const query = options.overwrite === undefined ? '' : `?overwrite=${options.overwrite}`;
  return fetch(`${base}/upload${query}`, { method: 'POST', body: form, headers: headers(options) });
}

export function headers(options: UploadOptions = {}): Record<string, string> {
  const h: Record<string, string> = {};
  if (options.authorization !== undefined) h.authorization = options.authorization;
  else if (options.token !== null) h.authorization = `Bearer ${options.token ?? TOKEN}`;
  if (options.checksum) h['x-checksum-sha256'] = options.checksum;
  return h;
}

export interface RawPart {
  field: string;
  /** A file part when set; a plain field otherwise. The name is written into the header as it is. */
  filename?: string;
  body: Uint8Array | string;
}

/** A multipart body built by hand, for names and shapes FormData would not send. */
export function multipartBody(parts: RawPart[], boundary = 'release-server-test-boundary'): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = part.filename === undefined ? `form-data; name="${part.field}"` : `form-data; name="${part.field}"; filename="${part.filename}"`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\nContent-Type: application/octet-stream\r\n\r\n`, 'utf8'));
    chunks.push(Buffer.from(part.body));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

export async function uploadRaw(base: string, parts: RawPart[], options: UploadOptions = {}): Promise<Response> {
  const { body, contentType } = multipartBody(parts);
  return fetch(`${base}/upload`, { method: 'POST', body: new Uint8Array(body), headers: { ...headers(options), 'content-type': contentType } });
}

/**
 * Streams a multipart upload of a zip holding one stored member of `size` bytes, produced chunk by chunk, never
 * held whole in the test's memory. With `abortAfter`, the connection is destroyed once that many member bytes are sent.
 */
export function streamUpload(
  base: string,
  name: string,
  size: number,
  options: { abortAfter?: number; onProgress?: (sent: number) => void; fill?: number } = {},
): Promise<{ status: number; body: string } | 'aborted'> {
  const boundary = 'release-server-stream-boundary';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/zip\r\n\r\n`);
  const zip = new StreamedZip('payload.bin', size);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const url = new URL(`${base}/upload`);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + zip.size + tail.length } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', (err) => (options.abortAfter !== undefined ? resolve('aborted') : reject(err)));
    const chunk = Buffer.alloc(1024 * 1024, options.fill ?? 0x5a);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        if (options.abortAfter !== undefined && sent >= options.abortAfter) {
          req.destroy();
          resolve('aborted');
          return;
        }
        const n = Math.min(chunk.length, size - sent);
        sent += n;
        options.onProgress?.(sent);
        if (!req.write(zip.data(n === chunk.length ? chunk : chunk.subarray(0, n)))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end(Buffer.concat([zip.end(), tail]));
    };
    req.write(Buffer.concat([head, zip.start()]));
    pump();
  });
}

/** A zip of one stored member written as its bytes stream: local header, data, data descriptor, directory. */
class StreamedZip {
  private readonly name: Buffer;
  private crc = 0;
  constructor(name: string, private readonly dataSize: number) {
    this.name = Buffer.from(name);
  }

  get size(): number {
    return 30 + this.name.length + this.dataSize + 16 + 46 + this.name.length + 22;
  }

  start(): Buffer {
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0008, 6); // sizes and CRC follow the data
    local.writeUInt16LE(this.name.length, 26);
    return Buffer.concat([local, this.name]);
  }

  data(chunk: Buffer): Buffer {
    this.crc = crc32(chunk, this.crc);
    return chunk;
  }

  end(): Buffer {
    const descriptor = Buffer.alloc(16);
    descriptor.writeUInt32LE(0x08074b50, 0);
    descriptor.writeUInt32LE(this.crc, 4);
    descriptor.writeUInt32LE(this.dataSize, 8);
    descriptor.writeUInt32LE(this.dataSize, 12);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0008, 8);
    central.writeUInt32LE(this.crc, 16);
    central.writeUInt32LE(this.dataSize, 20);
    central.writeUInt32LE(this.dataSize, 24);
    central.writeUInt16LE(this.name.length, 28);
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(1, 8);
    eocd.writeUInt16LE(1, 10);
    eocd.writeUInt32LE(46 + this.name.length, 12);
    eocd.writeUInt32LE(30 + this.name.length + this.dataSize + 16, 16);
    return Buffer.concat([descriptor, central, this.name, eocd]);
  }
}
