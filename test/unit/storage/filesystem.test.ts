import { mkdir, mkdtemp, readdir, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FilesystemStorage, STATE_DIR } from '../../../src/storage/filesystem.js';
import { applyEntry, emptyState } from '../../../src/storage/journal.js';
import { recoverIndex } from '../../../src/storage/recover.js';
import type { PackageRecord } from '../../../src/storage/storage.js';
import { sha256 } from '../../helpers/zip.js';
import { describeStorage } from './storage-suite.js';

const silent = pino({ level: 'silent' });
const roots = new WeakMap<object, string>();

function journaled(root: string, checkpointEvery: number): FilesystemStorage {
  const storage = new FilesystemStorage(root, silent, { checkpointEvery });
  roots.set(storage, root);
  return storage;
}

function at(root: string, log = silent): FilesystemStorage {
  const storage = new FilesystemStorage(root, log);
  roots.set(storage, root);
  return storage;
}

/** A logger that keeps every line, for "reported by name" checks. */
function recording(): { log: typeof silent; lines: { level: number; msg: string; [k: string]: unknown }[] } {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines };
}

async function generations(root: string): Promise<string[]> {
  return (await readdir(join(root, STATE_DIR, 'index'))).filter((n) => n.endsWith('.json')).sort();
}

async function entries(root: string): Promise<string[]> {
  return (await readdir(join(root, STATE_DIR, 'journal')).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
}

/** What is committed on disk, read as a restart would: the newest checkpoint, then every journal entry after it. */
async function newestIndex(root: string): Promise<{ lastId: number; records: PackageRecord[]; invalidRecords?: unknown[] }> {
  const newest = (await generations(root)).at(-1)!;
  const checkpoint = JSON.parse(await readFile(join(root, STATE_DIR, 'index', newest), 'utf8'));
  const state = { ...emptyState(), seq: checkpoint.seq, lastId: checkpoint.lastId, records: new Map(checkpoint.records.map((r: PackageRecord) => [r.name, r])) };
  for (const name of await entries(root)) {
    const entry = JSON.parse(await readFile(join(root, STATE_DIR, 'journal', name), 'utf8'));
    if (entry.seq > state.seq) applyEntry(state as Parameters<typeof applyEntry>[0], entry);
  }
  return { lastId: state.lastId, records: [...state.records.values()] as PackageRecord[], ...(checkpoint.invalidRecords ? { invalidRecords: checkpoint.invalidRecords } : {}) };
}

async function blobs(root: string): Promise<string[]> {
  const dir = join(root, STATE_DIR, 'blobs');
  const all: string[] = [];
  for (const fan of await readdir(dir)) all.push(...(await readdir(join(dir, fan))));
  return all.sort();
}

/** The sha256 of the bytes each blob holds, read from its name (`<sha256>-<16 hex>`, or a legacy `<sha256>`). */
async function blobBytes(root: string): Promise<string[]> {
  return (await blobs(root)).map((b) => b.slice(0, 64)).sort();
}

const record = (name: string, bytes: string, extra: Partial<PackageRecord> = {}): PackageRecord => ({
  id: 0,
  name,
  size: Buffer.byteLength(bytes),
  sha256: sha256(bytes),
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  downloadCount: 0,
  tag: null,
  kind: 'template',
  catalog: null,
  blob: '',
  ...extra,
});

async function put(storage: FilesystemStorage, name: string, bytes: string, extra: Partial<PackageRecord> = {}): Promise<PackageRecord> {
  return storage.publish(await storage.stage(Readable.from([Buffer.from(bytes)])), record(name, bytes, extra));
}

describeStorage('filesystem', {
  fresh: async () => at(await mkdtemp(join(tmpdir(), 'rs-fs-'))),
  reopen: async (storage) => at(roots.get(storage)!),
  visible: async (storage) => (await newestIndex(roots.get(storage)!).catch(() => ({ records: [] }))).records.map((r) => r.name).sort(),
  staged: async (storage) => readdir(join(roots.get(storage)!, STATE_DIR, 'tmp')),
  unnamed: async (storage) => {
    const root = roots.get(storage)!;
    const index = await newestIndex(root);
    const named = new Set([...index.records, ...((index.invalidRecords ?? []) as PackageRecord[])].map((r) => r.blob));
    const tmp = await readdir(join(root, STATE_DIR, 'tmp'));
    return [...(await blobs(root)).filter((b) => !named.has(b)), ...tmp.map((t) => `tmp/${t}`)];
  },
  withBatchHook: async (storage, hook) => {
    const hooked = new FilesystemStorage(roots.get(storage)!, silent, { beforeBatchCommit: hook });
    roots.set(hooked, roots.get(storage)!);
    return hooked;
  },
  // Every open removes what a crashed batch left.
  sweeping: async (storage) => at(roots.get(storage)!),
});

describe('filesystem storage specifics', () => {
  it('writes a batch as one journal entry', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = at(root);
    await storage.open();
    await put(storage, 'a.zip', 'a');
    const before = await entries(root);
    const items = await Promise.all(['b', 'c', 'd'].map(async (n) => ({ staged: await storage.stage(Readable.from([Buffer.from(n)])), record: record(`${n}.zip`, n) })));
    await storage.publishBatch(items);
    const after = await entries(root);
    expect(after.length).toBe(before.length + 1);
    expect((await newestIndex(root)).records.map((r) => r.name).sort()).toEqual(['a.zip', 'b.zip', 'c.zip', 'd.zip']);
    expect(await readdir(join(root, STATE_DIR, 'tmp'))).toEqual([]);
  });

  it('keeps the blobs of a batch intent left by a crash after the commit: records name them', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = at(root);
    await storage.open();
    const a = await put(storage, 'a.zip', 'a');
    const stray = sha256('never committed');
    await mkdir(join(root, STATE_DIR, 'blobs', stray.slice(0, 2)), { recursive: true });
    await writeFile(join(root, STATE_DIR, 'blobs', stray.slice(0, 2), stray), 'never committed');
    await writeFile(join(root, STATE_DIR, 'tmp', 'batch-0a1b.json'), JSON.stringify({ blobs: [a.blob, stray] }));
    // A torn intent is ignored.
    await writeFile(join(root, STATE_DIR, 'tmp', 'batch-0a1c.json'), '{"blobs":["');
    const restarted = at(root);
    expect(await restarted.open()).toEqual([a]);
    expect(await blobs(root)).toEqual([a.blob]);
    expect(await readdir(join(root, STATE_DIR, 'tmp'))).toEqual([]);
  });

  it('keeps its state in a directory of its own, sweeps only its own staging area, and never adopts, lists or deletes foreign files', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    await at(root).open();
    await writeFile(join(root, STATE_DIR, 'tmp', 'partial-upload'), 'half');
    await writeFile(join(root, 'config.yaml'), 'auth_token: secret');
    await writeFile(join(root, 'id_rsa'), 'PRIVATE KEY');
    await writeFile(join(root, 'spec-kit-template-claude-sh-v9.9.9.zip'), 'placed by hand');
    await mkdir(join(root, '.tmp'));
    await writeFile(join(root, '.tmp', 'notes.txt'), 'mine');
    const { log, lines } = recording();
    const storage = at(root, log);
    expect(await storage.open()).toEqual([]);
    expect(await readdir(join(root, STATE_DIR, 'tmp'))).toEqual([]);
    expect((await readdir(root)).sort()).toEqual(['.release-server', '.tmp', 'config.yaml', 'id_rsa', 'spec-kit-template-claude-sh-v9.9.9.zip']);
    expect(await readFile(join(root, '.tmp', 'notes.txt'), 'utf8')).toBe('mine');
    const warning = lines.find((l) => l.level === 40 && l.msg.startsWith('ignoring 4 entries'));
    expect(warning).toMatchObject({ files: ['.tmp', 'config.yaml', 'id_rsa', 'spec-kit-template-claude-sh-v9.9.9.zip'] });
    // A package of the same name as a foreign file is stored in the state directory; the foreign file stays.
    const stored = await put(storage, 'spec-kit-template-claude-sh-v9.9.9.zip', 'uploaded');
    await storage.remove(stored.name);
    expect(await readFile(join(root, 'spec-kit-template-claude-sh-v9.9.9.zip'), 'utf8')).toBe('placed by hand');
  });

  it('gives every publish a blob of its own, named by the sha256 of its bytes, and unlinks it with its record', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = at(root);
    await storage.open();
    const a = await put(storage, 'a.zip', 'same');
    const b = await put(storage, 'b.zip', 'same');
    // Identical bytes, two blobs: removing one record's can never take another's, whichever worker stored it.
    expect(a.blob).toMatch(new RegExp(`^${sha256('same')}-[0-9a-f]{16}$`));
    expect(b.blob).not.toBe(a.blob);
    expect(await blobs(root)).toEqual([a.blob, b.blob].sort());
    // The same bytes again keep their blob: a download reading it is never cut off by an upload that changed nothing.
    expect((await put(storage, 'a.zip', 'same')).blob).toBe(a.blob);
    const batch = await storage.publishBatch([{ staged: await storage.stage(Readable.from([Buffer.from('same')])), record: record('b.zip', 'same') }]);
    expect(batch[0]!.blob).toBe(b.blob);
    expect(await blobs(root)).toEqual([a.blob, b.blob].sort());
    const a2 = await put(storage, 'a.zip', 'other');
    expect(await blobs(root)).toEqual([a2.blob, b.blob].sort());
    await storage.remove('b.zip');
    expect(await blobs(root)).toEqual([a2.blob]);
    expect(await (await storage.read(a2)).toArray()).toEqual([Buffer.from('other')]);
  });

  it('reads a store whose blobs are named by their sha256 alone, shared by records of the same bytes, and unlinks one only when no record names it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const first = at(root);
    await first.open();
    const a = await put(first, 'a.zip', 'same');
    const b = await put(first, 'b.zip', 'same');
    // Rewrite the store as a version before workers left it: one blob, named by its sha256, for both records.
    const shared = sha256('same');
    await rename(join(root, STATE_DIR, 'blobs', shared.slice(0, 2), a.blob), join(root, STATE_DIR, 'blobs', shared.slice(0, 2), shared));
    await rm(join(root, STATE_DIR, 'blobs', shared.slice(0, 2), b.blob));
    const index = await newestIndex(root);
    await rm(join(root, STATE_DIR, 'journal'), { recursive: true });
    await mkdir(join(root, STATE_DIR, 'journal'));
    const seq = 1000;
    await writeFile(join(root, STATE_DIR, 'index', `${String(seq).padStart(12, '0')}.json`), JSON.stringify({ version: 3, seq, lastId: index.lastId, records: index.records.map((r) => ({ ...r, blob: shared })) }));
    const storage = at(root);
    expect((await storage.open()).map((r) => r.blob)).toEqual([shared, shared]);
    await storage.remove('a.zip');
    expect(await blobs(root)).toEqual([shared]);
    expect(await (await storage.read({ ...b, blob: shared })).toArray()).toEqual([Buffer.from('same')]);
    await storage.remove('b.zip');
    expect(await blobs(root)).toEqual([]);
  });

  it('frees removed files after the answer through trash/, which is empty soon after and swept at start-up', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = at(root);
    await storage.open();
    await put(storage, 'a.zip', 'same');
    // Identical bytes again (the staged copy goes), then other bytes (the replaced blob goes).
    await put(storage, 'a.zip', 'same');
    await put(storage, 'a.zip', 'other');
    expect(await blobBytes(root)).toEqual([sha256('other')]);
    expect(await readdir(join(root, STATE_DIR, 'tmp'))).toEqual([]);
    const trash = join(root, STATE_DIR, 'trash');
    for (let i = 0; i < 100 && (await readdir(trash)).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await readdir(trash)).toEqual([]);
    // What a crash left there goes at the next start.
    await writeFile(join(trash, 'left-by-a-crash'), 'bytes');
    await at(root).open();
    expect(await readdir(trash).catch(() => [])).toEqual([]);
  });

  it('writes each change as one small journal entry, a checkpoint every N entries, and keeps the last 3 checkpoints with the entries after the oldest', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = journaled(root, 5);
    await storage.open();
    for (let i = 0; i < 23; i++) await put(storage, `p${i}.zip`, `p${i}`);
    await storage.settled();
    expect(await generations(root)).toEqual(['000000000010.json', '000000000015.json', '000000000020.json']);
    expect(await entries(root)).toEqual(Array.from({ length: 13 }, (_, i) => `${String(11 + i).padStart(12, '0')}.json`));
    // An entry holds its change only: the same size with 1 package stored or 22.
    const size = async (n: number) => (await readFile(join(root, STATE_DIR, 'journal', `${String(n).padStart(12, '0')}.json`))).length;
    expect(Math.abs((await size(23)) - (await size(11)))).toBeLessThan(8);
    const checkpoint = JSON.parse(await readFile(join(root, STATE_DIR, 'index', '000000000020.json'), 'utf8'));
    expect(checkpoint).toMatchObject({ version: 3, seq: 20, lastId: 20 });
    expect(checkpoint.records).toHaveLength(20);
    const reopened = await at(root).open();
    expect(reopened.map((r) => r.name).sort()).toEqual(Array.from({ length: 23 }, (_, i) => `p${i}.zip`).sort());
  });

  it('replays every kind of change after the checkpoint: removals, counts, approvals and batches come back as they were', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = journaled(root, 4);
    await storage.open();
    const ext = { id: 'acme', version: '1.0.0', name: 'Acme', description: 'd' };
    const ps: PackageRecord[] = [];
    for (let i = 0; i < 5; i++) ps.push(await put(storage, `p${i}.zip`, `p${i}`));
    await put(storage, 'extension-acme-1.0.0.zip', 'ext', { kind: 'extension', catalog: ext, approval: { state: 'pending' } as PackageRecord['approval'] });
    await storage.remove('p1.zip');
    await storage.addDownloads([{ id: ps[2]!.id, name: 'p2.zip', count: 7 }, { id: ps[1]!.id, name: 'p1.zip', count: 1 }], 'b1');
    await storage.addDownloads([{ id: ps[2]!.id, name: 'p2.zip', count: 7 }], 'b1');
    await storage.setApproval('extension-acme-1.0.0.zip', { state: 'approved', at: '2026-01-03T00:00:00.000Z', by: 'curator' } as NonNullable<PackageRecord['approval']>);
    const items = await Promise.all(['q', 'p3'].map(async (n) => ({ staged: await storage.stage(Readable.from([Buffer.from(n + '!')])), record: record(`${n}.zip`, n + '!') })));
    await storage.publishBatch(items);
    await storage.settled();
    const live = (await at(root).open()).sort((x, y) => x.name.localeCompare(y.name));
    expect(await generations(root)).toContain('000000000008.json');
    expect(live.map((r) => [r.name, r.downloadCount, r.approval?.state ?? null])).toEqual([
      ['extension-acme-1.0.0.zip', 0, 'approved'],
      ['p0.zip', 0, null],
      ['p2.zip', 7, null],
      ['p3.zip', 0, null],
      ['p4.zip', 0, null],
      ['q.zip', 0, null],
    ]);
    expect(live.find((r) => r.name === 'p3.zip')!.sha256).toBe(sha256('p3!'));
    // The counts batch is remembered across the checkpoint and the replay: a retry after a restart adds nothing.
    const again = at(root);
    await again.open();
    await again.addDownloads([{ id: ps[2]!.id, name: 'p2.zip', count: 7 }], 'b1');
    expect((await at(root).open()).find((r) => r.name === 'p2.zip')!.downloadCount).toBe(7);
  });

  it('a crash between an entry and the checkpoint after it loses nothing, and a half-written checkpoint is never read', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const crashed = new FilesystemStorage(root, silent, { checkpointEvery: 3, beforeCheckpoint: () => new Promise<never>(() => undefined) });
    await crashed.open();
    for (let i = 0; i < 4; i++) await put(crashed, `p${i}.zip`, `p${i}`);
    // What a crash during the checkpoint's write leaves: a part of it in tmp/, never linked into index/.
    await writeFile(join(root, STATE_DIR, 'tmp', 'index-3-0a1b'), '{"version":3,"seq":3,"lastId":3,"records":[{"na');
    expect(await generations(root)).toEqual(['000000000000.json']);
    const restarted = at(root);
    expect((await restarted.open()).map((r) => r.name).sort()).toEqual(['p0.zip', 'p1.zip', 'p2.zip', 'p3.zip']);
    expect(await readdir(join(root, STATE_DIR, 'tmp'))).toEqual([]);
    expect((await put(restarted, 'p4.zip', 'p4')).id).toBe(5);
  });

  it('starts from the checkpoint before a damaged one when the journal leads past it, naming the damaged file, which stays as it is', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = journaled(root, 3);
    await storage.open();
    for (let i = 0; i < 7; i++) await put(storage, `p${i}.zip`, `p${i}`);
    await storage.settled();
    const file = join(root, STATE_DIR, 'index', '000000000006.json');
    await truncate(file, 40);
    const damaged = await readFile(file);
    const { log, lines } = recording();
    const reopened = new FilesystemStorage(root, log, { checkpointEvery: 3 });
    expect((await reopened.open()).map((r) => r.name).sort()).toEqual(Array.from({ length: 7 }, (_, i) => `p${i}.zip`));
    expect(lines.find((l) => l.level === 50)?.msg).toContain(`${file} is damaged`);
    // Later checkpoints get higher numbers: the damaged one is never overwritten, nor pruned with the old good ones.
    for (let i = 7; i < 16; i++) {
      await put(reopened, `p${i}.zip`, `p${i}`);
      await reopened.settled();
    }
    expect((await readFile(file)).equals(damaged)).toBe(true);
    expect(await generations(root)).toEqual(['000000000006.json', '000000000009.json', '000000000012.json', '000000000015.json']);
    expect(await at(root).open()).toHaveLength(16);
  });

  it('refuses to open on a damaged checkpoint that the journal does not lead past, naming it and the recovery command', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = journaled(root, 3);
    await storage.open();
    for (let i = 0; i < 4; i++) await put(storage, `p${i}.zip`, `p${i}`);
    await storage.settled();
    const file = join(root, STATE_DIR, 'index', '000000000003.json');
    // Cut inside the last record: the ones before it can still be read.
    await truncate(file, (await readFile(file, 'utf8')).indexOf('p2.zip') + 3);
    // The entries that led to it are gone (as in a store from before the journal, which has generations only).
    for (const n of [2, 3]) await rm(join(root, STATE_DIR, 'journal', `${String(n).padStart(12, '0')}.json`));
    const error = await at(root).open().catch((err: Error) => err);
    expect(error).toMatchObject({ code: 'damaged' });
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toContain(`recover-index -- "${root}"`);
    const report = await recoverIndex(root);
    // p2 was in the cut record only: its bytes are kept and named for the operator; p3 comes from the entry after.
    expect(report).toMatchObject({ records: 3, orphans: [{ sha256: sha256('p2'), size: 2 }] });
    const recovered = at(root);
    expect((await recovered.open()).map((r) => r.name).sort()).toEqual(['p0.zip', 'p1.zip', 'p3.zip']);
    expect((await put(recovered, 'p4.zip', 'p4')).id).toBeGreaterThan(4);
  });

  it('refuses to open on a damaged journal entry, naming it and the recovery command, and changes nothing; recover-index then loses no record and reuses no id', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = at(root);
    await storage.open();
    const ext = { id: 'acme', version: '1.0.0', name: 'Acme', description: 'd' };
    await put(storage, 'extension-acme-1.0.0.zip', 'ext', { kind: 'extension', catalog: ext });
    const t1 = await put(storage, 'spec-kit-template-claude-sh-v1.0.0.zip', 't1', { tag: 'v1.0.0' });
    await storage.addDownloads([{ id: t1.id, name: t1.name, count: 5 }], 'b1');
    const last = await put(storage, 'spec-kit-template-claude-sh-v1.1.0.zip', 't2', { tag: 'v1.1.0' });
    const newest = (await entries(root)).at(-1)!;
    const file = join(root, STATE_DIR, 'journal', newest);
    const full = await readFile(file, 'utf8');
    // Cut inside the last record: the ones before it can still be read.
    await truncate(file, full.indexOf('spec-kit-template-claude-sh-v1.1.0.zip') + 10);
    const damaged = await readFile(file);

    const error = await at(root).open().catch((err: Error) => err);
    expect(error).toMatchObject({ code: 'damaged' });
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toContain(`recover-index -- "${root}"`);
    expect((await readFile(file)).equals(damaged)).toBe(true);
    expect(await entries(root)).toContain(newest);

    const report = await recoverIndex(root);
    expect(report).toMatchObject({ records: 2 });
    // The cut record's bytes are kept, and named for the operator.
    expect(report!.orphans.map((o) => o.sha256)).toEqual([sha256('t2')]);
    const records = await at(root).open();
    expect(records.map((r) => [r.name, r.kind, r.tag, r.downloadCount]).sort()).toEqual([
      ['extension-acme-1.0.0.zip', 'extension', null, 0],
      ['spec-kit-template-claude-sh-v1.0.0.zip', 'template', 'v1.0.0', 5],
    ]);
    const again = at(root);
    await again.open();
    const next = await put(again, 'new.zip', 'new');
    expect(next.id).toBeGreaterThan(last.id);
    expect(await readdir(join(root, STATE_DIR, 'index', 'damaged'))).toHaveLength(1);
  });

  it('refuses to open when the index is gone but blobs remain, rather than start empty; recover-index starts an empty index keeping the blobs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = at(root);
    await storage.open();
    await put(storage, 'a.zip', 'a');
    // Only the journal gone: the checkpoint missing and entries left is refused too.
    await rm(join(root, STATE_DIR, 'index'), { recursive: true });
    await mkdir(join(root, STATE_DIR, 'index'));
    await expect(at(root).open()).rejects.toMatchObject({ code: 'damaged' });
    await rm(join(root, STATE_DIR, 'journal'), { recursive: true });
    await expect(at(root).open()).rejects.toMatchObject({ code: 'damaged' });
    expect(await generations(root)).toEqual([]);
    const report = await recoverIndex(root);
    expect(report).toMatchObject({ missing: true, records: 0, orphans: [{ sha256: sha256('a'), size: 1 }] });
    expect(await at(root).open()).toEqual([]);
    expect(await blobBytes(root)).toEqual([sha256('a')]);
  });

  it('reports a bad record by name, serves the others, and keeps the bad one through later writes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = at(root);
    await storage.open();
    await put(storage, 'good.zip', 'good');
    const bad = await put(storage, 'bad.zip', 'bad');
    const newest = (await entries(root)).at(-1)!;
    const file = join(root, STATE_DIR, 'journal', newest);
    const entry = JSON.parse(await readFile(file, 'utf8'));
    entry.put.find((r: PackageRecord) => r.name === 'bad.zip').kind = 'gadget';
    await writeFile(file, JSON.stringify(entry));
    const { log, lines } = recording();
    // A checkpoint after the next change: the bad record must be in it, as it was.
    const reopened = new FilesystemStorage(root, log, { checkpointEvery: 3 });
    expect((await reopened.open()).map((r) => r.name)).toEqual(['good.zip']);
    expect(lines.find((l) => l.level === 50 && l.record === 'bad.zip')?.msg).toContain('bad.zip is invalid (kind is not a package kind)');
    await put(reopened, 'later.zip', 'later');
    await reopened.settled();
    expect((await newestIndex(root)).invalidRecords).toEqual([{ ...bad, kind: 'gadget' }]);
    // Its bytes are kept too, and its id is never handed out again.
    expect(await blobBytes(root)).toContain(sha256('bad'));
    expect((await put(reopened, 'after.zip', 'after')).id).toBeGreaterThan(bad.id);
  });

  it('a count flush that fails changes nothing, so its retry adds once', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = at(root);
    await storage.open();
    const c = await put(storage, 'c.zip', 'c');
    const tmp = join(root, STATE_DIR, 'tmp');
    await rm(tmp, { recursive: true });
    const batch = [{ id: c.id, name: 'c.zip', count: 3 }];
    for (let i = 0; i < 4; i++) await expect(storage.addDownloads(batch, 'batch')).rejects.toThrow();
    await mkdir(tmp);
    await storage.addDownloads(batch, 'batch');
    expect((await at(root).open())[0]!.downloadCount).toBe(3);
    expect(await readdir(tmp)).toEqual([]);
  });

  it('migrates the legacy layout once: records keep ids, counts, tags, kinds and catalog; bytes are hash-checked; the rest stays where it is', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    await mkdir(join(root, '.meta'));
    await mkdir(join(root, '.tmp'));
    await writeFile(join(root, '.tmp', 'leftover'), 'x');
    const files: Record<string, string> = {
      'spec-kit-template-claude-sh-v1.0.0.zip': 'template',
      'extension-acme-1.0.0.zip': 'extension',
      'changed.zip': 'changed by hand',
      'notes.txt': 'no record',
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(root, name), text);
    const legacy = (name: string, id: number, text: string, extra: object) => ({ id, name, size: text.length, sha256: sha256(text), createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-02T00:00:00.000Z', downloadCount: id * 10, mtimeMs: 1, ...extra });
    const catalog = { id: 'acme', version: '1.0.0', name: 'Acme', description: 'd' };
    await writeFile(
      join(root, '.meta', 'index.json'),
      JSON.stringify({
        version: 1,
        lastId: 40,
        records: [
          // Stored before kinds existed: no tag, kind or catalog.
          legacy('spec-kit-template-claude-sh-v1.0.0.zip', 3, 'template', {}),
          legacy('extension-acme-1.0.0.zip', 7, 'extension', { tag: null, kind: 'extension', catalog }),
          legacy('changed.zip', 9, 'original', { tag: null, kind: 'template', catalog: null }),
        ],
      }),
    );
    const records = await at(root).open();
    expect(records.map((r) => [r.name, r.id, r.downloadCount, r.tag, r.kind, r.catalog]).sort()).toEqual([
      ['extension-acme-1.0.0.zip', 7, 70, null, 'extension', catalog],
      ['spec-kit-template-claude-sh-v1.0.0.zip', 3, 30, 'v1.0.0', 'template', null],
    ]);
    expect((await readdir(root)).sort()).toEqual(['.meta', '.release-server', '.tmp', 'changed.zip', 'notes.txt']);
    expect(await readFile(join(root, '.tmp', 'leftover'), 'utf8')).toBe('x');
    expect(await blobs(root)).toEqual([sha256('extension'), sha256('template')].sort());
    // Not migrated twice; ids continue above the legacy lastId.
    const again = at(root);
    expect(await again.open()).toHaveLength(2);
    expect((await put(again, 'n.zip', 'n')).id).toBe(41);
  });
});

