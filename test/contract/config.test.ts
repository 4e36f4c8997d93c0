import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runToExit, startServer } from '../helpers/server.js';
import { upload } from '../helpers/upload.js';

async function tempFile(name: string, content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rs-config-'));
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

/** Starts with a bad setting and expects a non-zero exit with one JSON line that names the key and value. */
async function expectRefusal(env: Record<string, string>, ...mentions: string[]): Promise<void> {
  const storage = await mkdtemp(join(tmpdir(), 'rs-data-'));
  const { code, stdout } = await runToExit({ STORAGE_PATH: storage, CONFIG_PATH: join(storage, 'none.yaml'), ...env });
  expect(code).not.toBe(0);
  expect(code).not.toBeNull();
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const entry = JSON.parse(lines[0]!);
  expect(entry).toMatchObject({ level: 'FATAL', module: 'config' });
  for (const mention of mentions) expect(entry.message).toContain(mention);
}

describe('bad configuration stops start-up with one clear line', () => {
  it('MAX_PACKAGES=abc', () => expectRefusal({ MAX_PACKAGES: 'abc' }, 'MAX_PACKAGES', '"abc"'));
  it('a negative MAX_UPLOAD_BYTES', () => expectRefusal({ MAX_UPLOAD_BYTES: '-5' }, 'MAX_UPLOAD_BYTES', '"-5"'));
  it('a negative max_packages in the file', async () =>
    expectRefusal({ CONFIG_PATH: await tempFile('config.yaml', 'max_packages: -1\n') }, 'max_packages', '-1'));
  it('a PORT out of range', () => expectRefusal({ PORT: '70000' }, 'PORT', '70000'));
  it('an unknown LOG_LEVEL', () => expectRefusal({ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', 'loud'));
  it('WORKERS=0, or neither auto nor a count', async () => {
    await expectRefusal({ WORKERS: '0' }, 'WORKERS', 'auto or a whole number');
    await expectRefusal({ WORKERS: 'many' }, 'WORKERS', '"many"');
  });
  it('a PUBLIC_URL that is not absolute', () => expectRefusal({ PUBLIC_URL: 'releases.example.com' }, 'PUBLIC_URL'));
  it('an unknown key in the file', async () =>
    expectRefusal({ CONFIG_PATH: await tempFile('config.yaml', 'port: 8000\nmax_pakages: 3\n') }, 'max_pakages'));
  it('malformed YAML', async () => expectRefusal({ CONFIG_PATH: await tempFile('config.yaml', 'port: [8000\n') }, 'not valid YAML'));
  it('an unreadable AUTH_TOKEN_FILE', () => expectRefusal({ AUTH_TOKEN: '', AUTH_TOKEN_FILE: '/nonexistent/token' }, 'AUTH_TOKEN_FILE', '/nonexistent/token'));
  it('a secret is never echoed', async () => {
    const storage = await mkdtemp(join(tmpdir(), 'rs-data-'));
    const { stdout } = await runToExit({ STORAGE_PATH: storage, CONFIG_PATH: await tempFile('c.yaml', 'auth_token: [not, a, string-secret-value]\n') });
    expect(stdout).toContain('auth_token');
    expect(stdout).not.toContain('string-secret-value');
  });
});

describe('configuration sources', () => {
  it('reads the YAML file at CONFIG_PATH, and the environment wins over it', async () => {
    const config = await tempFile('config.yaml', 'max_packages: 2\nauth_token: from-the-file-123\npublic_url: https://file.example\n');
    const server = await startServer({ env: { CONFIG_PATH: config, AUTH_TOKEN: '', PUBLIC_URL: 'https://env.example' } });
    try {
      const res = await upload(server.url, 'a.zip', 'x', { token: 'from-the-file-123' });
      expect(res.status).toBe(201);
      expect((await res.json()).download_url).toBe('https://env.example/assets/a.zip');
      await upload(server.url, 'b.zip', 'x', { token: 'from-the-file-123' });
      await upload(server.url, 'c.zip', 'x', { token: 'from-the-file-123' });
      expect((await (await fetch(`${server.url}/packages?format=json`)).json()).length).toBe(2);
    } finally {
      await server.stop();
    }
  });

  it('reads the token from AUTH_TOKEN_FILE', async () => {
    const tokenFile = await tempFile('token', 'token-from-a-mounted-secret\n');
    await chmod(tokenFile, 0o400);
    const server = await startServer({ env: { AUTH_TOKEN: '', AUTH_TOKEN_FILE: tokenFile } });
    try {
      expect((await upload(server.url, 'a.zip', 'x', { token: 'token-from-a-mounted-secret' })).status).toBe(201);
      expect(server.stdout.join('\n')).not.toContain('token-from-a-mounted-secret');
    } finally {
      await server.stop();
    }
  });

  it('with no token configured, generates one for the run and logs it once at WARN', async () => {
    const server = await startServer({ env: { AUTH_TOKEN: '' } });
    try {
      const warnings = server.logs().filter((l) => l.level === 'WARN' && l.module === 'config');
      expect(warnings).toHaveLength(1);
      const token = warnings[0]!.token as string;
      expect(warnings[0]!.message).toBe(`generated token for this run (no auth_token configured; uploads and deletes need it): ${token}`);
      expect(token.length).toBeGreaterThanOrEqual(32);
      expect((await upload(server.url, 'a.zip', 'x', { token: null })).status).toBe(401);
      expect((await upload(server.url, 'a.zip', 'x', { token })).status).toBe(201);
      // Only that line holds it (in its message and its field).
      expect(server.stdout.join('\n').split(token)).toHaveLength(3);
    } finally {
      await server.stop();
    }
  });
});
