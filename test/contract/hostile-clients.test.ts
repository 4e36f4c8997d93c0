import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, truncate, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { templateZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { blobFileOf, eventually } from '../helpers/storage-dir.js';
import { multipartBody, streamUpload, upload } from '../helpers/upload.js';
import { sha256 } from '../helpers/zip.js';

const READER = 'reader-token-aaaaaaaaaaaaaaaa';
const basic = (token: string) => `Basic ${Buffer.from(`someone:${token}`).toString('base64')}`;

/** Sends raw bytes on a new connection and collects what comes back until the server closes it (or `ms` pass). */
function rawExchange(url: string, head: string, options: { body?: Buffer; ms?: number; localAddress?: string } = {}): Promise<{ text: string; closedByServer: boolean; socket: Socket }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port), localAddress: options.localAddress });
    let text = '';
    let closedByServer = false;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closedByServer, socket });
    }, options.ms ?? 3000);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closedByServer = true;
      clearTimeout(timer);
      resolve({ text, closedByServer, socket });
    });
    socket.write(head);
    if (options.body) socket.write(options.body);
  });
}

async function problem(res: Response, status: number): Promise<{ detail: string; type: string }> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  return (await res.json()) as { detail: string; type: string };
}

let privateServer: RunningServer;
let tokensPath: string;
beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rs-hostile-'));
  tokensPath = join(dir, 'tokens.yaml');
  await writeFile(tokensPath, `- name: reader\n  scopes: [read]\n  sha256: ${createHash('sha256').update(READER).digest('hex')}\n- name: ci\n  scopes: [read, write, delete]\n  sha256: ${createHash('sha256').update(TOKEN).digest('hex')}\n`);
  privateServer = await startServer({ env: { AUTH_TOKEN: '', TOKENS_FILE: tokensPath, READ_ACCESS: 'token', MAX_PACKAGES: '0' } });
  expect((await upload(privateServer.url, 'victim-v1.0.0.zip', 'the original')).status).toBe(201);
});
afterAll(async () => {
  await privateServer.stop();
});

describe('no write without intent (CSRF on a private server)', () => {
  const original = async () => sha256(Buffer.from(await (await fetch(`${privateServer.url}/assets/victim-v1.0.0.zip`, { headers: { authorization: `Bearer ${TOKEN}` } })).arrayBuffer()));

  it('takes Basic credentials (what a browser caches and replays) for reads only: an upload or delete with them is a 401', async () => {
    const before = await original();
    expect((await fetch(`${privateServer.url}/packages`, { headers: { authorization: basic(TOKEN) } })).status).toBe(200);
    const replaced = await upload(privateServer.url, 'victim-v1.0.0.zip', 'replaced by a web page', { authorization: basic(TOKEN), overwrite: true });
    expect((await problem(replaced, 401)).detail).toMatch(/needs Authorization: Bearer <token>; HTTP Basic .* reads only/);
    const deleted = await fetch(`${privateServer.url}/assets/victim-v1.0.0.zip`, { method: 'DELETE', headers: { authorization: basic(TOKEN) } });
    await problem(deleted, 401);
    expect(await original()).toBe(before);
  });

  it('refuses the form POST a page on another site makes a browser send, even with a valid credential, and leaves the package alone', async () => {
    const before = await original();
    const { body, contentType } = multipartBody([{ field: 'file', filename: 'victim-v1.0.0.zip', body: await templateZip('replaced by evil.example') }]);
    const browserHeaders: Record<string, string>[] = [
      { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' },
      { origin: 'null' },
      { 'sec-fetch-site': 'same-site' },
      { origin: `${privateServer.url}.evil.example` },
    ];
    for (const extra of browserHeaders) {
      for (const authorization of [`Bearer ${TOKEN}`, basic(TOKEN)]) {
        const res = await fetch(`${privateServer.url}/upload?overwrite=true`, { method: 'POST', body: new Uint8Array(body), headers: { 'content-type': contentType, authorization, ...extra } });
        expect((await problem(res, 403)).type).toBe('urn:release-server:problem:cross-site-request');
      }
      const del = await fetch(`${privateServer.url}/assets/victim-v1.0.0.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}`, ...extra } });
      await problem(del, 403);
    }
    expect(await original()).toBe(before);
    const audit = privateServer.logs().filter((l) => l.module === 'audit' && l.status === 200);
    expect(audit).toEqual([]);
  });

  it('keeps the real clients working: Bearer with no browser headers, or from a page of its own origin', async () => {
    expect((await upload(privateServer.url, 'ci-v1.0.0.zip', 'from CI')).status).toBe(201);
    const own = await fetch(`${privateServer.url}/assets/ci-v1.0.0.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}`, origin: privateServer.url, 'sec-fetch-site': 'same-origin' } });
    expect(own.status).toBe(204);
  });
});

