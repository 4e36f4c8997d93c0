import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runToExit, startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { eventually } from '../helpers/storage-dir.js';
import { upload } from '../helpers/upload.js';

const repo = new URL('../../', import.meta.url).pathname;

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ env: { MAX_PACKAGES: '0' } });
});
afterAll(async () => {
  await server.stop();
});

describe('npm start, as a new user runs it', () => {
  it('builds quietly, says where to go and the token on lines of their own, and stops on a SIGTERM to npm', async () => {
    const data = await mkdtemp(join(tmpdir(), 'rs-npm-start-'));
    // A copy of the checkout, so that its build does not rewrite the dist/ the other test files' servers run from.
    const copy = await mkdtemp(join(tmpdir(), 'rs-checkout-'));
    for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'redocly.yaml', 'src', 'contracts', 'scripts', 'generated']) {
      await cp(join(repo, entry), join(copy, entry), { recursive: true });
    }
    await symlink(join(repo, 'node_modules'), join(copy, 'node_modules'));
    const child = spawn('npm', ['start'], {
      cwd: copy,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', PORT: '0', HOST: '127.0.0.1', STORAGE_PATH: data, CONFIG_PATH: join(data, 'none.yaml') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const listening = new Promise<{ url: string; port: number }>((resolve, reject) => {
      let buffer = '';
      child.stdout.on('data', (c: Buffer) => {
        buffer += c.toString();
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          lines.push(line);
          if (line.includes('"listening on ')) resolve(JSON.parse(line));
        }
      });
      void exited.then((code) => reject(new Error(`npm start exited (${code}):\n${lines.join('\n')}\n${stderr}`)));
    });
    const { url, port } = await listening;
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    // npm's own two lines ("> release-server@… start", "> exec node …") and a blank one, then only JSON: no build banners.
    const other = lines.filter((l) => l.trim() !== '' && !l.startsWith('> ') && !l.startsWith('{'));
    expect(other).toEqual([]);
    expect(stderr).toBe('');
    const tokenLine = lines.map((l) => (l.startsWith('{') ? JSON.parse(l) : {})).find((l) => l.token);
    expect(tokenLine).toMatchObject({ level: 'WARN', message: `generated token for this run (no auth_token configured; uploads and deletes need it): ${tokenLine.token}` });

    child.kill('SIGTERM');
    // npm passed the signal on and the server itself stopped cleanly: it said so, and its port is free.
    await eventually(() => expect(lines.some((l) => l.includes('"message":"stopped"'))).toBe(true), 10_000);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    await exited;
  }, 120_000);
});

