import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { catalogZip, rawZip } from '../helpers/packages.js';
import { runToExit, startServer, TOKEN, type LogLine, type RunningServer } from '../helpers/server.js';
import { committedIndex, eventually, newestEntry, STATE_DIR, storageContents, storedBlobs } from '../helpers/storage-dir.js';
import { upload } from '../helpers/upload.js';
import { sha256 } from '../helpers/zip.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

interface Listed {
  name: string;
  sha256: string;
  kind: string;
  tag: string | null;
  download_count: number;
}

async function list(server: RunningServer): Promise<Listed[]> {
  const listed = (await (await fetch(`${server.url}/packages?format=json`)).json()) as (Listed & { download_url?: string })[];
  // download_url is left out: each run listens on another port.
  return listed.map(({ download_url: _, ...rest }) => rest).sort((a, b) => a.name.localeCompare(b.name));
}

async function ids(server: RunningServer): Promise<Record<string, number>> {
  const release = (await (await fetch(`${server.url}/latest`)).json()) as { assets: { name: string; id: number }[] };
  return Object.fromEntries(release.assets.map((a) => [a.name, a.id]));
}


const get = (server: RunningServer, name: string) => fetch(`${server.url}/assets/${encodeURIComponent(name)}`);
const remove = (server: RunningServer, name: string) => fetch(`${server.url}/assets/${encodeURIComponent(name)}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });

describe('a damaged index is never silently rewritten', () => {
  it('a truncated journal entry stops start-up with one FATAL line naming the file and the recovery command; the command recovers every record, kind, tag and count, and no id is reused', async () => {
    const first = await startServer({ env: { MAX_PACKAGES: '0' } });
    expect((await upload(first.url, 'spec-kit-template-claude-sh-v1.0.0.zip', 'one')).status).toBe(201);
    expect((await upload(first.url, 'spec-kit-template-claude-sh-v1.1.0.zip', 'two')).status).toBe(201);
    expect((await upload(first.url, 'ext.zip', await catalogZip('extension', { id: 'acme-hello' }))).status).toBe(201);
    for (let i = 0; i < 3; i++) await (await get(first, 'spec-kit-template-claude-sh-v1.0.0.zip')).arrayBuffer();
    await eventually(async () => {
      const stored = await committedIndex(first.storagePath);
      expect([...stored.records.values()].find((r) => r.name.endsWith('v1.0.0.zip'))!.downloadCount).toBe(3);
    });
    // The last change, a deletion: its journal entry is the one cut below.
    expect((await remove(first, 'spec-kit-template-claude-sh-v1.1.0.zip')).status).toBe(204);
    const before = await list(first);
    const idsBefore = await ids(first);
    expect(await first.stop()).toBe(0);

    const file = (await newestEntry(first.storagePath))!;
    await truncate(file, 40);
    const damaged = await readFile(file);
    const env = { STORAGE_PATH: first.storagePath, CONFIG_PATH: '/nonexistent.yaml', AUTH_TOKEN: TOKEN };
    const refused = await runToExit(env);
    expect(refused.code).toBe(1);
    const fatal = refused.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine).filter((l) => l.level === 'FATAL');
    expect(fatal).toHaveLength(1);
    expect(fatal[0]!.message).toContain(file);
    expect(fatal[0]!.message).toContain('recover-index');
    expect((await readFile(file)).equals(damaged)).toBe(true);

    // The command exactly as the FATAL line and the README give it.
    const { stdout } = await run('npm', ['run', '-s', 'recover-index', '--', first.storagePath], { cwd: REPO });
    expect(stdout).toContain('moved the damaged index generation(s) aside');
    const second = await startServer({ storagePath: first.storagePath, env: { MAX_PACKAGES: '0' } });
    try {
      // The deletion was in the damaged generation: the package comes back rather than any record being lost.
      const after = await list(second);
      expect(after.filter((p) => p.name !== 'spec-kit-template-claude-sh-v1.1.0.zip')).toEqual(before);
      expect(after.find((p) => p.name === 'ext.zip' || p.kind === 'extension')!.kind).toBe('extension');
      expect(after.find((p) => p.name === 'spec-kit-template-claude-sh-v1.0.0.zip')).toMatchObject({ tag: 'v1.0.0', download_count: 3 });
      const idsAfter = await ids(second);
      for (const [name, id] of Object.entries(idsBefore)) expect(idsAfter[name]).toBe(id);
      expect((await upload(second.url, 'spec-kit-template-claude-sh-v2.0.0.zip', 'new')).status).toBe(201);
      const newId = (await ids(second))['spec-kit-template-claude-sh-v2.0.0.zip']!;
      expect(newId).toBeGreaterThan(Math.max(...Object.values(idsAfter)));
      expect(second.logs().some((l) => l.level === 'ERROR' || l.level === 'FATAL')).toBe(false);
    } finally {
      await second.stop();
    }
  });

  it('one bad record is reported by name at ERROR and is not served (404, not 500); the others are served and it is kept in the index', async () => {
    const first = await startServer({ env: { MAX_PACKAGES: '0' } });
    await upload(first.url, 'good.zip', 'good');
    await upload(first.url, 'bad.zip', 'bad');
    await first.stop();
    const file = (await newestEntry(first.storagePath))!;
    const entry = JSON.parse(await readFile(file, 'utf8'));
    entry.put.find((r: { name: string }) => r.name === 'bad.zip').sha256 = 'not a digest';
    await writeFile(file, JSON.stringify(entry));

    const second = await startServer({ storagePath: first.storagePath });
    try {
      expect(second.logs().find((l) => l.level === 'ERROR' && l.record === 'bad.zip')?.message).toContain('bad.zip is invalid');
      expect((await list(second)).map((p) => p.name)).toEqual(['good.zip']);
      expect((await get(second, 'bad.zip')).status).toBe(404);
      expect((await get(second, 'good.zip')).status).toBe(200);
      expect((await upload(second.url, 'later.zip', 'later')).status).toBe(201);
      // A journal entry is never rewritten: the bad record stays as it was, and a restart reports it again.
      expect(JSON.parse(await readFile(file, 'utf8')).put.map((r: { sha256: string }) => r.sha256)).toEqual(['not a digest']);
    } finally {
      await second.stop();
    }
  });
});

describe('download counts', () => {
  it('count exactly once when flushes fail for a while and are retried', async () => {
    const server = await startServer();
    await upload(server.url, 'counted.zip', 'counted');
    // The index cannot be written while the server's staging area is gone, as on a failing volume.
    const tmp = join(server.storagePath, STATE_DIR, 'tmp');
    await rm(tmp, { recursive: true });
    for (let i = 0; i < 3; i++) await (await get(server, 'counted.zip')).arrayBuffer();
    // Flushes run every 2 s: let three of them fail.
    await eventually(() => expect(server.logs().filter((l) => l.message === 'could not save download counts; will retry').length).toBeGreaterThanOrEqual(3), 10_000);
    await mkdir(tmp);
    const flushed = JSON.stringify(await storageContents(server.storagePath));
    await eventually(async () => {
      const index = await committedIndex(server.storagePath);
      expect([...index.records.values()][0]!.downloadCount).toBe(3);
    }, 10_000);
    expect(flushed).toBeTruthy();
    await server.stop();
    const again = await startServer({ storagePath: server.storagePath });
    try {
      expect((await list(again))[0]!.download_count).toBe(3);
    } finally {
      await again.stop();
    }
  });
});

describe('foreign files in the storage directory', () => {
  it('are never adopted, served, listed or deleted (retention included), and an existing .tmp/ is left alone', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-data-'));
    await writeFile(join(root, 'config.yaml'), 'auth_token: do-not-serve-me\n');
    await writeFile(join(root, 'id_rsa'), '-----BEGIN OPENSSH PRIVATE KEY-----\n');
    await writeFile(join(root, 'notes.txt'), 'notes');
    await writeFile(join(root, 'spec-kit-template-claude-sh-v9.9.9.zip'), 'placed by hand');
    await mkdir(join(root, '.tmp'));
    await writeFile(join(root, '.tmp', 'keep-me'), 'mine');
    const server = await startServer({ storagePath: root, env: { MAX_PACKAGES: '1' } });
    try {
      expect(server.logs().find((l) => l.level === 'WARN' && String(l.message).startsWith('ignoring 5 entries'))).toBeDefined();
      for (const name of ['config.yaml', 'id_rsa', 'notes.txt', 'spec-kit-template-claude-sh-v9.9.9.zip']) {
        const res = await get(server, name);
        expect(res.status).toBe(404);
        expect(await res.text()).not.toContain('do-not-serve-me');
      }
      expect(await list(server)).toEqual([]);
      expect(((await (await fetch(`${server.url}/latest`)).json()) as { assets: unknown[] }).assets).toEqual([]);
      // Retention with max_packages 1 deletes the older upload, and nothing else.
      expect((await upload(server.url, 'spec-kit-template-claude-sh-v1.0.0.zip', 'a')).status).toBe(201);
      expect((await upload(server.url, 'spec-kit-template-claude-sh-v1.1.0.zip', 'b')).status).toBe(201);
      expect((await list(server)).map((p) => p.name)).toEqual(['spec-kit-template-claude-sh-v1.1.0.zip']);
      expect((await remove(server, 'config.yaml')).status).toBe(404);
    } finally {
      await server.stop();
    }
    expect((await readdir(root)).sort()).toEqual(['.release-server', '.tmp', 'config.yaml', 'id_rsa', 'notes.txt', 'spec-kit-template-claude-sh-v9.9.9.zip']);
    expect(await readFile(join(root, 'config.yaml'), 'utf8')).toContain('do-not-serve-me');
    expect(await readFile(join(root, '.tmp', 'keep-me'), 'utf8')).toBe('mine');
  });

  it('a legacy layout (.meta/index.json, packages in the root) is migrated at first start: ids, counts, tags, kinds and catalog kept, files without a record left', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-data-'));
    const ext = await catalogZip('extension', { id: 'acme-hello' });
    const template = rawZip([{ name: 'README.md', data: 'legacy template' }]);
    await writeFile(join(root, 'spec-kit-template-claude-sh-v0.9.0.zip'), template);
    await writeFile(join(root, 'extension-acme-hello-1.0.0.zip'), ext);
    await writeFile(join(root, 'id_rsa'), 'key');
    await mkdir(join(root, '.meta'));
    await mkdir(join(root, '.tmp'));
    await writeFile(join(root, '.tmp', 'partial'), 'x');
    const rec = (name: string, id: number, bytes: Buffer, extra: object) => ({ id, name, size: bytes.length, sha256: sha256(bytes), createdAt: '2026-01-01T00:00:00.000Z', updatedAt: `2026-01-0${id}T00:00:00.000Z`, downloadCount: id * 2, mtimeMs: 1, ...extra });
    const catalog = { id: 'acme-hello', version: '1.0.0', name: 'Acme Hello', description: 'Says hello.' };
    await writeFile(
      join(root, '.meta', 'index.json'),
      JSON.stringify({ version: 1, lastId: 12, records: [rec('spec-kit-template-claude-sh-v0.9.0.zip', 2, template, {}), rec('extension-acme-hello-1.0.0.zip', 5, ext, { tag: null, kind: 'extension', catalog })] }),
    );
    const server = await startServer({ storagePath: root, env: { MAX_PACKAGES: '0' } });
    try {
      expect(server.logs().find((l) => String(l.message).startsWith('migrated 2 packages'))).toBeDefined();
      expect((await list(server)).map((p) => [p.name, p.kind, p.tag, p.download_count])).toEqual([
        ['extension-acme-hello-1.0.0.zip', 'extension', null, 10],
        ['spec-kit-template-claude-sh-v0.9.0.zip', 'template', 'v0.9.0', 4],
      ]);
      expect((await ids(server))['spec-kit-template-claude-sh-v0.9.0.zip']).toBe(2);
      expect(Buffer.from(await (await get(server, 'extension-acme-hello-1.0.0.zip')).arrayBuffer()).equals(ext)).toBe(true);
      const catalogDoc = await (await fetch(`${server.url}/catalogs/extensions.json`)).json();
      expect(Object.keys(catalogDoc.extensions)).toEqual(['acme-hello']);
      expect((await get(server, 'id_rsa')).status).toBe(404);
      expect((await upload(server.url, 'new.zip', 'new')).status).toBe(201);
      expect((await list(server)).find((p) => p.name === 'new.zip')).toBeDefined();
    } finally {
      await server.stop();
    }
    expect((await readdir(root)).sort()).toEqual(['.meta', '.release-server', '.tmp', 'id_rsa']);
    expect(await readdir(join(root, '.tmp'))).toEqual(['partial']);
  });
});

/** A small tmpfs of our own, where the machine lets us mount one (root, and not refused by a container). */
function mountTmpfs(dir: string, size: string): string | null {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `cannot mount a tmpfs here (${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()})`;
  }
}

const diskDir = await mkdtemp(join(tmpdir(), 'rs-full-'));
const cannotMount = mountTmpfs(diskDir, '6m');
if (cannotMount) console.warn(`SKIPPED disk-full test: ${cannotMount}`);
else execFileSync('umount', [diskDir]);

describe('disk full', () => {
  it.skipIf(cannotMount !== null)('an upload that does not fit answers 507 problem+json and leaves nothing; probes and count flushes leak no temp files; all is well once space is freed', async () => {
    mountTmpfs(diskDir, '6m');
    let server: RunningServer | null = null;
    try {
      const root = join(diskDir, 'data');
      await mkdir(root);
      server = await startServer({ storagePath: root, env: { MAX_PACKAGES: '0' } });
      expect((await upload(server.url, 'fits.zip', 'fits')).status).toBe(201);
      // Fill the disk, leaving a few blocks.
      const filler = join(diskDir, 'filler');
      await writeFile(filler, Buffer.alloc(0));
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'pipe' });
      } catch {
        // dd stops at "No space left on device"
      }
      const blobsBefore = await storedBlobs(root);
      const big = rawZip([{ name: 'big.bin', data: Buffer.alloc(2 * 1024 * 1024, 7) }]);
      const res = await upload(server.url, 'too-big.zip', big);
      expect(res.status).toBe(507);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect((await res.json()).type).toBe('urn:release-server:problem:insufficient-storage');
      expect(await storageContents(root)).toEqual({ packages: ['fits.zip'], staging: [] });
      expect(await storedBlobs(root)).toEqual(blobsBefore);
      // Probes while full: 503, and no probe file left behind.
      for (let i = 0; i < 3; i++) expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
      // Downloads while full: their count flushes fail, and leave no temp file.
      for (let i = 0; i < 2; i++) await (await get(server, 'fits.zip')).arrayBuffer();
      await eventually(() => expect(server!.logs().some((l) => l.message === 'could not save download counts; will retry')).toBe(true), 10_000);
      expect((await storageContents(root)).staging).toEqual([]);
      expect(server.logs().some((l) => l.level === 'ERROR' && l.req && (l.res as { statusCode?: number } | undefined)?.statusCode === 500)).toBe(false);

      await rm(filler);
      await eventually(async () => expect((await fetch(`${server!.url}/readyz`)).status).toBe(200));
      expect((await upload(server.url, 'too-big.zip', big)).status).toBe(201);
      await eventually(async () => {
        const index = await committedIndex(root);
        expect(index.records.get('fits.zip')!.downloadCount).toBe(2);
      }, 10_000);
    } finally {
      await server?.stop();
      execFileSync('umount', [diskDir]);
      await rm(diskDir, { recursive: true, force: true });
    }
  });
});