describe('authenticate before reading the body', () => {
  const head = (authorization: string, length: number, expect100 = true) =>
    `POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorization}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: ${length}\r\n${expect100 ? 'Expect: 100-continue\r\n' : ''}\r\n`;

  it('answers a wrong token with 401 and no 100 Continue, and closes without waiting for the body', async () => {
    const { text, closedByServer } = await rawExchange(privateServer.url, head('Bearer wrong-token-000000000000', 500 * 1024 * 1024));
    expect(text).toMatch(/^HTTP\/1\.1 401 /);
    expect(text).not.toContain('100 Continue');
    expect(closedByServer).toBe(true);
  });

  it('answers a declared length over max_upload_bytes with 413 and no 100 Continue', async () => {
    const small = await startServer({ env: { MAX_UPLOAD_BYTES: '1MiB' } });
    try {
      const { text, closedByServer } = await rawExchange(small.url, head(`Bearer ${TOKEN}`, 64 * 1024 * 1024));
      expect(text).toMatch(/^HTTP\/1\.1 413 /);
      expect(text).toContain('max_upload_bytes');
      expect(text).not.toContain('100 Continue');
      expect(closedByServer).toBe(true);
    } finally {
      await small.stop();
    }
  });

  it('invites an authorized upload with 100 Continue', async () => {
    const { text } = await rawExchange(privateServer.url, head(`Bearer ${TOKEN}`, 1000), { ms: 500 });
    expect(text).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
  });

  it('without Expect, reads at most a small bound of a refused body before closing the connection', async () => {
    // 64 MiB announced, and sent as fast as the server reads: a server that drains it reads all of it.
    const { hostname, port } = new URL(privateServer.url);
    const socket = connect({ host: hostname, port: Number(port) });
    socket.on('error', () => undefined);
    let answer = '';
    socket.on('data', (c: Buffer) => (answer += c.toString('latin1')));
    socket.write(head('Bearer wrong-token-000000000000', 64 * 1024 * 1024, false));
    const chunk = Buffer.alloc(256 * 1024, 1);
    let sent = 0;
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let open = true;
    void closed.then(() => (open = false));
    while (open && sent < 64 * 1024 * 1024) {
      if (!socket.write(chunk)) await Promise.race([new Promise((r) => socket.once('drain', r)), closed]);
      sent += chunk.length;
    }
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    // What got through is what the kernel buffers hold plus the server's small bound, nowhere near the body.
    expect(sent).toBeLessThan(32 * 1024 * 1024);
  });
});

describe('the failure limiter cannot be aimed at others', () => {
  it('never limits public reads, starts at the attempt after the limit, and audits a validated address', async () => {
    const server = await startServer({ env: { AUTH_FAILURES_PER_MINUTE: '3' } });
    try {
      const victim = '203.0.113.50';
      for (let i = 0; i < 11; i++) {
        const res = await fetch(`${server.url}/upload`, { method: 'POST', headers: { 'x-forwarded-for': victim, authorization: 'Bearer wrong-token-000000000000' }, body: new FormData() });
        expect(res.status, `attempt ${i + 1}`).toBe(i < 3 ? 401 : 429);
      }
      // The victim's public reads are untouched.
      expect((await fetch(`${server.url}/latest`, { headers: { 'x-forwarded-for': victim } })).status).toBe(200);
      expect((await fetch(`${server.url}/catalogs/extensions.json`, { headers: { 'x-forwarded-for': victim } })).status).toBe(200);
      // A forged, non-address X-Forwarded-For is not a client address: the audit line names the peer.
      const forged = await upload(server.url, 'forged-v1.0.0.zip', 'x', { authorization: `Bearer ${TOKEN}` }).then(() =>
        fetch(`${server.url}/assets/forged-v1.0.0.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}`, 'x-forwarded-for': '<script>alert(1)</script>' } }),
      );
      expect(forged.status).toBe(204);
      await eventually(() => {
        const line = server.logs().find((l) => l.module === 'audit' && l.operation === 'deleteAsset');
        expect(line).toMatchObject({ client: '127.0.0.1', status: 204 });
      });
      // 401s and 429s count under the operation they were aimed at.
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain('release_server_http_requests_total{operation="uploadPackage",status="401"} 3');
      expect(metrics).toContain('release_server_http_requests_total{operation="uploadPackage",status="429"} 8');
    } finally {
      await server.stop();
    }
  });
});

