import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rename, symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runToExit, startServer, type RunningServer } from '../helpers/server.js';
import { eventually } from '../helpers/storage-dir.js';
import { catalogZip, templateZip, zipOfSize } from '../helpers/packages.js';
import { catalogAdd } from '../helpers/speckit-catalog-client.js';
import { streamUpload, upload } from '../helpers/upload.js';
import { sha256 } from '../helpers/zip.js';

const TOKENS = {
  reader: 'reader-token-aaaaaaaaaaaaaaaa',
  writer: 'writer-token-bbbbbbbbbbbbbbbb',
  deleter: 'deleter-token-cccccccccccccccc',
  admin: 'admin-token-dddddddddddddddddd',
  rotated: 'rotated-token-eeeeeeeeeeeeeeee',
};
const entry = (name: string, scopes: string[], token: string) => `- name: ${name}\n  scopes: [${scopes.join(', ')}]\n  sha256: ${createHash('sha256').update(token).digest('hex')}\n`;
const TOKENS_YAML =
  entry('reader', ['read'], TOKENS.reader) +
  entry('writer', ['write'], TOKENS.writer) +
  entry('deleter', ['delete'], TOKENS.deleter) +
  entry('admin', ['read', 'write', 'delete'], TOKENS.admin);

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const basic = (token: string) => ({ authorization: `Basic ${Buffer.from(`someone:${token}`).toString('base64')}` });

/** A tokens file as Kubernetes mounts a Secret: the file is a symlink into a directory that is swapped whole. */
async function mountedTokens(content: string): Promise<{ path: string; replace(content: string): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'rs-tokens-'));
  let generation = 0;
  const write = async (text: string) => {
    const data = join(dir, `..${++generation}`);
    await mkdir(data);
    await writeFile(join(data, 'tokens.yaml'), text);
    await symlink(data, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  };
  await write(content);
  await symlink('..data/tokens.yaml', join(dir, 'tokens.yaml'));
  return { path: join(dir, 'tokens.yaml'), replace: write };
}

let server: RunningServer;
let tokens: Awaited<ReturnType<typeof mountedTokens>>;
beforeAll(async () => {
  tokens = await mountedTokens(TOKENS_YAML);
  server = await startServer({ env: { AUTH_TOKEN: '', TOKENS_FILE: tokens.path, READ_ACCESS: 'token', MAX_PACKAGES: '0', AUTH_FAILURES_PER_MINUTE: '1000' } });
  expect((await upload(server.url, 'spec-kit-template-claude-sh-v1.0.0.zip', 'one', { authorization: bearer(TOKENS.admin).authorization })).status).toBe(201);
  expect((await upload(server.url, 'ext.zip', await catalogZip('extension', { id: 'private-ext' }), { authorization: bearer(TOKENS.admin).authorization })).status).toBe(201);
});
afterAll(async () => {
  await server.stop();
});

/** The status of the answer to a request line written by hand, on a connection of its own. */
function rawStatus(url: string, head: string): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
    socket.write(head);
  });
}

async function problem(res: Response, status: number, challenge?: RegExp): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect((await res.json()).status).toBe(status);
  if (challenge) expect(res.headers.get('www-authenticate')).toMatch(challenge);
}

describe('scopes × operations', () => {
  const cases: [string, Record<string, string>][] = [
    ['no credential', {}],
    ['an unknown token', bearer('unknown-token-ffffffffffffff')],
    ['read', bearer(TOKENS.reader)],
    ['write', bearer(TOKENS.writer)],
    ['delete', bearer(TOKENS.deleter)],
  ];
  const expected: Record<string, [number, number, number]> = {
    // read /latest, upload, delete
    'no credential': [401, 401, 401],
    'an unknown token': [401, 401, 401],
    read: [200, 403, 403],
    write: [200, 201, 403],
    delete: [200, 403, 204],
  };

  it.each(cases)('%s', async (who, headers) => {
    const [read, write, remove] = expected[who]!;
    const latest = await fetch(`${server.url}/latest`, { headers });
    if (read === 200) expect(latest.status).toBe(200);
    else await problem(latest, 401, who === 'no credential' ? /^Bearer realm="release-server"$/ : /error="invalid_token"/);

    const name = `matrix-${who.replace(/\W/g, '')}.zip`;
    const uploaded = await upload(server.url, name, 'bytes', { authorization: headers.authorization ?? undefined, token: headers.authorization ? undefined : null });
    if (write === 201) expect(uploaded.status).toBe(201);
    else await problem(uploaded, write, write === 403 ? /error="insufficient_scope", scope="write"/ : /realm="release-server"/);

    await upload(server.url, `victim-${name}`, 'x', bearer(TOKENS.admin));
    const deleted = await fetch(`${server.url}/assets/victim-${name}`, { method: 'DELETE', headers });
    if (remove === 204) expect(deleted.status).toBe(204);
    else await problem(deleted, remove, remove === 403 ? /error="insufficient_scope", scope="delete"/ : /realm="release-server"/);
  });

  it('takes the same tokens as the password of HTTP Basic, for reads only', async () => {
    expect((await fetch(`${server.url}/latest`, { headers: basic(TOKENS.reader) })).status).toBe(200);
    await problem(await upload(server.url, 'basic-upload.zip', 'x', basic(TOKENS.writer)), 401, /^Bearer realm="release-server"$/);
    await problem(await fetch(`${server.url}/latest`, { headers: basic('wrong-password-000000000') }), 401, /invalid_token/);
  });
});

