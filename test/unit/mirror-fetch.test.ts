import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Writable, type Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ByteBudget,
  createSourceFetcher,
  fetchBytes,
  fetchCatalog,
  fetchToSink,
  FetchError,
  Limiter,
  parseSha256,
  verifySha256,
  type FetchOptions,
} from '../../src/mirror/fetch.js';
import { parseSources } from '../../src/mirror/sources.js';
import { isLocalHost, isLoopbackHost, redirectRefusal, resolvedAddressRefusal, urlRefusal } from '../../src/mirror/urls.js';
import { buildUpstreamFixture, startUpstreamCatalog, type UpstreamCatalog, type UpstreamFixture } from '../helpers/upstream-catalog.js';
import { readZip, sha256 } from '../helpers/zip.js';

let upstream: UpstreamCatalog;
let other: UpstreamCatalog;
let fixture: UpstreamFixture;
const base: FetchOptions = { maxBytes: 50 * 1024 * 1024, timeoutMs: 5000 };

beforeAll(async () => {
  [upstream, other] = await Promise.all([startUpstreamCatalog(), startUpstreamCatalog()]);
  fixture = await buildUpstreamFixture(upstream);
  await buildUpstreamFixture(other);
});
afterAll(async () => {
  await Promise.all([upstream?.stop(), other?.stop()]);
});
beforeEach(async () => {
  await Promise.all([upstream.reset(), other.reset()]);
  // reset forgets the fixture's rule for `changing`; set it again.
  await upstream.rule('/releases/changing-1.0.0.zip', { versions: ['releases/changing-1.0.0.zip', fixture.changedPath] });
});

/** The FetchError a promise rejects with. */
async function refusal(promise: Promise<unknown>): Promise<FetchError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof FetchError) return err;
    throw err;
  }
  throw new Error('expected a FetchError, the fetch succeeded');
}

/** A Writable that keeps what it gets. */
function collector(): Writable & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  return Object.assign(sink, { bytes: () => Buffer.concat(chunks) });
}