describe('trust_proxy by default', () => {
  // A client on a public address: one the loopback interface is given for the test, where the machine allows it.
  const PUBLIC_CLIENT = '198.51.100.77';
  let canAddAddress = false;
  beforeAll(() => {
    try {
      execFileSync('ip', ['addr', 'add', `${PUBLIC_CLIENT}/32`, 'dev', 'lo'], { stdio: 'pipe' });
      canAddAddress = true;
    } catch (err) {
      console.warn(`skipping the public-client test: cannot add ${PUBLIC_CLIENT} to lo (${(err as Error).message.split('\n')[0]})`);
    }
  });
  afterAll(() => {
    if (canAddAddress) execFileSync('ip', ['addr', 'del', `${PUBLIC_CLIENT}/32`, 'dev', 'lo'], { stdio: 'pipe' });
  });

  it('believes no forwarded header from a client on a public address', async (context) => {
    if (!canAddAddress) context.skip();
    const server = await startServer({ env: { HOST: '0.0.0.0', AUTH_FAILURES_PER_MINUTE: '2' } });
    try {
      const port = new URL(server.url).port;
      const send = (path: string, headers: string, method = 'GET') =>
        rawExchange(`http://${PUBLIC_CLIENT}:${port}`, `${method} ${path} HTTP/1.1\r\nHost: ${PUBLIC_CLIENT}:${port}\r\n${headers}Connection: close\r\n\r\n`, { localAddress: PUBLIC_CLIENT });
      const forged = 'X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n';
      const latest = await send('/latest', forged);
      expect(latest.text).toMatch(/^HTTP\/1\.1 200 /);
      expect(latest.text).not.toContain('evil.example');
      expect(latest.text).toContain(`"url":"http://${PUBLIC_CLIENT}:${port}/latest"`);
      // Failures are counted against the real address, whatever the header says.
      for (let i = 0; i < 2; i++) expect((await send('/upload', `${forged}Authorization: Bearer wrong-token-000000000000\r\nContent-Length: 0\r\n`, 'POST')).text).toMatch(/^HTTP\/1\.1 401 /);
      expect((await send('/upload', `X-Forwarded-For: 10.9.9.9\r\nAuthorization: Bearer wrong-token-000000000000\r\nContent-Length: 0\r\n`, 'POST')).text).toMatch(/^HTTP\/1\.1 429 /);
      // ... and another client is not held to them.
      expect((await fetch(`${server.url}/upload`, { method: 'POST', headers: { authorization: 'Bearer wrong-token-000000000000' } })).status).toBe(401);
    } finally {
      await server.stop();
    }
  });
});