/** Worker `number` of `count` over `root`, as `workers: count` runs them (each a process of its own). */
function worker(root: string, number: number, count = 2, options: { checkpointEvery?: number } = {}): FilesystemStorage {
  const storage = new FilesystemStorage(root, silent, { worker: { number, count }, ...options });
  roots.set(storage, root);
  return storage;
}

// The shared behaviour, from a worker: its staging area is tmp/w1/.
describeStorage('filesystem, as worker 1 of 2', {
  fresh: async () => worker(await mkdtemp(join(tmpdir(), 'rs-fsw-')), 1),
  reopen: async (storage) => worker(roots.get(storage)!, 1),
  visible: async (storage) => (await newestIndex(roots.get(storage)!).catch(() => ({ records: [] }))).records.map((r) => r.name).sort(),
  staged: async (storage) => readdir(join(roots.get(storage)!, STATE_DIR, 'tmp', 'w1')),
  unnamed: async (storage) => {
    const root = roots.get(storage)!;
    const index = await newestIndex(root);
    const named = new Set([...index.records, ...((index.invalidRecords ?? []) as PackageRecord[])].map((r) => r.blob));
    const tmp = await readdir(join(root, STATE_DIR, 'tmp', 'w1'));
    return [...(await blobs(root)).filter((b) => !named.has(b)), ...tmp.map((t) => `tmp/w1/${t}`)];
  },
  withBatchHook: async (storage, hook) => {
    const hooked = new FilesystemStorage(roots.get(storage)!, silent, { beforeBatchCommit: hook, worker: { number: 1, count: 2 } });
    roots.set(hooked, roots.get(storage)!);
    return hooked;
  },
  sweeping: async (storage) => worker(roots.get(storage)!, 1),
});