describe('the upstream catalog server (a second process)', () => {
  it('runs in another process and serves the fixture', async () => {
    expect(upstream.process.pid).not.toBe(process.pid);
    const res = await fetch(`${upstream.url}/${fixture.catalogs.extension}`);
    expect(res.status).toBe(200);
    expect(Object.keys(((await res.json()) as { extensions: object }).extensions)).toContain('hostile');
  });

  it('builds a realistic fixture: a tag archive with one top-level directory, a hostile archive, sha256 forms', async () => {
    const tag = await readZip(fixture.entries['tag-archive']!.bytes!);
    expect(new Set(Object.keys(tag).map((name) => name.split('/')[0]))).toEqual(new Set(['spec-kit-tag-archive-0.3.0']));
    expect(fixture.entries.hostile!.bytes!.includes(Buffer.from('../evil'))).toBe(true);
    expect(fixture.entries['bare-sha']!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(fixture.entries['prefixed-sha']!.sha256).toMatch(/^SHA256:[0-9A-F]{64}$/);
    expect(fixture.entries['bad-sha']!.sha256).not.toBe(sha256(fixture.entries['bad-sha']!.bytes!));
    expect(fixture.entries['tag-archive']!.sha256).toBeUndefined();
  });
});

describe('fetchToSink', () => {
  it('streams into a Writable while hashing, and says what it got', async () => {
    const entry = fixture.entries['bare-sha']!;
    const sink = collector();
    const result = await fetchToSink(`${upstream.url}/${entry.path}`, sink, base);
    expect(result).toEqual({ sha256: sha256(entry.bytes!), size: entry.bytes!.length, contentType: 'application/zip', finalUrl: `${upstream.url}/${entry.path}` });
    expect(sink.bytes().equals(entry.bytes!)).toBe(true);
  });

  it('streams into an async function reading the body', async () => {
    const entry = fixture.entries['tag-archive']!;
    let read = Buffer.alloc(0);
    const result = await fetchToSink(`${upstream.url}/${entry.path}`, async (body: Readable) => {
      for await (const chunk of body) read = Buffer.concat([read, chunk as Buffer]);
    }, base);
    expect(read.equals(entry.bytes!)).toBe(true);
    expect(result.sha256).toBe(sha256(entry.bytes!));
  });

  it('refuses a sink function that returns before reading the whole body', async () => {
    const err = await refusal(fetchToSink(`${upstream.url}/${fixture.entries['bare-sha']!.path}`, async () => {}, base));
    expect(err.code).toBe('sink');
  });

  it('verifies a declared sha256, bare or prefixed, and refuses bytes that do not match', async () => {
    for (const id of ['bare-sha', 'prefixed-sha']) {
      const entry = fixture.entries[id]!;
      await expect(fetchBytes(`${upstream.url}/${entry.path}`, { ...base, expectedSha256: entry.sha256! })).resolves.toMatchObject({ sha256: sha256(entry.bytes!) });
    }
    const bad = fixture.entries['bad-sha']!;
    const err = await refusal(fetchBytes(`${upstream.url}/${bad.path}`, { ...base, expectedSha256: bad.sha256! }));
    expect(err.code).toBe('sha256-mismatch');
    expect(err.message).toContain(`the bytes' sha256 is ${sha256(bad.bytes!)}`);
  });

  it('sees an archive changed upstream: the second fetch of the same URL hashes differently', async () => {
    const url = `${upstream.url}/${fixture.entries.changing!.path}`;
    const first = await fetchBytes(url, base);
    const second = await fetchBytes(url, base);
    expect(first.sha256).toBe(sha256(fixture.entries.changing!.bytes!));
    expect(second.sha256).not.toBe(first.sha256);
    expect((await upstream.stats()).requests['/releases/changing-1.0.0.zip']).toBe(2);
  });

  it('refuses a declared Content-Length over the cap before reading the body', async () => {
    const entry = fixture.entries['bare-sha']!;
    const sink = collector();
    const err = await refusal(fetchToSink(`${upstream.url}/${entry.path}`, sink, { ...base, maxBytes: entry.bytes!.length - 1 }));
    expect(err.code).toBe('too-large');
    expect(sink.bytes().length).toBe(0);
    // Exactly at the cap is fine.
    await expect(fetchBytes(`${upstream.url}/${entry.path}`, { ...base, maxBytes: entry.bytes!.length })).resolves.toMatchObject({ size: entry.bytes!.length });
  });

  it('stops mid-stream at the chunk that crosses the cap, with no Content-Length, and closes the connection', async () => {
    const sink = collector();
    const cap = 1024 * 1024;
    const err = await refusal(fetchToSink(`${upstream.url}/__endless.zip`, sink, { ...base, maxBytes: cap }));
    expect(err.code).toBe('too-large');
    expect(sink.bytes().length).toBeLessThanOrEqual(cap);
    // The server sees the client go away instead of writing forever.
    await expect.poll(async () => (await upstream.stats()).endless.closed, { timeout: 3000 }).toBe(1);
    expect((await upstream.stats()).endless.bytesWritten).toBeLessThan(cap * 8);
  });

  it('stops a dripped body (no Content-Length) over the cap', async () => {
    await writeFile(`${upstream.root}/big.zip`, Buffer.alloc(10_000, 7));
    await upstream.rule('/big.zip', { dripBytes: 256, dripIntervalMs: 1 });
    const sink = collector();
    const err = await refusal(fetchToSink(`${upstream.url}/big.zip`, sink, { ...base, maxBytes: 1000 }));
    expect(err.code).toBe('too-large');
    expect(sink.bytes().length).toBe(768);
  });

  it('shares a byte budget across fetches and refuses the one that would overspend it', async () => {
    const a = fixture.entries['bare-sha']!;
    const b = fixture.entries['prefixed-sha']!;
    const budget = new ByteBudget(a.bytes!.length + 10);
    await fetchBytes(`${upstream.url}/${a.path}`, { ...base, budget });
    expect(budget.used).toBe(a.bytes!.length);
    const err = await refusal(fetchBytes(`${upstream.url}/${b.path}`, { ...base, budget }));
    expect(err.code).toBe('budget');
    // Mid-stream too, when no length is declared.
    await upstream.rule(`/${b.path}`, { dripBytes: 4, dripIntervalMs: 0 });
    expect((await refusal(fetchBytes(`${upstream.url}/${b.path}`, { ...base, budget }))).code).toBe('budget');
    expect(budget.used).toBeLessThanOrEqual(budget.limit);
  });

  it('times out a server that does not answer, and one that drips past the deadline', async () => {
    const entry = fixture.entries['bare-sha']!;
    await upstream.rule(`/${entry.path}`, { delayMs: 2000 });
    const started = Date.now();
    const err = await refusal(fetchBytes(`${upstream.url}/${entry.path}`, { ...base, timeoutMs: 200 }));
    expect(err.code).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(1500);
    await upstream.rule(`/${entry.path}`, { dripBytes: 64, dripIntervalMs: 50 });
    const dripped = await refusal(fetchBytes(`${upstream.url}/${entry.path}`, { ...base, timeoutMs: 1000, deadlineMs: 300 }));
    expect(dripped.code).toBe('timeout');
    expect(dripped.message).toContain('not done within 0.3 s');
  });

  it('answers a non-2xx status as http-status, and a closed port as network', async () => {
    await upstream.rule('/gone.zip', { status: 404 });
    expect((await refusal(fetchBytes(`${upstream.url}/gone.zip`, base))).code).toBe('http-status');
    const stopped = await startUpstreamCatalog();
    const url = `${stopped.url}/x.zip`;
    await stopped.stop();
    expect((await refusal(fetchBytes(url, base))).code).toBe('network');
  });

  it('keeps to the concurrency limit', async () => {
    const limiter = new Limiter(2);
    const entry = fixture.entries['bare-sha']!;
    await upstream.rule(`/${entry.path}`, { delayMs: 150 });
    await Promise.all(Array.from({ length: 6 }, () => fetchBytes(`${upstream.url}/${entry.path}`, { ...base, limiter })));
    const stats = await upstream.stats();
    expect(stats.requests[`/${entry.path}`]).toBe(6);
    expect(stats.maxDelayed).toBe(2);
  });

  it('stops when the sync is aborted', async () => {
    const entry = fixture.entries['bare-sha']!;
    await upstream.rule(`/${entry.path}`, { delayMs: 2000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    expect((await refusal(fetchBytes(`${upstream.url}/${entry.path}`, { ...base, signal: controller.signal }))).code).toBe('aborted');
  });
});

describe('URL and redirect rules', () => {
  it('refuses http to a host that is not loopback, other schemes, and a URL with no host, before connecting', async () => {
    for (const [url, message] of [
      ['http://example.com/x.zip', 'must be https (plain http only on loopback)'],
      ['ftp://example.com/x.zip', 'must be an https URL, not ftp'],
      ['file:///etc/passwd', 'must be an https URL, not file'],
      ['not a url', 'is not an absolute URL'],
    ]) {
      const err = await refusal(fetchBytes(url!, base));
      expect(err.code, url).toBe('url');
      expect(err.message).toContain(message);
    }
  });

  it('follows a redirect to another loopback port, re-checks every hop, and refuses one to plain http elsewhere', async () => {
    const entry = fixture.entries['bare-sha']!;
    await upstream.rule('/moved.zip', { redirect: `${upstream.url}/hop.zip`, status: 301 });
    await upstream.rule('/hop.zip', { redirect: `${other.url}/${entry.path}`, status: 307 });
    const result = await fetchBytes(`${upstream.url}/moved.zip`, base);
    expect(result.finalUrl).toBe(`${other.url}/${entry.path}`);
    expect(result.sha256).toBe(sha256(entry.bytes!));
    await upstream.rule('/hop.zip', { redirect: 'http://example.com/x.zip' });
    const err = await refusal(fetchBytes(`${upstream.url}/moved.zip`, base));
    expect(err.code).toBe('redirect');
    expect(err.message).toBe('redirect to http://example.com/x.zip refused: it must be https (plain http only on loopback)');
    expect(err.url).toBe(`${upstream.url}/moved.zip`);
  });

  it('refuses a redirect loop past the limit and a redirect without a Location', async () => {
    await upstream.rule('/loop.zip', { redirect: `${upstream.url}/loop.zip` });
    const err = await refusal(fetchBytes(`${upstream.url}/loop.zip`, { ...base, maxRedirects: 3 }));
    expect(err.code).toBe('redirect');
    expect(err.message).toBe('more than 3 redirects');
    expect((await upstream.stats()).requests['/loop.zip']).toBe(4);
  });

  it('sends the source\'s headers to its own host, and drops them once a redirect leaves it', async () => {
    const entry = fixture.entries['bare-sha']!;
    const headers = { Authorization: 'Bearer upstream-secret' };
    await upstream.rule(`/${entry.path}`, { requireHeader: { name: 'Authorization', value: 'Bearer upstream-secret' } });
    await expect(fetchBytes(`${upstream.url}/${entry.path}`, { ...base, headers })).resolves.toMatchObject({ size: entry.bytes!.length });
    expect((await refusal(fetchBytes(`${upstream.url}/${entry.path}`, base))).code).toBe('http-status');

    // Same host, then another port (another host), then back: the header reaches neither of the last two.
    await upstream.rule('/away.zip', { redirect: `${other.url}/back.zip` });
    await other.rule('/back.zip', { redirect: `${upstream.url}/${entry.path}` });
    const err = await refusal(fetchBytes(`${upstream.url}/away.zip`, { ...base, headers }));
    expect(err.message).toContain('answered HTTP 401');
    const seen = [...(await upstream.stats()).log, ...(await other.stats()).log].map((l) => [l.path, l.headers.authorization ?? null]);
    expect(seen).toContainEqual(['/away.zip', 'Bearer upstream-secret']);
    expect(seen).toContainEqual(['/back.zip', null]);
    expect(seen.filter(([path, auth]) => path === `/${entry.path}` && auth === null).length).toBeGreaterThanOrEqual(1);

    // A host not among the credential hosts never gets them, even on the first request.
    await other.reset();
    await fetchBytes(`${other.url}/${entry.path}`, { ...base, headers, credentialHosts: [new URL(upstream.url).host] });
    expect((await other.stats()).log[0]!.headers.authorization).toBeUndefined();
  });

  it('asks for no compression', async () => {
    await fetchBytes(`${upstream.url}/${fixture.entries['bare-sha']!.path}`, base);
    expect((await upstream.stats()).log[0]!.headers['accept-encoding']).toBe('identity');
  });

  it('refuses a link from a remote catalog to a local address, as a redirect', async () => {
    const err = await refusal(fetchBytes(`${upstream.url}/${fixture.entries['bare-sha']!.path}`, { ...base, referrer: 'https://raw.githubusercontent.com/x/catalog.json' }));
    expect(err.code).toBe('url');
    expect(err.message).toContain(`link from raw.githubusercontent.com to the local address 127.0.0.1:${upstream.port} refused`);
    await expect(fetchBytes(`${upstream.url}/${fixture.entries['bare-sha']!.path}`, { ...base, referrer: `${upstream.url}/catalog.json` })).resolves.toBeTruthy();
  });

  it('classifies hosts as the CLI does, and a server more strictly', () => {
    for (const host of ['localhost', '127.0.0.1', '127.8.9.1', '[::1]', '[::ffff:7f00:1]']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['example.com', '0.0.0.0', '[::]', '169.254.169.254', 'localhost.example.com', '10.0.0.1']) expect(isLoopbackHost(host), host).toBe(false);
    for (const host of ['localhost', 'api.localhost', '0.0.0.0', '[::]', '169.254.169.254', '[fe80::1]', '[::ffff:0.0.0.0]', '127.0.0.1']) expect(isLocalHost(host), host).toBe(true);
    expect(isLocalHost('example.com')).toBe(false);
    expect(urlRefusal('http://[::1]:8080/x')).toBeNull();
    expect(urlRefusal('http://0.0.0.0/x')).toContain('must be https');
    const remote = new URL('https://raw.githubusercontent.com/a');
    expect(redirectRefusal(remote, new URL('https://127.0.0.1/x'))).toContain('to the local address 127.0.0.1 refused');
    expect(redirectRefusal(remote, new URL('https://169.254.169.254/latest/meta-data'))).toContain('refused');
    expect(redirectRefusal(remote, new URL('https://[::]/x'))).toContain('refused');
    expect(redirectRefusal(remote, new URL('https://objects.githubusercontent.com/x'))).toBeNull();
    expect(redirectRefusal(new URL('http://127.0.0.1:1/a'), new URL('http://localhost:2/b'))).toBeNull();
    expect(redirectRefusal(remote, new URL('http://objects.githubusercontent.com/x'))).toContain('must be https');
    expect(resolvedAddressRefusal('evil.example', '127.0.0.1')).toBe('evil.example resolves to the local address 127.0.0.1, refused');
    expect(resolvedAddressRefusal('evil.example', '::ffff:169.254.169.254')).toContain('refused');
    expect(resolvedAddressRefusal('evil.example', '140.82.112.3')).toBeNull();
    expect(resolvedAddressRefusal('localhost', '127.0.0.1')).toBeNull();
  });
});

describe('sha256 rules', () => {
  const hex = createHash('sha256').update('x').digest('hex');

  it('takes 64 hex digits, bare or after a case-insensitive sha256: prefix, in any case', () => {
    expect(parseSha256(hex)).toBe(hex);
    expect(parseSha256(` SHA256:${hex.toUpperCase()} `)).toBe(hex);
    expect(parseSha256(`sha256: ${hex}`)).toBe(hex);
    expect(verifySha256(`Sha256:${hex}`, hex)).toBe(hex);
  });

  it('refuses blank, short, other algorithms and a mismatch', () => {
    for (const bad of ['', '   ', 'sha256:', hex.slice(1), `md5:${hex}`, `${hex}0`, 'g'.repeat(64)]) {
      let err: FetchError | null = null;
      try {
        parseSha256(bad);
      } catch (e) {
        err = e as FetchError;
      }
      expect(err?.code, bad).toBe('sha256-invalid');
    }
    expect(() => verifySha256(hex, 'a'.repeat(64))).toThrow(/the bytes' sha256 is a{64}, the catalog declares/);
    expect(() => verifySha256('', hex)).toThrow(/not 64 hexadecimal digits/);
  });
});

describe('fetchCatalog', () => {
  it('fetches, parses and normalises every kind of the fixture', async () => {
    const extension = await fetchCatalog('extension', fixture.catalogUrls.extension, base);
    expect(extension.entries.map((e) => e.id)).toEqual(['bare-sha', 'prefixed-sha', 'tag-archive', 'bad-sha', 'hostile', 'changing', 'bundled-only', 'no-url']);
    expect(extension.entries.find((e) => e.id === 'prefixed-sha')!.sha256).toBe(fixture.entries['prefixed-sha']!.sha256);
    const step = await fetchCatalog('step', fixture.catalogUrls.step, base);
    expect(step.entries.find((e) => e.id === 'step-explicit')!.download).toEqual({
      type: 'step-files',
      files: [
        { path: 'step.yml', url: `${upstream.url}/steps/step-explicit/step.yml` },
        { path: '__init__.py', url: `${upstream.url}/steps/step-explicit/__init__.py` },
        { path: 'helpers/util.py', url: `${upstream.url}/steps/step-explicit/helpers/util.py` },
      ],
    });
    const workflow = await fetchCatalog('workflow', fixture.catalogUrls.workflow, base);
    expect(workflow.entries[0]).toMatchObject({ id: 'flow-yaml', download: { type: 'url', url: `${upstream.url}/acme/flow/v1.1.0/workflow.yml` } });
    expect((await fetchCatalog('bundle', fixture.catalogUrls.bundle, base)).entries[0]!.sha256).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((await fetchCatalog('integration', fixture.catalogUrls.integration, base)).entries[0]!.download.type).toBe('none');
    expect((await fetchCatalog('preset', fixture.catalogUrls.preset, base)).entries.map((e) => e.id)).toEqual(['preset-sha', 'preset-plain']);
  });

  it('caps catalogs at 8 MiB, integration catalogs at 1 MiB, and refuses what is not JSON', async () => {
    const padded = (bytes: number) => JSON.stringify({ schema_version: '1.0', integrations: {}, pad: 'x'.repeat(bytes) });
    await writeFile(`${upstream.root}/big-integrations.json`, padded(1024 * 1024));
    expect((await refusal(fetchCatalog('integration', `${upstream.url}/big-integrations.json`, base))).code).toBe('too-large');
    await writeFile(`${upstream.root}/ok-integrations.json`, padded(1024 * 1024 - 100));
    await expect(fetchCatalog('integration', `${upstream.url}/ok-integrations.json`, base)).resolves.toMatchObject({ entries: [] });
    await writeFile(`${upstream.root}/big-extensions.json`, JSON.stringify({ schema_version: '1.0', extensions: {}, pad: 'x'.repeat(8 * 1024 * 1024) }));
    expect((await refusal(fetchCatalog('extension', `${upstream.url}/big-extensions.json`, base))).code).toBe('too-large');
    await writeFile(`${upstream.root}/broken.json`, '{"schema_version": "1.0", "extensions": {');
    const broken = await refusal(fetchCatalog('extension', `${upstream.url}/broken.json`, base));
    expect(broken.code).toBe('catalog');
    expect(broken.message).toContain('is not JSON');
    const wrong = await refusal(fetchCatalog('preset', fixture.catalogUrls.extension, base));
    expect(wrong.code).toBe('catalog');
    expect(wrong.message).toContain('the preset catalog has no "presets" key');
  });
});

describe('createSourceFetcher', () => {
  it('binds a source: its headers (read per fetch), hosts, limits, one budget and limiter for the sync', async () => {
    const [source] = parseSources(
      [{ name: 'local', catalogs: { extension: fixture.catalogUrls.extension }, headers: { Authorization: { env: 'UPSTREAM_TOKEN', prefix: 'Bearer ' } }, max_file_bytes: 2000, concurrency: 1 }],
      { UPSTREAM_TOKEN: 't1' },
    );
    const env = { UPSTREAM_TOKEN: 't1' };
    await upstream.rule(`/${fixture.catalogs.extension}`, { requireHeader: { name: 'Authorization', value: 'Bearer t2' } });
    const fetcher = createSourceFetcher(source!, { env });
    expect((await refusal(fetcher.catalog('extension'))).message).toContain('HTTP 401');
    env.UPSTREAM_TOKEN = 't2';
    const catalog = await fetcher.catalog('extension');
    expect(catalog.entries.find((e) => e.id === 'tag-archive')!.download.type).toBe('url');
    // The per-file cap is the source's.
    await writeFile(`${upstream.root}/over-2000.zip`, Buffer.alloc(2001));
    expect((await refusal(fetcher.download(`${upstream.url}/over-2000.zip`, collector(), { referrer: catalog.url }))).code).toBe('too-large');
    // No header on a URL of another host than the catalog's.
    await other.reset();
    await fetcher.download(`${other.url}/${fixture.entries['bare-sha']!.path}`, collector(), { referrer: catalog.url });
    expect((await other.stats()).log[0]!.headers.authorization).toBeUndefined();
    const small = await fetchBytes(`${upstream.url}/steps/step-derived/step.yml`, base);
    const result = await fetcher.download(`${upstream.url}/steps/step-derived/step.yml`, collector(), { referrer: catalog.url, expectedSha256: small.sha256 });
    expect(result.sha256).toBe(small.sha256);
    expect(fetcher.budget.used).toBeGreaterThan(small.size);
    expect(() => fetcher.catalog('bundle')).toThrow('source "local" has no bundle catalog');
  });
});
