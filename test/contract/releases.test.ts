import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../helpers/server.js';
import { specifyInit } from '../helpers/specify-client.js';
import { upload } from '../helpers/upload.js';
import { makeZip, readZip, sha256 } from '../helpers/zip.js';

let server: RunningServer;
let proxied: RunningServer;
beforeAll(async () => {
  [server, proxied] = await Promise.all([
    startServer({ env: { MAX_PACKAGES: '0' } }),
    startServer({ env: { PUBLIC_URL: 'https://releases.example.com/spec/' } }),
  ]);
});
afterAll(async () => {
  await Promise.all([server.stop(), proxied.stop()]);
});

interface Release {
  tag_name: string;
  name: string;
  assets: { id: number; name: string; size: number; digest: string; browser_download_url: string; content_type: string; state: string; download_count: number }[];
}

const latest = async (base: string, headers: Record<string, string> = {}): Promise<Release> => {
  const res = await fetch(`${base}/latest`, { headers });
  expect(res.status).toBe(200);
  return (await res.json()) as Release;
};

describe('GET /latest', () => {
  it('is tagged "latest" with no assets when nothing is stored', async () => {
    const empty = await startServer();
    try {
      const release = await latest(empty.url);
      expect(release.tag_name).toBe('latest');
      expect(release.assets).toEqual([]);
    } finally {
      await empty.stop();
    }
  });

  it('lists every package, releases by semver highest first (not by upload time), tagged with the highest version', async () => {
    const names = ['spec-kit-template-claude-sh-v0.1.0.zip', 'spec-kit-template-claude-sh-v0.10.0.zip', 'spec-kit-template-claude-sh-v0.2.0.zip', 'notes.txt'];
    for (const name of names) expect((await upload(server.url, name, `bytes of ${name}`)).status).toBe(201);
    const release = await latest(server.url);
    expect(release.tag_name).toBe('v0.10.0');
    expect(release.name).toBe('v0.10.0');
    expect(release.assets.map((a) => a.name)).toEqual([names[1], names[2], names[0], names[3]]);
    const asset = release.assets.find((a) => a.name === 'spec-kit-template-claude-sh-v0.2.0.zip')!;
    const uploaded = await makeZip({ 'README.md': 'bytes of spec-kit-template-claude-sh-v0.2.0.zip' });
    expect(asset).toMatchObject({
      size: uploaded.length,
      digest: `sha256:${sha256(uploaded)}`,
      browser_download_url: `${server.url}/assets/spec-kit-template-claude-sh-v0.2.0.zip`,
      content_type: 'application/zip',
      state: 'uploaded',
    });
    expect(release.assets.find((a) => a.name === 'notes.txt')!.content_type).toBe('application/octet-stream');
    expect(new Set(release.assets.map((a) => a.id)).size).toBe(release.assets.length);
  });

  it('ranks a pre-release below its release', async () => {
    await upload(server.url, 'spec-kit-template-gemini-sh-v1.0.0-rc.1.zip', 'rc');
    await upload(server.url, 'spec-kit-template-gemini-sh-v1.0.0.zip', 'final');
    await upload(server.url, 'spec-kit-template-gemini-sh-v1.0.0-rc.2.zip', 'rc2');
    expect((await latest(server.url)).tag_name).toBe('v1.0.0');
  });

  it('sends the same bytes and ETag while nothing changes, 304 for a matching If-None-Match, and new bytes after an upload', async () => {
    const first = await fetch(`${server.url}/latest`);
    const second = await fetch(`${server.url}/latest`);
    const etag = first.headers.get('etag')!;
    expect(etag).toBeTruthy();
    expect(second.headers.get('etag')).toBe(etag);
    expect(second.headers.get('content-type')).toBe(first.headers.get('content-type'));
    expect(await second.text()).toBe(await first.text());
    expect((await fetch(`${server.url}/latest`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    await upload(server.url, 'spec-kit-template-fresh-sh-v99.0.0.zip', 'fresh');
    const third = await fetch(`${server.url}/latest`);
    expect(third.headers.get('etag')).not.toBe(etag);
    expect((await third.json()).assets[0].name).toBe('spec-kit-template-fresh-sh-v99.0.0.zip');
  });

  it('ignores an Authorization header it does not need (the CLI sends GitHub tokens)', async () => {
    const release = await latest(server.url, { authorization: 'Bearer ghp_not_ours' });
    const res = await fetch(release.assets[0]!.browser_download_url, { headers: { authorization: 'Bearer ghp_not_ours' } });
    expect(res.status).toBe(200);
  });

  it('builds absolute URLs from X-Forwarded-Proto and X-Forwarded-Host behind a proxy', async () => {
    const release = await latest(server.url, { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'templates.corp.example' });
    expect(release.assets[0]!.browser_download_url).toMatch(/^https:\/\/templates\.corp\.example\/assets\//);
  });

  it('builds absolute URLs from public_url when it is set, whatever the request says', async () => {
    await upload(proxied.url, 'spec-kit-template-claude-sh-v1.2.3.zip', 'x');
    const release = await latest(proxied.url, { 'x-forwarded-host': 'elsewhere.example' });
    expect(release.assets[0]!.browser_download_url).toBe('https://releases.example.com/spec/assets/spec-kit-template-claude-sh-v1.2.3.zip');
  });

  it('escapes names in URLs', async () => {
    await upload(server.url, 'spec kit #1?.zip', 'x');
    const release = await latest(server.url);
    const asset = release.assets.find((a) => a.name === 'spec kit #1?.zip')!;
    expect(asset.browser_download_url).toBe(`${server.url}/assets/spec%20kit%20%231%3F.zip`);
    expect(Buffer.from(await (await fetch(asset.browser_download_url)).arrayBuffer()).equals(await makeZip({ 'README.md': 'x' }))).toBe(true);
  });
});

describe('the specify CLI against this server', () => {
  it('picks the newest matching template and unzips what it downloads', async () => {
    const cli = await startServer();
    try {
      const v1 = await makeZip({ 'README.md': 'v0.1.0 template', '.specify/memory/constitution.md': 'one' });
      const v2 = await makeZip({ 'README.md': 'v0.2.0 template', '.specify/memory/constitution.md': 'two' });
      const other = await makeZip({ 'README.md': 'copilot' });
      await upload(cli.url, 'spec-kit-template-claude-sh-v0.1.0.zip', v1);
      await upload(cli.url, 'spec-kit-template-claude-sh-v0.2.0.zip', v2);
      await upload(cli.url, 'spec-kit-template-copilot-ps-v0.2.0.zip', other);
      const result = await specifyInit(`${cli.url}/latest`, 'claude', 'sh', 'ghp_token_the_cli_may_send');
      expect(result.tag).toBe('v0.2.0');
      expect(result.asset).toBe('spec-kit-template-claude-sh-v0.2.0.zip');
      expect(result.contentLength).toBe(String(v2.length));
      expect(result.zip.equals(v2)).toBe(true);
      expect(await readZip(result.zip)).toEqual({ 'README.md': 'v0.2.0 template', '.specify/memory/constitution.md': 'two' });
      await expect(specifyInit(`${cli.url}/latest`, 'cursor', 'sh')).rejects.toThrow(/no asset matches/);
    } finally {
      await cli.stop();
    }
  });
});

describe('compression', () => {
  it('sends /latest gzipped to clients that accept it, the same JSON once inflated', async () => {
    const { request } = await import('node:http');
    const { gunzipSync } = await import('node:zlib');
    for (let i = 0; i < 6; i++) await upload(server.url, `spec-kit-template-gz${i}-sh-v3.0.${i}.zip`, `gz ${i}`);
    const identity = Buffer.from(await (await fetch(`${server.url}/latest`, { headers: { 'accept-encoding': 'identity' } })).arrayBuffer());
    const raw = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const url = new URL(`${server.url}/latest`);
      request({ host: url.hostname, port: url.port, path: url.pathname, headers: { 'accept-encoding': 'gzip, deflate' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
      })
        .on('error', reject)
        .end();
    });
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(String(raw.headers.vary)).toMatch(/Accept-Encoding/i);
    expect(raw.body.length).toBeLessThan(identity.length);
    expect(gunzipSync(raw.body).equals(identity)).toBe(true);
  });
});
