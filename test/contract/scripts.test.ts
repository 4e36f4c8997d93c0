import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { templateZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { sha256 } from '../helpers/zip.js';

const scripts = new URL('../../scripts/', import.meta.url).pathname;

/** Runs a script and returns its exit code and output, whatever the code. */
function script(name: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(join(scripts, name), args, { env: { PATH: process.env.PATH ?? '', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let server: RunningServer;
let dir: string;
beforeAll(async () => {
  server = await startServer();
  dir = await mkdtemp(join(tmpdir(), 'rs-scripts-'));
});
afterAll(async () => {
  await server.stop();
});

describe('scripts/upload.sh and scripts/delete.sh', () => {
  it('upload, refuse a second upload with the server detail, overwrite, delete, then fail to delete again', async () => {
    const file = join(dir, 'spec-kit-template-claude-sh-v0.5.0.zip');
    await writeFile(file, await templateZip('first'));
    const env = { RELEASE_SERVER_URL: `${server.url}/`, RELEASE_SERVER_TOKEN: TOKEN };

    const first = await script('upload.sh', [file], env);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ name: 'spec-kit-template-claude-sh-v0.5.0.zip', sha256: sha256(await templateZip('first')) });

    await writeFile(file, await templateZip('second'));
    const again = await script('upload.sh', [file], env);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('HTTP 409');
    expect(again.stderr).toContain('exists');

    const overwrite = await script('upload.sh', [file, '--overwrite'], env);
    expect(overwrite.code).toBe(0);
    expect(Buffer.from(await (await fetch(`${server.url}/assets/spec-kit-template-claude-sh-v0.5.0.zip`)).arrayBuffer()).equals(await templateZip('second'))).toBe(true);

    const deleted = await script('delete.sh', ['spec-kit-template-claude-sh-v0.5.0.zip'], env);
    expect(deleted.code).toBe(0);
    expect((await fetch(`${server.url}/assets/spec-kit-template-claude-sh-v0.5.0.zip`)).status).toBe(404);

    const missing = await script('delete.sh', ['spec-kit-template-claude-sh-v0.5.0.zip'], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('HTTP 404');
  });

  it('takes the server and token from flags, and reports a wrong token', async () => {
    const file = join(dir, 'flags.zip');
    await writeFile(file, await templateZip('flags'));
    const wrong = await script('upload.sh', ['--url', server.url, '--token', 'not-the-token', file]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('HTTP 401');
    expect(wrong.stderr).not.toContain('not-the-token');
    const ok = await script('upload.sh', [`--url=${server.url}`, `--token=${TOKEN}`, file]);
    expect(ok.code).toBe(0);
  });

  it('deletes names that need escaping in a URL', async () => {
    const name = 'spec kit #2 – ünïcode.zip';
    const file = join(dir, name);
    await writeFile(file, await templateZip('odd'));
    const env = { RELEASE_SERVER_URL: server.url, RELEASE_SERVER_TOKEN: TOKEN };
    expect((await script('upload.sh', [file], env)).code).toBe(0);
    expect((await script('delete.sh', [name], env)).code).toBe(0);
    expect((await fetch(`${server.url}/assets/${encodeURIComponent(name)}`)).status).toBe(404);
  });

  it('says what is missing without a server or token, or with no such file', async () => {
    expect((await script('upload.sh', [join(dir, 'flags.zip')], { RELEASE_SERVER_TOKEN: TOKEN })).stderr).toContain('RELEASE_SERVER_URL');
    expect((await script('upload.sh', [join(dir, 'flags.zip')], { RELEASE_SERVER_URL: server.url })).stderr).toContain('RELEASE_SERVER_TOKEN');
    const none = await script('upload.sh', [join(dir, 'nope.zip')], { RELEASE_SERVER_URL: server.url, RELEASE_SERVER_TOKEN: TOKEN });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('no such file');
  });

  it('retries while the server is not reachable yet', async () => {
    const port = await freePort();
    const file = join(dir, 'late.zip');
    await writeFile(file, await templateZip('late'));
    const uploading = script('upload.sh', [file], { RELEASE_SERVER_URL: `http://127.0.0.1:${port}`, RELEASE_SERVER_TOKEN: TOKEN });
    await new Promise((r) => setTimeout(r, 1500));
    const late = await startServer({ env: { PORT: String(port) }, waitReady: false });
    try {
      const result = await uploading;
      expect(result.stderr).toContain('Failed to connect'); // the attempts before the server came up
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout).name).toBe('late.zip');
      expect((await fetch(`${late.url}/assets/late.zip`)).status).toBe(200);
    } finally {
      await late.stop();
    }
  });
});

describe('scripts/build.sh --print', () => {
  it('names the image {REGISTRY}/{AUTHOR}/{IMAGE_NAME}:{TAG} with defaults and no double slashes', async () => {
    const version = JSON.parse(await (await import('node:fs/promises')).readFile(new URL('../../package.json', import.meta.url), 'utf8')).version;
    expect((await script('build.sh', ['--print'])).stdout.trim()).toBe(`ghcr.io/release-server/release-server:${version}`);
    expect((await script('build.sh', ['--print'], { REGISTRY: 'registry.example.com:5000/', AUTHOR: '/platform/', IMAGE_NAME: 'rs', TAG: '1.2.3' })).stdout.trim()).toBe(
      'registry.example.com:5000/platform/rs:1.2.3',
    );
    expect((await script('build.sh', ['--print', '--registry', 'r.example', '--author', 'me', '--tag', 'edge'], { REGISTRY: 'ignored.example' })).stdout.trim()).toBe(
      'r.example/me/release-server:edge',
    );
    expect((await script('build.sh', ['--print'], { REGISTRY: '', AUTHOR: '' })).stdout.trim()).toBe(`release-server:${version}`);
  });

  it('refuses names Docker would refuse', async () => {
    expect((await script('build.sh', ['--print', '--author', 'UpperCase'])).code).not.toBe(0);
    expect((await script('build.sh', ['--print', '--tag', 'has space'])).code).not.toBe(0);
    expect((await script('build.sh', ['--print', '--bogus'])).code).not.toBe(0);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
