import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { upload } from '../helpers/upload.js';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.stop();
});

describe('probes', () => {
  it('answers /healthz with 200 OK as text', async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('OK');
  });

  it('answers /readyz with 200 once storage and index are ready', async () => {
    const res = await fetch(`${server.url}/readyz`);
    expect(res.status).toBe(200);
  });
});

describe('readiness follows storage', () => {
  it('answers 503 problem+json while storage cannot be written, and 200 again once it can', async () => {
    const other = await startServer();
    try {
      // The staging area is where the probe writes; take it away as a failing volume would.
      await rm(join(other.storagePath, '.release-server', 'tmp'), { recursive: true });
      const res = await fetch(`${other.url}/readyz`);
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect((await res.json()).detail).toContain('not readable and writable');
      expect((await fetch(`${other.url}/healthz`)).status).toBe(200);
      await mkdir(join(other.storagePath, '.release-server', 'tmp'));
      expect((await fetch(`${other.url}/readyz`)).status).toBe(200);
    } finally {
      await other.stop();
    }
  });
});

describe('contract and docs', () => {
  it('serves the contract it validates against, byte for byte', async () => {
    const res = await fetch(`${server.url}/openapi.yaml`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/yaml/);
    const file = await readFile(new URL('../../contracts/openapi.yaml', import.meta.url), 'utf8');
    expect(await res.text()).toBe(file);
  });

  it('serves Redoc docs that load nothing from another host', async () => {
    const res = await fetch(`${server.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('Release Server');
    expect(html).toContain('uploadPackage');
    // No script or stylesheet pulled from elsewhere (the browser test loads the page with the internet cut off).
    expect(/<script[^>]+src=/i.test(html)).toBe(false);
    expect(/<link[^>]+href=["']?(https?:)?\/\//i.test(html)).toBe(false);
    expect(/fonts\.googleapis/i.test(html)).toBe(false);
    // and the browser is told to fetch nothing from any other host, whatever the bundle points at.
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    for (const directive of csp.split(';')) expect(directive).not.toMatch(/https?:|\*/);
  });
});

describe('errors', () => {
  it('answers an unknown path with 404 problem+json', async () => {
    const res = await fetch(`${server.url}/no/such/thing`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = await res.json();
    expect(problem).toMatchObject({ status: 404, title: 'Not Found', instance: '/no/such/thing' });
    expect(problem.type).toMatch(/^urn:release-server:problem:/);
  });

  it('answers a method the contract does not have with 405', async () => {
    const res = await fetch(`${server.url}/latest`, { method: 'PUT' });
    expect(res.status).toBe(405);
    expect((await res.json()).status).toBe(405);
  });

  it('refuses unknown query parameters with 400', async () => {
    const res = await fetch(`${server.url}/packages?colour=blue`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });
});

describe('logs', () => {
  it('writes every stdout line as one JSON object with level, message, timestamp and module', async () => {
    await fetch(`${server.url}/latest`);
    await fetch(`${server.url}/nothing-here`);
    const lines = server.stdout.filter((l) => l.trim() !== '');
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) {
      const entry = JSON.parse(line);
      expect(entry.level).toMatch(/^(TRACE|DEBUG|INFO|WARN|ERROR|FATAL)$/);
      expect(typeof entry.message).toBe('string');
      expect(new Date(entry.timestamp).toISOString()).toBe(entry.timestamp);
      expect(typeof entry.module).toBe('string');
    }
  });

  it('logs each request with method, path, status, duration and bytes; 4xx at WARN', async () => {
    await fetch(`${server.url}/latest`);
    await fetch(`${server.url}/assets/missing.zip`);
    await new Promise((r) => setTimeout(r, 50));
    const requests = server.logs().filter((l) => l.module === 'http');
    const ok = requests.find((l) => (l.req as { path: string; method: string }).path === '/latest' && (l.req as { method: string }).method === 'GET');
    expect(ok).toMatchObject({ level: 'INFO', req: { method: 'GET', path: '/latest' }, res: { status: 200 } });
    expect(typeof ok!.duration).toBe('number');
    expect(ok!.bytes).toBeGreaterThan(0);
    const missing = requests.find((l) => (l.req as { path: string }).path === '/assets/missing.zip');
    expect(missing).toMatchObject({ level: 'WARN', res: { status: 404 } });
  });

  it('never logs the Authorization header or the token', async () => {
    await upload(server.url, 'logged.zip', 'bytes');
    await fetch(`${server.url}/latest`, { headers: { authorization: 'Bearer ghp_foreign_github_token_abc' } });
    await fetch(`${server.url}/assets/logged.zip`, { method: 'DELETE', headers: { authorization: 'Bearer wrong-token-xyz' } });
    await new Promise((r) => setTimeout(r, 50));
    const all = server.stdout.join('\n');
    expect(all).toContain('/upload');
    for (const secret of [TOKEN, 'ghp_foreign_github_token_abc', 'wrong-token-xyz']) expect(all).not.toContain(secret);
    expect(all.toLowerCase()).not.toContain('authorization');
  });
});

describe('shutdown', () => {
  it('exits 0 on SIGTERM after finishing what is in flight', async () => {
    const other = await startServer();
    const pending = fetch(`${other.url}/latest`);
    other.process.kill('SIGTERM');
    const [res, code] = await Promise.all([pending.catch(() => null), other.exited]);
    if (res) expect(res.status).toBe(200);
    expect(code).toBe(0);
    expect(other.logs().some((l) => l.message === 'stopped')).toBe(true);
  });
});
