import { request } from 'node:http';
import { TOKEN } from './server.js';

export interface UploadOptions {
  token?: string | null;
  /** The whole Authorization header, instead of `Bearer <token>`. */
  authorization?: string;
  overwrite?: string | boolean;
  checksum?: string;
  field?: string;
}

/** POST /upload with one file, the way `curl -F file=@name` sends it. */
export async function upload(base: string, name: string, bytes: Uint8Array | string, options: UploadOptions = {}): Promise<Response> {
  const form = new FormData();
  form.append(options.field ?? 'file', new Blob([bytes as BlobPart]), name);
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
 * Streams a multipart upload of `size` bytes produced chunk by chunk, never held whole in the test's memory.
 * With `abortAfter`, the connection is destroyed once that many file bytes are sent.
 */
export function streamUpload(
  base: string,
  name: string,
  size: number,
  options: { abortAfter?: number; onProgress?: (sent: number) => void; fill?: number } = {},
): Promise<{ status: number; body: string } | 'aborted'> {
  const boundary = 'release-server-stream-boundary';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/zip\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const url = new URL(`${base}/upload`);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + size + tail.length } },
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
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end(tail);
    };
    req.write(head);
    pump();
  });
}