describe('mistakes a user makes, answered with what to do', () => {
  it('a POST with no body, or a zip sent with --data-binary, says to send multipart/form-data with the field "file"', async () => {
    for (const [body, type, said] of [
      [undefined, undefined, 'the request has no body'],
      [new Uint8Array([80, 75, 3, 4]), 'application/zip', 'the body was sent as application/zip'],
    ] as const) {
      const res = await fetch(`${server.url}/upload`, { method: 'POST', body, headers: { authorization: `Bearer ${TOKEN}`, ...(type ? { 'content-type': type } : {}) } });
      expect(res.status).toBe(415);
      const problem = await res.json();
      expect(problem.detail).toContain(said);
      expect(problem.detail).toContain('multipart/form-data with the file in the field "file"');
      expect(JSON.stringify(problem)).not.toContain('undefined');
    }
  });

  it('reads the release from a name with spaces', async () => {
    const res = await upload(server.url, 'my template v1.0.0.zip', 'spaced');
    expect(res.status).toBe(201);
    expect((await res.json()).tag).toBe('v1.0.0');
  });

  it('refuses TRUST_PROXY=maybe with one FATAL line and no stack trace', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rs-trust-'));
    const { code, stdout, stderr } = await runToExit({ STORAGE_PATH: dir, CONFIG_PATH: join(dir, 'none.yaml'), TRUST_PROXY: 'maybe' });
    expect(code).toBe(2);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'FATAL', message: expect.stringContaining('TRUST_PROXY="maybe" must be') });
    expect(stdout + stderr).not.toMatch(/\n\s+at /);
  });

  it('npm run token -- --help prints the usage, and a wrong option the usage too, never a stack trace', async () => {
    const help = await promisify(execFile)('npm', ['run', '-s', 'token', '--', '--help'], { cwd: repo });
    expect(help.stdout).toContain('usage: npm run -s token -- --name NAME');
    const wrong = await promisify(execFile)('npm', ['run', '-s', 'token', '--', '--nmae', 'x'], { cwd: repo }).catch((err: { code: number; stderr: string }) => err);
    expect((wrong as { code: number }).code).toBe(2);
    expect((wrong as { stderr: string }).stderr).toContain("Unknown option '--nmae'");
    expect((wrong as { stderr: string }).stderr).not.toMatch(/\n\s+at /);
  });

  it('caps per_page at 100 as GitHub does, and sends no empty Link header', async () => {
    const res = await fetch(`${server.url}/releases?per_page=1000`);
    expect(res.status).toBe(200);
    expect(res.headers.get('link')).toBeNull();
  });

  it('answers HEAD on the probes', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const res = await fetch(`${server.url}${path}`, { method: 'HEAD' });
      expect(res.status, path).toBe(200);
    }
  });

  it('answers HEAD wherever it answers GET: the same status and headers, no body', async () => {
    await upload(server.url, 'spec-kit-template-claude-sh-v1.5.0.zip', 'head');
    for (const path of ['/latest', '/releases', '/releases/tags/v1.5.0', '/packages', '/catalogs/extensions.json', '/', '/openapi.yaml']) {
      const identity = { 'Accept-Encoding': 'identity' };
      const get = await fetch(`${server.url}${path}`, { headers: identity });
      const head = await fetch(`${server.url}${path}`, { method: 'HEAD', headers: identity });
      expect(head.status, path).toBe(get.status);
      expect(head.status, path).toBe(200);
      for (const name of ['content-type', 'etag', 'content-length']) expect(head.headers.get(name), `${path} ${name}`).toBe(get.headers.get(name));
      expect(await head.text(), path).toBe('');
      const etag = get.headers.get('etag');
      if (!etag) continue;
      const conditional = { ...identity, 'If-None-Match': etag };
      const [getAgain, headAgain] = await Promise.all(['GET', 'HEAD'].map((method) => fetch(`${server.url}${path}`, { method, headers: conditional })));
      expect(headAgain!.status, path).toBe(getAgain!.status);
    }
    // Checked as its GET would be, and refused as a HEAD: the problem's headers, no body.
    const bad = await fetch(`${server.url}/releases?per_page=many`, { method: 'HEAD' });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    // A path with no GET is still no HEAD.
    const upload405 = await fetch(`${server.url}/upload`, { method: 'HEAD' });
    expect(upload405.status).toBe(405);
    expect(upload405.headers.get('allow')).toContain('POST');
  });

  it('names one release with one id in /latest and /releases/tags', async () => {
    await upload(server.url, 'spec-kit-template-claude-sh-v2.0.0.zip', 'two');
    const latest = await (await fetch(`${server.url}/latest`)).json();
    const tagged = await (await fetch(`${server.url}/releases/tags/v2.0.0`)).json();
    expect(latest.tag_name).toBe('v2.0.0');
    expect(latest.id).toBe(tagged.id);
  });

  it('answers / with the home page, not a 404', async () => {
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await res.text()).toContain('<h1>Release Server</h1>');
  });

  it('sends /docs gzipped to a client that takes gzip, and answers its ETag with 304', async () => {
    const plain = await fetch(`${server.url}/docs`, { headers: { 'accept-encoding': 'identity' } });
    const size = (await plain.arrayBuffer()).byteLength;
    const zipped = await fetch(`${server.url}/docs`, { headers: { 'accept-encoding': 'gzip' } });
    expect(zipped.headers.get('content-encoding')).toBe('gzip');
    expect(Number(zipped.headers.get('content-length'))).toBeLessThan(size / 3);
    const again = await fetch(`${server.url}/docs`, { headers: { 'if-none-match': plain.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });

  it('has an icon, public even on a private server', async () => {
    const res = await fetch(`${server.url}/favicon.ico`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(await res.text()).toMatch(/^<svg /);
  });
});