describe('filesystem storage with workers sharing one directory', () => {
  it('loses no change when two workers write at once, hands out every id once, and each takes in the other\'s changes on refresh', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const [a, b] = [worker(root, 1), worker(root, 2)];
    await Promise.all([a.open(), b.open()]);
    const names = Array.from({ length: 24 }, (_, i) => `pkg-${i}.zip`);
    const stored = await Promise.all(names.map((name, i) => put(i % 2 === 0 ? a : b, name, name)));
    expect(new Set(stored.map((r) => r.id)).size).toBe(24);
    expect((await newestIndex(root)).records.map((r) => r.name).sort()).toEqual([...names].sort());
    // Each learns only what the other wrote: its own commits it knew already.
    const seenByA = await a.refresh();
    expect(seenByA).toMatchObject({ whole: false, removed: [] });
    expect(seenByA!.records.map((r) => r.name).sort()).toEqual(names.filter((_, i) => i % 2 === 1).sort());
    expect((await b.refresh())!.records.map((r) => r.name).sort()).toEqual(names.filter((_, i) => i % 2 === 0).sort());
    expect(await a.refresh()).toBeNull();
    await b.remove('pkg-0.zip');
    expect(await a.refresh()).toEqual({ whole: false, records: [], removed: ['pkg-0.zip'] });
    // A name another worker wrote a moment ago (not yet taken in) is refused by an ifAbsent publish.
    await put(b, 'late.zip', 'b');
    await expect(a.publish(await a.stage(Readable.from([Buffer.from('a')])), record('late.zip', 'a'), { ifAbsent: true })).rejects.toMatchObject({ code: 'conflict' });
    expect(await (await a.read((await newestIndex(root)).records.find((r) => r.name === 'late.zip')!)).toArray()).toEqual([Buffer.from('b')]);
    // A restart reads the same index either worker would.
    expect((await worker(root, 1).open()).map((r) => r.id).sort()).toEqual((await at(root).open()).map((r) => r.id).sort());
  });

  it('never removes bytes another worker is committing a record for: replacing a package while the other stores the same bytes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const [a, b] = [worker(root, 1), worker(root, 2)];
    await Promise.all([a.open(), b.open()]);
    for (let round = 0; round < 20; round++) {
      await put(a, 'x.zip', `bytes ${round}`);
      await b.refresh();
      // a replaces x.zip (its old bytes go) while b publishes those very bytes under another name.
      const [, copy] = await Promise.all([put(a, 'x.zip', `bytes ${round + 1}`), put(b, `copy-${round}.zip`, `bytes ${round}`)]);
      expect(await (await b.read(copy)).toArray()).toEqual([Buffer.from(`bytes ${round}`)]);
    }
    await a.refresh();
    for (const r of (await newestIndex(root)).records) expect(Buffer.concat(await (await a.read(r)).toArray()).toString()).toMatch(/^bytes \d+$/);
  });

  it('takes in nothing while it opens: a change heard of then is read by the open itself, never replayed twice', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const a = worker(root, 1);
    await a.open();
    for (let i = 0; i < 30; i++) await put(a, `p${i}.zip`, `p${i}`);
    const b = worker(root, 2);
    let done = false;
    const opened = b.open().finally(() => (done = true));
    const refreshes: Promise<unknown>[] = [];
    while (!done) {
      refreshes.push(b.refresh().catch((err: Error) => err));
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(await opened).toHaveLength(30);
    expect((await Promise.all(refreshes)).filter((r) => r instanceof Error)).toEqual([]);
    await put(a, 'after.zip', 'after');
    expect((await b.refresh())!.records.map((r) => r.name)).toEqual(['after.zip']);
  });

  it('each sweeps only its own staging area when it starts; worker 1 also what belongs to no running worker', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const first = worker(root, 1);
    await first.open();
    const tmp = join(root, STATE_DIR, 'tmp');
    // Worker 2 is staging an upload; a server with 3 workers, and one alone, left files before.
    await mkdir(join(tmp, 'w2'), { recursive: true });
    await mkdir(join(tmp, 'w3'), { recursive: true });
    await writeFile(join(tmp, 'w2', 'upload-in-flight'), 'half');
    await writeFile(join(tmp, 'w3', 'left'), 'x');
    await writeFile(join(tmp, 'left-by-one-process'), 'x');
    // Worker 2 restarting (after a crash) sweeps its own area; worker 1 the strays, never w2's.
    await writeFile(join(tmp, 'w1', 'left-by-the-dead-worker-1'), 'x');
    await worker(root, 1).open();
    expect((await readdir(tmp)).sort()).toEqual(['w1', 'w2']);
    expect(await readdir(join(tmp, 'w1'))).toEqual([]);
    expect(await readdir(join(tmp, 'w2'))).toEqual(['upload-in-flight']);
    await worker(root, 2).open();
    expect(await readdir(join(tmp, 'w2'))).toEqual([]);
    // A server alone owns every area again.
    await writeFile(join(tmp, 'w2', 'x'), 'x');
    await at(root).open();
    expect(await readdir(tmp)).toEqual([]);
  });

  it('removes the blobs of a batch a crashed worker left before its commit, when that worker starts again', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const a = worker(root, 2);
    await a.open();
    const kept = await put(a, 'a.zip', 'a');
    const stray = `${sha256('never committed')}-0123456789abcdef`;
    await mkdir(join(root, STATE_DIR, 'blobs', stray.slice(0, 2)), { recursive: true });
    await writeFile(join(root, STATE_DIR, 'blobs', stray.slice(0, 2), stray), 'never committed');
    await writeFile(join(root, STATE_DIR, 'tmp', 'w2', 'batch-0a1b.json'), JSON.stringify({ blobs: [kept.blob, stray] }));
    // Worker 1 leaves worker 2's area alone; worker 2's restart reads its intent.
    await worker(root, 1).open();
    expect(await blobs(root)).toEqual([kept.blob, stray].sort());
    await worker(root, 2).open();
    expect(await blobs(root)).toEqual([kept.blob]);
  });

  it('refuses a write decided without another worker\'s change (current), storing nothing; the staged bytes publish after a refresh', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const [a, b] = [worker(root, 1), worker(root, 2)];
    await Promise.all([a.open(), b.open()]);
    const x = await put(a, 'x.zip', 'x');
    await b.refresh();
    // a changes the records; b has not taken that in.
    await put(a, 'snapshot.zip', 's');
    await expect(b.remove('x.zip', { current: true })).rejects.toMatchObject({ code: 'stale' });
    const staged = await b.stage(Readable.from([Buffer.from('z')]));
    await expect(b.publish(staged, record('z.zip', 'z'), { current: true })).rejects.toMatchObject({ code: 'stale' });
    expect((await newestIndex(root)).records.map((r) => r.name).sort()).toEqual(['snapshot.zip', 'x.zip']);
    // Counts alone change no rule: a write after them is current.
    await a.addDownloads([{ id: x.id, name: 'x.zip', count: 1 }]);
    expect((await b.refresh())!.records.map((r) => r.name).sort()).toEqual(['snapshot.zip', 'x.zip']);
    await a.addDownloads([{ id: x.id, name: 'x.zip', count: 1 }]);
    const z = await b.publish(staged, record('z.zip', 'z'), { current: true });
    expect(await (await a.read(z)).toArray()).toEqual([Buffer.from('z')]);
    await b.remove('x.zip', { current: true });
    expect((await newestIndex(root)).records.map((r) => r.name).sort()).toEqual(['snapshot.zip', 'z.zip']);
    expect(await readdir(join(root, STATE_DIR, 'tmp', 'w2'))).toEqual([]);
  });

  it('with current as a test of the changed records, only the changes it names make a write stale', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const [a, b] = [worker(root, 1), worker(root, 2)];
    await Promise.all([a.open(), b.open()]);
    await put(a, 'ext.zip', 'e');
    await b.refresh();
    const notTemplate = (r: { name: string }) => !r.name.startsWith('template');
    await put(a, 'template.zip', 't');
    await a.remove('template.zip');
    await b.setApproval('ext.zip', { state: 'approved', by: 'b', at: '2026-01-01T00:00:00.000Z' }, { current: notTemplate });
    await put(a, 'preset.zip', 'p');
    await expect(b.remove('ext.zip', { current: notTemplate })).rejects.toMatchObject({ code: 'stale' });
    // A removed record counts as it was.
    await b.refresh();
    await a.remove('preset.zip');
    await expect(b.remove('ext.zip', { current: notTemplate })).rejects.toMatchObject({ code: 'stale' });
    await b.refresh();
    await b.remove('ext.zip', { current: notTemplate });
    expect((await newestIndex(root)).records).toEqual([]);
  });

  it('prunes checkpoints another worker wrote too: none outlives its entries to let a worker that read it write under a used number', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const [a, b] = [worker(root, 1, 3, { checkpointEvery: 2 }), worker(root, 2, 3, { checkpointEvery: 2 })];
    await Promise.all([a.open(), b.open()]);
    // a writes checkpoint 2, which b never hears of; c starts from it.
    for (let i = 0; i < 2; i++) await put(a, `a${i}.zip`, `a${i}`);
    await a.settled();
    const c = worker(root, 3, 3, { checkpointEvery: 2 });
    await c.open();
    // b writes checkpoints 4, 6 and 8 and prunes the entries up to 4.
    for (let i = 0; i < 6; i++) await put(b, `b${i}.zip`, `b${i}`);
    await b.settled();
    expect(await generations(root)).toEqual(['000000000004.json', '000000000006.json', '000000000008.json']);
    expect((await put(c, 'c.zip', 'c')).id).toBe(9);
    expect((await newestIndex(root)).records).toHaveLength(9);
  });

  it('a worker merely behind (at a new store\'s first checkpoint, which has no entry) loses the race and commits after the others', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const [a, b] = [worker(root, 1), worker(root, 2)];
    await Promise.all([a.open(), b.open()]);
    for (let i = 0; i < 3; i++) await put(a, `a${i}.zip`, `a${i}`);
    expect((await put(b, 'b.zip', 'b')).id).toBe(4);
    expect((await newestIndex(root)).records.map((r) => r.name).sort()).toEqual(['a0.zip', 'a1.zip', 'a2.zip', 'b.zip']);
  });

  it('a worker that missed more changes than the journal keeps commits after them, never under a number they used', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    const [a, b] = [worker(root, 1, 2, { checkpointEvery: 2 }), worker(root, 2, 2, { checkpointEvery: 2 })];
    await Promise.all([a.open(), b.open()]);
    // b writes 10 changes (checkpoints at 2, 4, … 10; entries up to the oldest kept one pruned) while a hears nothing.
    for (let i = 0; i < 10; i++) await put(b, `b${i}.zip`, `b${i}`);
    await b.settled();
    expect((await entries(root)).length).toBeLessThan(10);
    const late = await put(a, 'late.zip', 'late');
    expect(late.id).toBe(11);
    const committed = await newestIndex(root);
    expect(committed.records.map((r) => r.name).sort()).toEqual([...Array.from({ length: 10 }, (_, i) => `b${i}.zip`), 'late.zip'].sort());
    expect((await b.refresh())!.records.map((r) => r.name)).toEqual(['late.zip']);
    // a hands on b's changes, which it had to read to commit after them.
    expect((await a.refresh())!.records.map((r) => r.name).sort()).toEqual(expect.arrayContaining(Array.from({ length: 10 }, (_, i) => `b${i}.zip`)));
    expect((await at(root).open()).map((r) => r.name).sort()).toEqual(committed.records.map((r) => r.name).sort());
  });

  it('refuses to start as a worker on a store of the layout before the state directory: one server alone migrates it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fsw-'));
    await mkdir(join(root, '.meta'));
    await writeFile(join(root, '.meta', 'index.json'), JSON.stringify({ lastId: 0, records: [] }));
    await expect(worker(root, 1).open()).rejects.toThrow(/start the server once with workers: 1/);
    expect(await at(root).open()).toEqual([]);
    expect(await worker(root, 1).open()).toEqual([]);
  });
});
