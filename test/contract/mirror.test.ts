import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { catalogAdd } from '../helpers/speckit-catalog-client.js';
import { storageContents, storedBlobs } from '../helpers/storage-dir.js';
import { buildUpstreamFixture, startUpstreamCatalog, type UpstreamCatalog, type UpstreamFixture } from '../helpers/upstream-catalog.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const auth = { authorization: `Bearer ${TOKEN}` };
const json = async (url: string): Promise<Json> => (await fetch(url)).json() as Promise<Json>;

let upstream: UpstreamCatalog;
let fixture: UpstreamFixture;
let server: RunningServer;

/** Runs one sync of `name` to its end and answers its report. */
async function sync(name: string, base = server.url): Promise<Json> {
  const started = await fetch(`${base}/sources/${name}/sync`, { method: 'POST', headers: auth });
  expect(started.status).toBe(202);
  for (;;) {
    const status = await json(`${base}/sources/${name}`);
    if (!status.running && status.last?.finished_at) return status.last;
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  upstream = await startUpstreamCatalog();
  fixture = await buildUpstreamFixture(upstream);
  const dir = await mkdtemp(join(tmpdir(), 'rs-mirror-'));
  const config = {
    sources: [
      { name: 'community', catalogs: { extension: fixture.catalogUrls.extension, preset: fixture.catalogUrls.preset, workflow: fixture.catalogUrls.workflow, integration: fixture.catalogUrls.integration }, auto_approve: { ids: ['preset-s*'] } },
      { name: 'narrow', catalogs: { extension: fixture.catalogUrls.extension }, allow: ['*-sha'], deny: ['bad-*'] },
    ],
  };
  await writeFile(join(dir, 'config.yaml'), stringify(config));
  server = await startServer({ env: { CONFIG_PATH: join(dir, 'config.yaml'), MAX_VERSIONS_PER_PACKAGE: '0' } });
});
afterAll(async () => {
  await server?.stop();
  await upstream?.stop();
});

describe('mirroring a source', () => {
  let first: Json;
  it('syncs: stores what passes, pending with its provenance, and reports every refusal with its reason', async () => {
    first = await sync('community');
    expect(first.error).toBeNull();
    const refused = Object.fromEntries(first.refused.map((r: Json) => [r.id, r.reason]));
    expect(refused['bad-sha']).toMatch(/sha256/i);
    expect(refused.hostile).toMatch(/refused by vetting/);
    expect(refused['bundled-only']).toBeDefined();
    expect(refused['no-url']).toBeDefined();
    expect(first.stored).toBeGreaterThanOrEqual(5);
    expect(first.done).toBe(first.total);

    // Pending: discovery lists it, the catalog does not, its download answers 403.
    const discovery = await json(`${server.url}/discovery/extensions.json`);
    expect(Object.keys(discovery.extensions).sort()).toEqual(expect.arrayContaining(['bare-sha', 'changing', 'prefixed-sha', 'tag-archive']));
    expect((await json(`${server.url}/catalogs/extensions.json`)).extensions).toEqual({});
    const versions = await json(`${server.url}/catalogs/extensions/bare-sha`);
    expect(versions.versions[0]).toMatchObject({
      approval: { state: 'pending', by: 'source:community' },
      provenance: { source: 'community', url: expect.stringContaining(upstream.url), upstream_sha256: fixture.entries['bare-sha']!.sha256!.replace(/^sha256:/i, '').toLowerCase() },
    });
    expect(versions.versions[0].sha256).toBe(versions.versions[0].provenance.upstream_sha256);
    expect((await json(`${server.url}/catalogs/extensions/tag-archive`)).versions[0].provenance.upstream_sha256).toBeNull();
    expect((await fetch(discovery.extensions['bare-sha'].download_url)).status).toBe(403);
    // The source's policy approved preset-sha as it was mirrored, and says so; preset-plain waits.
    expect(Object.keys((await json(`${server.url}/catalogs/presets.json`)).presets)).toEqual(['preset-sha']);
    expect((await json(`${server.url}/catalogs/presets/preset-sha`)).versions[0].approval).toMatchObject({ state: 'approved', by: 'policy:community', reason: 'auto_approve.ids matches "preset-s*"' });
    expect(Object.keys((await json(`${server.url}/discovery/presets.json`)).presets)).toEqual(['preset-plain']);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain(`release_server_sync_entries{source="community",count="stored"} ${first.stored}`);
    expect(metrics).toContain(`release_server_sync_entries{source="community",count="done"} ${first.total}`);
    expect(metrics).toMatch(/release_server_sync_bytes\{source="community"\} [1-9]/);
  });

  it('approved, a mirrored version installs with the CLI rules', async () => {
    const approve = await fetch(`${server.url}/catalogs/extensions/tag-archive/${fixture.entries['tag-archive']!.version}/approve`, { method: 'POST', headers: auth });
    expect(approve.status).toBe(200);
    const project = await mkdtemp(join(tmpdir(), 'rs-mirror-project-'));
    const installed = await catalogAdd(`${server.url}/catalogs/extensions.json`, 'extension', 'tag-archive', project);
    expect(installed.entry.version).toBe(fixture.entries['tag-archive']!.version);
  });

  it('a second sync changes nothing it stored, and refuses an archive that changed upstream', async () => {
    const second = await sync('community');
    expect(second.stored).toBe(0);
    // Everything stored the first time is unchanged, but for the archive that changed upstream.
    expect(second.unchanged).toBe(first.stored - 1);
    const changing = second.refused.find((r: Json) => r.id === 'changing');
    expect(changing?.reason).toContain('changed upstream');
    const versions = await json(`${server.url}/catalogs/extensions/changing`);
    expect(versions.versions).toHaveLength(1);
  });

  it('applies allow and deny lists, deny first', async () => {
    const narrow = await sync('narrow');
    const reasons = Object.fromEntries(narrow.refused.map((r: Json) => [r.id, r.reason]));
    expect(reasons['tag-archive']).toMatch(/allow/);
    expect(reasons['bad-sha']).toMatch(/deny/);
    expect(narrow.total).toBe(2);
  });

  it('lists the sources without their credentials, and 404s an unknown one; a sync needs the curate scope', async () => {
    const list = await json(`${server.url}/sources`);
    expect(list.map((s: Json) => s.name)).toEqual(['community', 'narrow']);
    expect(JSON.stringify(list)).not.toContain('headers');
    expect((await fetch(`${server.url}/sources/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/sources/community/sync`, { method: 'POST' })).status).toBe(401);
  });
});