describe('host headers', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ env: { MAX_PACKAGES: '0' } });
    await upload(server.url, 'hosted-v1.0.0.zip', 'x');
  });
  afterAll(async () => {
    await server.stop();
  });

  it.each([
    ['a malformed X-Forwarded-Host', { 'x-forwarded-host': 'a b<script>' }],
    ['an X-Forwarded-Host with a scheme', { 'x-forwarded-host': 'javascript:alert(1)//' }],
    ['a javascript X-Forwarded-Proto', { 'x-forwarded-proto': 'javascript' }],
    ['a list with junk first', { 'x-forwarded-host': '"><img>, ok.example' }],
  ])('ignores %s: every URL is http(s) on a well-formed host, never a 500', async (_what, headers) => {
    for (const path of ['/latest', '/releases', '/packages?format=json', '/catalogs/extensions.json', '/packages']) {
      const res = await fetch(`${server.url}${path}`, { headers });
      expect(res.status, path).toBe(200);
      const text = await res.text();
      const urls = text.match(/\b[a-z][a-z0-9+.-]*:\/\/[^"'\s<>]*/gi) ?? [];
      for (const url of urls) expect(url, `${path}: ${url}`).toMatch(/^https?:\/\/(127\.0\.0\.1:\d+|[a-z0-9.-]+)\//i);
      expect(text).not.toMatch(/javascript:|<script>|<img>/i);
    }
  });

  it('ignores a host no URL can hold (a port over 65535, a broken IPv6 or IPv4): writes are not a 500, URLs fall back', async () => {
    for (const host of ['example.com:99999', '[::1]:70000', '[:::::]', '1.2.3.4.5']) {
      const del = await rawExchange(server.url, `DELETE /assets/nope.zip HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`);
      expect(del.text, host).toMatch(/^HTTP\/1\.1 404 /);
      const latest = await rawExchange(server.url, `GET /latest HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(latest.text, host).toMatch(/^HTTP\/1\.1 200 /);
      expect(latest.text).not.toContain(host);
    }
    const forwarded = await fetch(`${server.url}/latest`, { headers: { 'x-forwarded-host': 'evil.example:99999' } });
    expect(forwarded.status).toBe(200);
    expect(await forwarded.text()).not.toContain('evil.example');
  });

  it('uses a valid forwarded host, and says in Vary that the URLs depend on it', async () => {
    const res = await fetch(`${server.url}/latest`, { headers: { 'x-forwarded-host': 'releases.example.com', 'x-forwarded-proto': 'https' } });
    expect((await res.json()).assets[0].browser_download_url).toBe('https://releases.example.com/assets/hosted-v1.0.0.zip');
    expect(res.headers.get('vary')).toMatch(/X-Forwarded-Host/i);
  });

  it('with public_url set, takes nothing from the request', async () => {
    const fixed = await startServer({ env: { PUBLIC_URL: 'https://releases.example.com' } });
    try {
      const res = await fetch(`${fixed.url}/latest`, { headers: { 'x-forwarded-host': 'attacker.example', host: 'attacker.example' } });
      expect(res.status).toBe(200);
      expect(JSON.stringify(await res.json())).not.toContain('attacker.example');
      expect(res.headers.get('vary') ?? '').not.toMatch(/host/i);
    } finally {
      await fixed.stop();
    }
  });
});

describe('connections', () => {
  it('caps connections per address and closes half-sent ones at the headers deadline, while others are served', async () => {
    const server = await startServer({ env: { MAX_CONNECTIONS_PER_ADDRESS: '20', HEADERS_TIMEOUT_SECONDS: '2' } });
    try {
      // 200 connections from one address (127.0.0.2), each sending half a request line and then nothing.
      const hostile = Array.from({ length: 200 }, () => rawExchange(server.url, 'GET /latest HTTP/1.1\r\nHost: x\r\n', { localAddress: '127.0.0.2', ms: 8000 }));
      await new Promise((r) => setTimeout(r, 300));
      // Another client is served at once.
      for (let i = 0; i < 5; i++) expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const results = await Promise.all(hostile);
      // Every hostile connection was closed by the server: most at once (over the cap), the rest at the deadline.
      expect(results.every((r) => r.closedByServer)).toBe(true);
      const timedOut = results.filter((r) => r.text.startsWith('HTTP/1.1 408'));
      expect(timedOut.length).toBeLessThanOrEqual(20);
    } finally {
      await server.stop();
    }
  });

  it('lets a slow but honest client finish: a request head sent a byte at a time over a second', async () => {
    const server = await startServer({ env: { HEADERS_TIMEOUT_SECONDS: '3' } });
    try {
      const { hostname, port } = new URL(server.url);
      const socket = connect({ host: hostname, port: Number(port) });
      let answer = '';
      socket.on('data', (c: Buffer) => (answer += c.toString('latin1')));
      const closed = new Promise((r) => socket.once('close', r));
      const request = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
      for (const byte of request) {
        socket.write(byte);
        await new Promise((r) => setTimeout(r, 1000 / request.length));
      }
      await closed;
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      await server.stop();
    }
  });
});

describe('also', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ env: { MAX_PACKAGES: '0' } });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('answers a read the same whatever Content-Type it names: a read has no body, and the header is dropped before the validator', async () => {
    // The contract's validator caches what it builds for a request by its Content-Type, without bound: a read naming a
    // new one each time made it build anew (~10 ms of CPU) and keep it for good. Measured by hand (3,000 such GETs:
    // 32 s before, 2.8 s after); asserted here is only what a client sees, since timings are for benchmarks.
    const plain = await (await fetch(`${server.url}/packages?format=json`)).text();
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${server.url}/packages?format=json`, { headers: { 'content-type': `application/x-hostile-${i}; charset=x-${i}` } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(plain);
    }
  });

  it('answers Range: bytes=-N with N beyond the size with 206 and the whole file (RFC 9110)', async () => {
    const bytes = await templateZip('suffix range');
    await upload(server.url, 'suffix-v1.0.0.zip', bytes);
    const res = await fetch(`${server.url}/assets/suffix-v1.0.0.zip`, { headers: { range: `bytes=-${bytes.length + 1000}` } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 0-${bytes.length - 1}/${bytes.length}`);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(bytes));
    expect((await fetch(`${server.url}/assets/suffix-v1.0.0.zip`, { headers: { range: 'bytes=-0' } })).status).toBe(416);
  });

  it('cuts a download short when the disk fails mid-file, and logs and counts it as our failure, not an abandoned client', async () => {
    const bytes = await templateZip(randomBytes(3 * 1024 * 1024).toString('base64'));
    await upload(server.url, 'flaky-v1.0.0.zip', bytes);
    // A disk that loses the end of a stored file: the record still says the whole size.
    const blob = await blobFileOf(server.storagePath, 'flaky-v1.0.0.zip');
    await truncate(blob, 600 * 1024);
    const res = await fetch(`${server.url}/assets/flaky-v1.0.0.zip`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    await expect(res.arrayBuffer()).rejects.toThrow();
    await eventually(() => {
      const line = server.logs().find((l) => l.module === 'http' && (l.req as { path?: string } | undefined)?.path === '/assets/flaky-v1.0.0.zip');
      expect(line).toMatchObject({ level: 'ERROR', failed: true });
      expect(line?.message).toMatch(/^GET \/assets\/flaky-v1\.0\.0\.zip 200 cut short: the file ended \d+ bytes early$/);
      expect(line).not.toHaveProperty('aborted');
    });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/release_server_http_requests_total\{operation="downloadAsset",status="failed"\} 1/);
  });

  it('logs an aborted upload as aborted, audits it, and does not count it as a storage error', async () => {
    const result = await streamUpload(server.url, 'abandoned-v1.0.0.zip', 64 * 1024 * 1024, { abortAfter: 8 * 1024 * 1024 });
    expect(result).toBe('aborted');
    await eventually(() => {
      const line = server.logs().find((l) => l.module === 'http' && (l.req as { path?: string } | undefined)?.path === '/upload' && l.level !== 'INFO');
      expect(line).toMatchObject({ level: 'WARN', message: 'POST /upload aborted by the client', aborted: true });
      expect(server.logs().find((l) => l.module === 'audit' && l.operation === 'uploadPackage' && l.level === 'WARN')).toMatchObject({ status: 'aborted', token: 'default' });
    });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).not.toMatch(/release_server_storage_errors_total\{[^}]*\} [1-9]/);
    expect(metrics).toContain('release_server_http_requests_total{operation="uploadPackage",status="aborted"} 1');
  });

  it('sends a CSP with frame-ancestors and nosniff on the HTML pages, and nosniff everywhere', async () => {
    for (const path of ['/packages', '/docs']) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
      expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
    expect((await fetch(`${server.url}/latest`)).headers.get('x-content-type-options')).toBe('nosniff');
  });
});
