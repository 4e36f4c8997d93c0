import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { eventually, storageContents } from '../helpers/storage-dir.js';
import { templateZip, zipOfSize } from '../helpers/packages.js';
import { upload, uploadRaw } from '../helpers/upload.js';
import { sha256 } from '../helpers/zip.js';

const bytesOf = async (res: Response): Promise<Buffer> => Buffer.from(await res.arrayBuffer());

let server: RunningServer;
beforeAll(async () => {
  // Many refusals in a row are the point here, not the failure limiter (access.test.ts).
  server = await startServer({ env: { MAX_UPLOAD_BYTES: '1MiB', MAX_PACKAGES: '0', AUTH_FAILURES_PER_MINUTE: '1000' } });
});
afterAll(async () => {
  await server.stop();
});

async function packageNames(): Promise<string[]> {
  const res = await fetch(`${server.url}/packages?format=json`);
  return ((await res.json()) as { name: string }[]).map((p) => p.name).sort();
}

/** Runs a request that must be refused with `status` and must change nothing, on the API or on disk. */
async function expectRefused(send: () => Promise<Response>, status: number): Promise<Record<string, unknown>> {
  const before = await packageNames();
  const diskBefore = (await storageContents(server.storagePath)).packages;
  const res = await send();
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const problem = (await res.json()) as Record<string, unknown>;
  expect(problem.status).toBe(status);
  expect(typeof problem.detail).toBe('string');
  expect(await packageNames()).toEqual(before);
  await eventually(async () => {
    const after = await storageContents(server.storagePath);
    expect(after.packages).toEqual(diskBefore);
    expect(after.staging).toEqual([]);
  });
  return problem;
}

describe('POST /upload', () => {
  it('stores a new package: 201 with the Package, its sha256 and a Location', async () => {
    const bytes = await templateZip('first template bytes');
    const res = await upload(server.url, 'spec-kit-template-claude-sh-v0.1.0.zip', bytes);
    expect(res.status).toBe(201);
    const pkg = await res.json();
    expect(pkg).toMatchObject({
      name: 'spec-kit-template-claude-sh-v0.1.0.zip',
      size: bytes.length,
      sha256: sha256(bytes),
      download_url: `${server.url}/assets/spec-kit-template-claude-sh-v0.1.0.zip`,
    });
    expect(pkg.created_at).toBe(pkg.updated_at);
    expect(res.headers.get('location')).toBe(pkg.download_url);
    const download = await fetch(pkg.download_url);
    expect((await bytesOf(download)).equals(bytes)).toBe(true);
  });

  it('refuses an existing name with 409 and keeps the stored bytes', async () => {
    await upload(server.url, 'conflict.zip', 'original');
    const problem = await expectRefused(() => upload(server.url, 'conflict.zip', 'intruder'), 409);
    expect(problem.type).toBe('urn:release-server:problem:exists');
    expect((await bytesOf(await fetch(`${server.url}/assets/conflict.zip`))).equals(await templateZip('original'))).toBe(true);
  });

  it('replaces an existing name with overwrite=true and answers 200', async () => {
    const first = await (await upload(server.url, 'replace.zip', 'version one')).json();
    await new Promise((r) => setTimeout(r, 5));
    const res = await upload(server.url, 'replace.zip', 'version two!', { overwrite: true });
    expect(res.status).toBe(200);
    const pkg = await res.json();
    expect(pkg.sha256).toBe(sha256(await templateZip('version two!')));
    expect(pkg.created_at).toBe(first.created_at);
    expect(pkg.updated_at > first.updated_at).toBe(true);
    expect((await bytesOf(await fetch(`${server.url}/assets/replace.zip`))).equals(await templateZip('version two!'))).toBe(true);
  });

  it('treats overwrite=false like no overwrite', async () => {
    await upload(server.url, 'keep.zip', 'kept');
    await expectRefused(() => upload(server.url, 'keep.zip', 'other', { overwrite: false }), 409);
  });

  it('accepts a matching X-Checksum-Sha256 (any case) and refuses a mismatch with 400, keeping nothing', async () => {
    const bytes = await templateZip('checked bytes');
    const ok = await upload(server.url, 'checked.zip', bytes, { checksum: sha256(bytes).toUpperCase() });
    expect(ok.status).toBe(201);
    const problem = await expectRefused(() => upload(server.url, 'mismatch.zip', bytes, { checksum: sha256('other') }), 400);
    expect(problem.type).toBe('urn:release-server:problem:checksum-mismatch');
    await expectRefused(() => upload(server.url, 'badsum.zip', bytes, { checksum: 'not-hex' }), 400);
  });

  it('takes the Bearer scheme name in any case, and never the token as the password of HTTP Basic (what browsers replay on their own)', async () => {
    const res = await upload(server.url, 'case.zip', 'x', { authorization: `bEaReR ${TOKEN}` });
    expect(res.status).toBe(201);
    const basic = await upload(server.url, 'basic.zip', 'x', { authorization: `Basic ${Buffer.from(`ci:${TOKEN}`).toString('base64')}` });
    expect(basic.status).toBe(401);
    expect((await basic.json()).detail).toContain('Bearer');
    expect((await fetch(`${server.url}/assets/basic.zip`)).status).toBe(404);
  });
});

