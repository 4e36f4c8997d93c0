import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { eventually, storageContents } from '../helpers/storage-dir.js';
import { rawZip } from '../helpers/packages.js';
import { upload } from '../helpers/upload.js';
import { sha256 } from '../helpers/zip.js';

let server: RunningServer;
const NAME = 'spec-kit-template-claude-sh-v0.3.0.zip';
// A 5,000-byte zip whose member is a byte pattern, so that every range has different bytes.
const BYTES = rawZip([{ name: 'data.bin', data: Buffer.from(Array.from({ length: 5000 - 114 }, (_, i) => i % 251)) }]);

beforeAll(async () => {
  server = await startServer({ env: { MAX_PACKAGES: '0' } });
  expect(BYTES.length).toBe(5000);
  expect((await upload(server.url, NAME, BYTES)).status).toBe(201);
});
afterAll(async () => {
  await server.stop();
});

const asset = (name = NAME) => `${server.url}/assets/${encodeURIComponent(name)}`;

/** A GET whose path is sent exactly as written (fetch would normalise dot segments). */
function rawGet(path: string): Promise<{ status: number; type: string; body: string }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /assets/{filename}', () => {
  it('sends the exact bytes with length, type, disposition, strong ETag, Last-Modified and Accept-Ranges', async () => {
    const res = await fetch(asset());
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(BYTES)).toBe(true);
    expect(res.headers.get('content-length')).toBe(String(BYTES.length));
    expect(res.headers.get('content-type')).toBe('application/zip');
    expect(res.headers.get('content-disposition')).toMatch(new RegExp(`^attachment; filename="?${NAME.replaceAll('.', '\\.')}"?$`));
    expect(res.headers.get('etag')).toBe(`"${sha256(BYTES)}"`);
    expect(new Date(res.headers.get('last-modified')!).getTime()).toBeGreaterThan(0);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
  });

  it('answers HEAD with the same headers and no body', async () => {
    const res = await fetch(asset(), { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(BYTES.length));
    expect(res.headers.get('etag')).toBe(`"${sha256(BYTES)}"`);
    expect(await res.text()).toBe('');
  });

  it('sends one range with 206 and Content-Range', async () => {
    for (const [range, start, end] of [['bytes=0-99', 0, 99], ['bytes=4990-', 4990, 4999], ['bytes=-10', 4990, 4999], ['bytes=100-100', 100, 100]] as const) {
      const res = await fetch(asset(), { headers: { range } });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/${BYTES.length}`);
      expect(res.headers.get('content-length')).toBe(String(end - start + 1));
      expect(Buffer.from(await res.arrayBuffer()).equals(BYTES.subarray(start, end + 1))).toBe(true);
    }
  });

  it('answers an unsatisfiable range with 416 and the size', async () => {
    const res = await fetch(asset(), { headers: { range: 'bytes=5000-6000' } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${BYTES.length}`);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.headers.get('content-disposition')).toBeNull();
  });

  it('sends the whole file for a range it does not serve, or one whose If-Range is stale', async () => {
    expect((await fetch(asset(), { headers: { range: 'lines=1-2' } })).status).toBe(200);
    expect((await fetch(asset(), { headers: { range: 'bytes=0-1,10-20' } })).status).toBe(200);
    const stale = await fetch(asset(), { headers: { range: 'bytes=0-9', 'if-range': '"0000"' } });
    expect(stale.status).toBe(200);
    expect(Buffer.from(await stale.arrayBuffer()).length).toBe(BYTES.length);
    const fresh = await fetch(asset(), { headers: { range: 'bytes=0-9', 'if-range': `"${sha256(BYTES)}"` } });
    expect(fresh.status).toBe(206);
  });

  it('answers If-None-Match with the current ETag (also in a list, or weak) with 304 and no body', async () => {
    const etag = `"${sha256(BYTES)}"`;
    for (const ifNoneMatch of [etag, `"other", ${etag}`, `W/${etag}`, '*']) {
      const res = await fetch(asset(), { headers: { 'if-none-match': ifNoneMatch } });
      expect(res.status).toBe(304);
      expect(res.headers.get('etag')).toBe(etag);
      expect(await res.text()).toBe('');
    }
    expect((await fetch(asset(), { headers: { 'if-none-match': '"other"' } })).status).toBe(200);
  });

  it('answers If-Modified-Since at or after the upload with 304, before it with 200', async () => {
    const lastModified = (await fetch(asset(), { method: 'HEAD' })).headers.get('last-modified')!;
    expect((await fetch(asset(), { headers: { 'if-modified-since': lastModified } })).status).toBe(304);
    expect((await fetch(asset(), { headers: { 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' } })).status).toBe(200);
  });

  it('answers an unknown name with 404 problem+json', async () => {
    const res = await fetch(asset('missing.zip'));
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it.each([
    '/assets/..%2f..%2fetc%2fpasswd',
    '/assets/..%2F.meta',
    '/assets/%2e%2e',
    '/assets/%2e%2e%2fpackage.json',
    '/assets/..%5c..%5cetc%5cpasswd',
    '/assets/.tmp',
    '/assets/.meta',
    '/assets/.release-server',
    '/assets/..%2F.release-server%2Findex%2F000000000001.json',
    '/assets/a%00b.zip',
  ])('never serves a file outside storage: %s', async (path) => {
    const res = await rawGet(path);
    expect([400, 404]).toContain(res.status);
    expect(res.type).toMatch(/^application\/problem\+json/);
    expect(res.body).not.toContain('root:');
  });

  it('counts downloads, shown in /latest within a second', async () => {
    const count = async () => ((await (await fetch(`${server.url}/latest`)).json()).assets as { name: string; download_count: number }[]).find((a) => a.name === NAME)!.download_count;
    const before = await count();
    await (await fetch(asset())).arrayBuffer();
    await (await fetch(asset())).arrayBuffer();
    await eventually(async () => expect(await count()).toBe(before + 2), 3000);
  });
});

describe('DELETE /assets/{filename}', () => {
  it('needs the token: 401 without, with a wrong one, and deletes nothing', async () => {
    await upload(server.url, 'protected.zip', 'x');
    expect((await fetch(asset('protected.zip'), { method: 'DELETE' })).status).toBe(401);
    const wrong = await fetch(asset('protected.zip'), { method: 'DELETE', headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('invalid_token');
    expect((await fetch(asset('protected.zip'))).status).toBe(200);
  });

  it('answers 204 and the package is gone from /latest, /packages and disk', async () => {
    await upload(server.url, 'doomed.zip', 'x');
    const res = await fetch(asset('doomed.zip'), { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(204);
    expect((await fetch(asset('doomed.zip'))).status).toBe(404);
    const release = await (await fetch(`${server.url}/latest`)).json();
    expect(release.assets.map((a: { name: string }) => a.name)).not.toContain('doomed.zip');
    const list = await (await fetch(`${server.url}/packages?format=json`)).json();
    expect(list.map((p: { name: string }) => p.name)).not.toContain('doomed.zip');
    expect((await storageContents(server.storagePath)).packages).not.toContain('doomed.zip');
  });

  it('answers 404 for a package that is not there, and 400 for an unsafe name', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await fetch(asset('never-was.zip'), { method: 'DELETE', headers: auth })).status).toBe(404);
    expect((await fetch(`${server.url}/assets/..%2fpackage.json`, { method: 'DELETE', headers: auth })).status).toBe(400);
  });
});

describe('GET /packages', () => {
  it('is HTML by default, escaping every name, with the specify line to copy', async () => {
    const hostile = '"><img src=x onerror=alert(1)>.zip';
    expect((await upload(server.url, hostile, 'x')).status).toBe(201);
    const res = await fetch(`${server.url}/packages`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).not.toContain('<img src=x');
    expect(html).toContain('&quot;&gt;&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;.zip');
    // What the browser shows, once entities are decoded:
    const shown = unescapeHtml(html);
    expect(shown).toContain(`specify init my-project --template-url ${server.url}/latest`);
    expect(shown).toContain(`href="${server.url}/assets/${encodeURIComponent(NAME)}"`);
    expect(html).toContain(sha256(BYTES));
    expect(html).toContain('4.9 KiB');
  });

  it('is a JSON array of Package with Accept: application/json or ?format=json, newest first', async () => {
    const viaAccept = await fetch(`${server.url}/packages`, { headers: { accept: 'application/json' } });
    expect(viaAccept.headers.get('content-type')).toMatch(/^application\/json/);
    const list = (await viaAccept.json()) as { name: string; updated_at: string; sha256: string; download_url: string }[];
    expect(list.length).toBeGreaterThan(1);
    const times = list.map((p) => p.updated_at);
    expect([...times].sort().reverse()).toEqual(times);
    const mine = list.find((p) => p.name === NAME)!;
    expect(mine.sha256).toBe(sha256(BYTES));
    expect(mine.download_url).toBe(asset());
    const viaQuery = await fetch(`${server.url}/packages?format=json`);
    expect(await viaQuery.json()).toEqual(list);
  });

  it('lets ?format= win over Accept, and refuses an unknown format with 400', async () => {
    const html = await fetch(`${server.url}/packages?format=html`, { headers: { accept: 'application/json' } });
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const xml = await fetch(`${server.url}/packages?format=xml`);
    expect(xml.status).toBe(400);
    expect(xml.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });
});

function unescapeHtml(html: string): string {
  return html
    .replace(/&#x([0-9a-f]+);/gi, (_, hex: string) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, dec: string) => String.fromCodePoint(Number(dec)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}