describe('a crash mid-sync', () => {
  it('kill -9 while an archive is half fetched leaves no partial package and no staged bytes; the next sync completes it', async () => {
    const slow = await startUpstreamCatalog();
    const dir = await mkdtemp(join(tmpdir(), 'rs-mirror-crash-'));
    let crashed: RunningServer | null = null;
    try {
      const fx = await buildUpstreamFixture(slow);
      await slow.rule(`/${fx.entries['tag-archive']!.path!}`, { dripBytes: 16, dripIntervalMs: 200 });
      await writeFile(join(dir, 'config.yaml'), stringify({ sources: [{ name: 'slow', catalogs: { extension: fx.catalogUrls.extension } }] }));
      crashed = await startServer({ env: { CONFIG_PATH: join(dir, 'config.yaml') } });
      expect((await fetch(`${crashed.url}/sources/slow/sync`, { method: 'POST', headers: auth })).status).toBe(202);
      // Everything else lands; the dripping archive is mid-download.
      const progress = async () => (await json(`${crashed!.url}/sources/slow`)).last as Json;
      await expect.poll(async () => (await progress()).total, { timeout: 20_000 }).toBeGreaterThan(0);
      await expect.poll(async () => { const p = await progress(); return p.total - p.done; }, { timeout: 20_000 }).toBe(1);
      await expect.poll(async () => (await slow.stats()).inFlight, { timeout: 5000 }).toBeGreaterThan(0);
      crashed.process.kill('SIGKILL');
      await crashed.exited;
      const storagePath = crashed.storagePath;
      crashed = null;

      const again = await startServer({ storagePath, env: { CONFIG_PATH: join(dir, 'config.yaml') } });
      try {
        expect((await storageContents(storagePath)).staging).toEqual([]);
        const listed = (await json(`${again.url}/packages?format=json`)) as unknown as Json[];
        expect(listed.map((p) => p.name)).not.toContain(expect.stringContaining('tag-archive'));
        const blobs = await storedBlobs(storagePath);
        for (const p of listed) expect(blobs).toContain(p.sha256);
        await slow.rule(`/${fx.entries['tag-archive']!.path!}`, null);
        const report = await sync('slow', again.url);
        expect(report.stored).toBe(1);
        expect((await json(`${again.url}/catalogs/extensions/tag-archive`)).versions).toHaveLength(1);
      } finally {
        await again.stop();
      }
    } finally {
      if (crashed) await crashed.stop();
      await slow.stop();
    }
  });
});
