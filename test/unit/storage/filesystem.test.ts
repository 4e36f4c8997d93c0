import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
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
  it('sweeps the staging area and orphan records at open, and ignores unsafe file names', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-fs-'));
    const storage = await at(root);
    await storage.open();
    await writeFile(join(root, '.tmp', 'partial-upload'), 'half');
    await writeFile(join(root, '.meta', `${'0'.repeat(64)}.json`), JSON.stringify({ id: 9, name: 'ghost.zip', size: 1, sha256: 'x', mtimeMs: 1 }));
    await writeFile(join(root, 'ok.zip'), 'by hand');
    await writeFile(join(root, 'bad\u0001name.zip'), 'unsafe');
    const records = await (await at(root)).open();
    expect(records.map((r) => [r.name, r.sha256])).toEqual([['ok.zip', sha256('by hand')]]);
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
    expect((await readdir(join(root, '.meta'))).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    // ids stay above everything ever seen, including the orphan's
    expect(records[0]!.id).toBeGreaterThan(9);
  });
});