describe('POST /upload refuses, storing nothing', () => {
  it('401 without a token, with a bare Bearer challenge', async () => {
    const send = () => upload(server.url, 'noauth.zip', 'x', { token: null });
    const res = await send();
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="release-server"');
    await expectRefused(send, 401);
  });

  it('401 invalid_token for a wrong token, or one with extra characters', async () => {
    for (const authorization of ['Bearer wrong', `Bearer ${TOKEN}x`]) {
      const res = await expectRefusedWithHeaders(() => upload(server.url, 'badauth.zip', 'x', { authorization }));
      expect(res).toContain('Bearer realm="release-server"');
    }
  });

  it('401 with a bare challenge for another scheme or an empty credential', async () => {
    for (const authorization of [`Token ${TOKEN}`, 'Bearer', 'Basic ' + Buffer.from(`${TOKEN}:`).toString('base64')]) {
      const res = await upload(server.url, 'badscheme.zip', 'x', { authorization });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="release-server"');
    }
  });

  it('400 for an empty file', async () => {
    const problem = await expectRefused(() => upload(server.url, 'empty.zip', new Uint8Array()), 400);
    expect(problem.type).toBe('urn:release-server:problem:empty');
  });

  it('400 for a multipart body without the file field', async () => {
    await expectRefused(() => uploadRaw(server.url, [{ field: 'note', body: 'hello' }]), 400);
  });

  it('400 for a file in another field', async () => {
    await expectRefused(() => upload(server.url, 'elsewhere.zip', 'x', { field: 'package' }), 400);
  });

  it('400 for two files', async () => {
    await expectRefused(
      () =>
        uploadRaw(server.url, [
          { field: 'file', filename: 'one.zip', body: 'one' },
          { field: 'file', filename: 'two.zip', body: 'two' },
        ]),
      400,
    );
  });

  it('400 for an overwrite that is not a boolean', async () => {
    await expectRefused(() => upload(server.url, 'flag.zip', 'x', { overwrite: 'yes' }), 400);
  });

  it('415 for a body that is not multipart', async () => {
    await expectRefused(
      () => fetch(`${server.url}/upload`, { method: 'POST', body: '{"file":"x"}', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` } }),
      415,
    );
  });

  it('413 for a file larger than max_upload_bytes', async () => {
    const problem = await expectRefused(() => upload(server.url, 'big.zip', Buffer.alloc(1024 * 1024 + 1, 1)), 413);
    expect(problem.detail).toContain(String(1024 * 1024));
    // exactly the limit is fine
    expect((await upload(server.url, 'limit.zip', zipOfSize(1024 * 1024))).status).toBe(201);
  });

  it('422 for a file that is not a zip archive, with the reason in errors', async () => {
    const problem = await expectRefused(() => upload(server.url, 'notes.zip', Buffer.from('just some text, not an archive at all')), 422);
    expect(problem.type).toBe('urn:release-server:problem:invalid-package');
    expect(problem.errors).toEqual([{ path: '(archive)', message: expect.stringContaining('not a readable zip archive') }]);
  });

  it.each([
    ['a forward slash', 'dir/evil.zip'],
    ['a backslash', 'dir\\evil.zip'],
    ['a parent reference', '../evil.zip'],
    ['only dots', '..'],
    ['a leading dot', '.hidden.zip'],
    ['a control character', 'bad\u0001name.zip'],
    ['a DEL character', 'bad\u007fname.zip'],
    ['more than 255 bytes', `${'é'.repeat(128)}.zip`],
    ['no name at all', ''],
  ])('400 for a file name with %s', async (_what, filename) => {
    const problem = await expectRefused(() => uploadRaw(server.url, [{ field: 'file', filename, body: 'payload' }]), 400);
    expect(problem.type).toBe('urn:release-server:problem:invalid-request');
  });

  it('accepts a name of exactly 255 bytes and non-ASCII names', async () => {
    const long = `${'a'.repeat(251)}.zip`;
    const body = await templateZip('x');
    expect((await uploadRaw(server.url, [{ field: 'file', filename: long, body }])).status).toBe(201);
    const res = await uploadRaw(server.url, [{ field: 'file', filename: 'пакет-v1.0.0.zip', body }]);
    expect(res.status).toBe(201);
    expect((await res.json()).name).toBe('пакет-v1.0.0.zip');
    expect((await fetch(`${server.url}/assets/${encodeURIComponent('пакет-v1.0.0.zip')}`)).status).toBe(200);
  });
});

async function expectRefusedWithHeaders(send: () => Promise<Response>): Promise<string> {
  let header = '';
  await expectRefused(async () => {
    const res = await send();
    header = res.headers.get('www-authenticate') ?? '';
    expect(header).toContain('error="invalid_token"');
    return res;
  }, 401);
  return header;
}

beforeEach(async () => {
  // every test starts from a clean staging area
  expect((await storageContents(server.storagePath)).staging).toEqual([]);
});