describe('private mode (read_access: token)', () => {
  const reads = [
    ['GET', '/latest'],
    ['GET', '/releases'],
    ['GET', '/releases/latest'],
    ['GET', '/releases/tags/v1.0.0'],
    ['GET', '/releases/assets/1'],
    ['GET', '/repos/acme/templates/releases'],
    ['GET', '/repos/acme/templates/releases/latest'],
    ['GET', '/repos/acme/templates/releases/tags/v1.0.0'],
    ['GET', '/repos/acme/templates/releases/assets/1'],
    ['GET', '/assets/spec-kit-template-claude-sh-v1.0.0.zip'],
    ['HEAD', '/assets/spec-kit-template-claude-sh-v1.0.0.zip'],
    ['GET', '/packages?format=json'],
    ['GET', '/packages'],
    ['GET', '/catalogs/extensions.json'],
    ['GET', '/catalogs/presets.json'],
    ['GET', '/catalogs/workflows.json'],
    ['GET', '/catalogs/extensions/private-ext'],
    ['GET', '/assets/extension-private-ext-1.0.0.zip'],
    ['GET', '/openapi.yaml'],
    ['GET', '/docs'],
    ['GET', '/metrics'],
  ] as const;

  it.each(reads)('%s %s needs a token, and any scope may read', async (method, path) => {
    const anonymous = await fetch(`${server.url}${path}`, { method });
    expect(anonymous.status).toBe(401);
    for (const token of [TOKENS.reader, TOKENS.writer, TOKENS.deleter]) {
      const res = await fetch(`${server.url}${path}`, { method, headers: bearer(token) });
      expect(res.status, `${method} ${path} with a token`).toBe(200);
    }
  });

  it('installs from a private catalog with the token a specify auth.json sends (Bearer or Basic :token), and not without', async () => {
    const project = await mkdtemp(join(tmpdir(), 'rs-private-project-'));
    const catalog = `${server.url}/catalogs/extensions.json`;
    await expect(catalogAdd(catalog, 'extension', 'private-ext', project)).rejects.toThrow('HTTP 401');
    expect((await catalogAdd(catalog, 'extension', 'private-ext', project, bearer(TOKENS.reader))).entry.id).toBe('private-ext');
    const azurePat = { authorization: `Basic ${Buffer.from(`:${TOKENS.reader}`).toString('base64')}` };
    const other = await mkdtemp(join(tmpdir(), 'rs-private-project-'));
    expect((await catalogAdd(catalog, 'extension', 'private-ext', other, azurePat)).entry.id).toBe('private-ext');
  });

  it('challenges browsers with Basic on HTML pages, API clients with Bearer', async () => {
    expect((await fetch(`${server.url}/packages`)).headers.get('www-authenticate')).toBe('Basic realm="release-server"');
    expect((await fetch(`${server.url}/docs`)).headers.get('www-authenticate')).toBe('Basic realm="release-server"');
    expect((await fetch(`${server.url}/packages?format=json`)).headers.get('www-authenticate')).toBe('Bearer realm="release-server"');
    expect((await fetch(`${server.url}/packages`, { headers: { accept: 'application/json' } })).headers.get('www-authenticate')).toBe('Bearer realm="release-server"');
    expect((await fetch(`${server.url}/latest`)).headers.get('www-authenticate')).toBe('Bearer realm="release-server"');
  });

  // fetch() drops a fragment; a client writing its own request line can send `#` inside the path, which Express
  // parses another way than the contract's validator does (Express cuts the path at `#`, the validator does not).
  it.each([
    ['GET', '/repos/acme/templates/releases', '/repos/acme#/templates/releases'],
    ['GET', '/repos/acme/templates/releases/latest', '/repos/acme/templates#/releases/latest'],
    ['GET', '/repos/acme/templates/releases/tags/v1.0.0', '/repos/acme#/templates/releases/tags/v1.0.0'],
    ['DELETE', '/assets/spec-kit-template-claude-sh-v1.0.0.zip', '/assets/#spec-kit-template-claude-sh-v1.0.0.zip'],
    ['POST', '/catalogs/extensions/private-ext/1.0.0/approve', '/catalogs/extensions/private-ext/1.0.0#/approve'],
  ] as const)('%s %s with a # in its path still needs a token', async (method, _plain, target) => {
    const status = await rawStatus(server.url, `${method} ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    expect(status, `${method} ${target}`).toBe(401);
  });

  it('keeps the probes open', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });
});

describe('rotation without restart', () => {
  it('a swapped tokens file takes effect within 5 s, and a download started before it completes', async () => {
    const big = zipOfSize(24 * 1024 * 1024);
    expect((await upload(server.url, 'long-download.zip', big, bearer(TOKENS.admin))).status).toBe(201);
    const download = await fetch(`${server.url}/assets/long-download.zip`, { headers: bearer(TOKENS.reader) });
    const reader = download.body!.getReader();
    const first = await reader.read();
    const pid = server.process.pid;

    await tokens.replace(TOKENS_YAML.replace(/- name: reader[\s\S]*?(?=- name: writer)/, '') + entry('rotated', ['read'], TOKENS.rotated));
    await eventually(async () => {
      expect((await fetch(`${server.url}/latest`, { headers: bearer(TOKENS.reader) })).status).toBe(401);
      expect((await fetch(`${server.url}/latest`, { headers: bearer(TOKENS.rotated) })).status).toBe(200);
    }, 5000);
    expect(server.process.pid).toBe(pid);
    expect(server.process.exitCode).toBeNull();

    const chunks = [Buffer.from(first.value!)];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
    }
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(big));
  });

  it('keeps the tokens in force when the new file is broken, and says so', async () => {
    await tokens.replace('- name: [this is not\n');
    await eventually(() => expect(server.logs().some((l) => l.level === 'ERROR' && l.message.includes('tokens file rejected'))).toBe(true), 5000);
    expect((await fetch(`${server.url}/latest`, { headers: bearer(TOKENS.rotated) })).status).toBe(200);
    // and reloads on SIGHUP
    await tokens.replace(TOKENS_YAML);
    server.process.kill('SIGHUP');
    await eventually(async () => expect((await fetch(`${server.url}/latest`, { headers: bearer(TOKENS.reader) })).status).toBe(200), 5000);
  });
});

describe('audit', () => {
  it('logs every write and delete with token name, operation, package, size, sha256, client and status, and no secret anywhere', async () => {
    const audited = await templateZip('audited bytes');
    await upload(server.url, 'audited.zip', audited, bearer(TOKENS.writer));
    await fetch(`${server.url}/assets/audited.zip`, { method: 'DELETE', headers: bearer(TOKENS.writer) });
    await fetch(`${server.url}/assets/audited.zip`, { method: 'DELETE', headers: bearer(TOKENS.admin) });
    await eventually(() => {
      const audit = server.logs().filter((l) => l.module === 'audit' && l.package === 'audited.zip');
      expect(audit).toHaveLength(3);
      expect(audit[0]).toMatchObject({ level: 'INFO', token: 'writer', operation: 'uploadPackage', size: audited.length, sha256: sha256(audited), client: '127.0.0.1', status: 201 });
      expect(audit[1]).toMatchObject({ token: 'writer', operation: 'deleteAsset', status: 403 });
      expect(audit[2]).toMatchObject({ token: 'admin', operation: 'deleteAsset', status: 204 });
    });
    const everything = server.stdout.join('\n') + server.stderr.join('');
    for (const token of Object.values(TOKENS)) expect(everything).not.toContain(token);
  });
});

describe('request lines', () => {
  it('never carry credentials a client put in the request target (absolute form with user:password@), nor the query', async () => {
    const { port } = new URL(server.url);
    for (const target of [`http://someone:${TOKENS.reader}@127.0.0.1:${port}/latest`, `/latest?token=${TOKENS.writer}`]) {
      await rawStatus(server.url, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    }
    await eventually(() => expect(server.logs().filter((l) => l.module === 'http' && String(l.message).includes('/latest')).length).toBeGreaterThanOrEqual(2));
    const everything = server.stdout.join('\n');
    expect(everything).not.toContain(TOKENS.reader);
    expect(everything).not.toContain(TOKENS.writer);
  });
});

describe('failed authentications', () => {
  it('past the limit, answer 429 with Retry-After to that address only, even with a good token, and warn once', async () => {
    const limited = await startServer({ env: { AUTH_TOKEN: '', TOKENS_FILE: tokens.path, READ_ACCESS: 'token', AUTH_FAILURES_PER_MINUTE: '3' } });
    try {
      const from = (address: string, headers: Record<string, string> = {}) => fetch(`${limited.url}/latest`, { headers: { 'x-forwarded-for': address, ...headers } });
      // Requests without a credential guess nothing and are not counted; wrong tokens are.
      for (let i = 0; i < 5; i++) expect((await from('203.0.113.7')).status).toBe(401);
      for (let i = 0; i < 3; i++) expect((await from('203.0.113.7', bearer('wrong-token-00000000000000'))).status).toBe(401);
      const blocked = await from('203.0.113.7', bearer(TOKENS.admin));
      expect(blocked.status).toBe(429);
      const wait = Number(blocked.headers.get('retry-after'));
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(60);
      expect((await from('203.0.113.7', bearer(TOKENS.admin))).status).toBe(429);
      // another address is not slowed, and a 403 does not count
      expect((await from('198.51.100.1', bearer(TOKENS.admin))).status).toBe(200);
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${limited.url}/upload`, { method: 'POST', headers: { 'x-forwarded-for': '198.51.100.2', ...bearer(TOKENS.reader) }, body: new FormData() });
        expect(res.status).toBe(403);
      }
      expect((await from('198.51.100.2', bearer(TOKENS.admin))).status).toBe(200);
      await eventually(() => expect(limited.logs().filter((l) => l.level === 'WARN' && l.module === 'auth' && l.client === '203.0.113.7')).toHaveLength(1));
    } finally {
      await limited.stop();
    }
  });
});

describe('start-up', () => {
  it.each([
    ['an entry without a scope', '- name: ci\n  scopes: []\n  sha256: ' + '0'.repeat(64) + '\n', 'entry 1 ("ci")'],
    ['an unknown scope', '- name: ci\n  scopes: [admin]\n  sha256: ' + '0'.repeat(64) + '\n', 'entry 1 ("ci")'],
    ['a bad hash', '- name: ci\n  scopes: [read]\n  sha256: abc\n', 'entry 1 ("ci")'],
    ['a duplicate name', entry('ci', ['read'], 'x'.repeat(20)) + entry('ci', ['write'], 'y'.repeat(20)), '"ci" is used twice'],
  ])('refuses a tokens file with %s, naming the entry', async (_what, yaml, mention) => {
    const dir = await mkdtemp(join(tmpdir(), 'rs-badtokens-'));
    await writeFile(join(dir, 'tokens.yaml'), yaml);
    const { code, stdout } = await runToExit({ STORAGE_PATH: join(dir, 'data'), CONFIG_PATH: join(dir, 'none.yaml'), TOKENS_FILE: join(dir, 'tokens.yaml') });
    expect(code).not.toBe(0);
    const messages = stdout.trim().split('\n').map((l) => JSON.parse(l).message as string);
    expect(messages.some((m) => m.includes(mention))).toBe(true);
  });

  it('refuses an auth token shorter than 16 characters', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rs-short-'));
    const { code, stdout } = await runToExit({ STORAGE_PATH: dir, CONFIG_PATH: join(dir, 'none.yaml'), AUTH_TOKEN: 'too-short' });
    expect(code).not.toBe(0);
    expect(stdout).toContain('shorter than 16 characters');
    expect(stdout).not.toContain('too-short');
  });
});

describe('public mode', () => {
  it('keeps reads open and ignores foreign tokens, while writes still need a scope', async () => {
    const open = await startServer({ env: { AUTH_TOKEN: '', TOKENS_FILE: tokens.path } });
    try {
      expect((await fetch(`${open.url}/latest`)).status).toBe(200);
      expect((await fetch(`${open.url}/latest`, { headers: bearer('ghp_github_token_not_ours') })).status).toBe(200);
      expect((await upload(open.url, 'pub.zip', 'x', bearer(TOKENS.reader))).status).toBe(403);
      expect((await streamUpload(open.url, 'streamed.zip', 1024)) as { status: number }).toMatchObject({ status: 401 });
    } finally {
      await open.stop();
    }
  });
});
