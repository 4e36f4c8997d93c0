import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FilesystemStorage } from '../../../src/storage/filesystem.js';
import { sha256 } from '../../helpers/zip.js';
import { describeStorage } from './storage-suite.js';

const silent = pino({ level: 'silent' });
const roots = new WeakMap<object, string>();

async function at(root: string): Promise<FilesystemStorage> {
  const storage = new FilesystemStorage(root, silent);
  roots.set(storage, root);
  return storage;
}

describeStorage('filesystem', {
  fresh: async () => at(await mkdtemp(join(tmpdir(), 'rs-fs-'))),
  reopen: async (storage) => at(roots.get(storage)!),
  visible: async (storage) => (await readdir(roots.get(storage)!)).filter((n) => !n.startsWith('.')),
  staged: async (storage) => readdir(join(roots.get(storage)!, '.tmp')),
});

describe('filesystem storage specifics', () => {
  it('sweeps the staging area, drops records whose file is gone, adopts files placed by hand, and ignores unsafe names', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = await at(root);
    await storage.open();
    await writeFile(join(root, '.tmp', 'partial-upload'), 'half');
    const ghost = { id: 9, name: 'ghost.zip', size: 1, sha256: 'x', createdAt: '', updatedAt: '', downloadCount: 0, mtimeMs: 1 };
    await writeFile(join(root, '.meta', 'index.json'), JSON.stringify({ version: 1, lastId: 9, records: [ghost] }));
    await writeFile(join(root, 'ok.zip'), 'by hand');
    await writeFile(join(root, 'bad\u0001name.zip'), 'unsafe');
    const records = await (await at(root)).open();
    expect(records.map((r) => [r.name, r.sha256])).toEqual([['ok.zip', sha256('by hand')]]);
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
    const index = JSON.parse(await readFile(join(root, '.meta', 'index.json'), 'utf8'));
    expect(index.records.map((r: { name: string }) => r.name)).toEqual(['ok.zip']);
    // ids stay above everything ever handed out, including the dropped record's
    expect(records[0]!.id).toBeGreaterThan(9);
  });

  it('rebuilds an index that cannot be read, from the files', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    await (await at(root)).open();
    await writeFile(join(root, 'kept.zip'), 'kept');
    await writeFile(join(root, '.meta', 'index.json'), '{ not json');
    const records = await (await at(root)).open();
    expect(records.map((r) => r.name)).toEqual(['kept.zip']);
  });
});
