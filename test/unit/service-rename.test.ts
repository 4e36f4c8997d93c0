import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { PackageService } from '../../src/service/packages.js';
import { FilesystemStorage } from '../../src/storage/filesystem.js';
import { StorageError, type Storage } from '../../src/storage/storage.js';
import { vetFile } from '../../src/vetting/vet.js';
import { catalogZip } from '../helpers/packages.js';

const silent = pino({ level: 'silent' });

/** The store, except that every write after the first `healthy` ones fails, as a store that goes away would. */
function failingAfter(storage: Storage, healthy: number): Storage {
  let writes = 0;
  const fail = () => {
    writes += 1;
    if (writes > healthy) throw new StorageError('unavailable', 'the store went away');
  };
  return new Proxy(storage, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (!['publish', 'publishBatch', 'remove', 'setApproval'].includes(String(key))) return value.bind(target);
      return async (...args: unknown[]) => {
        fail();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('a version stored again under another name (1.0 as 1.0.0)', () => {
  it('replaces the old name in the change that stores the new one: a store failing right after leaves one record per id, and the count goes on', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rs-rename-'));
    const first = new FilesystemStorage(root, silent);
    // Two writes: the upload of 1.0, and the upload of 1.0.0 over it. A third (a separate removal of 1.0) fails.
    const service = new PackageService(failingAfter(first, 2), { maxPackages: 0, vet: vetFile }, silent);
    await service.open();
    const publish = async (version: string, overwrite: boolean) => {
      const staged = await service.stage(Readable.from([await catalogZip('extension', { id: 'rn-ext', version, info: { description: version } })]));
      return service.publish('upload.zip', staged, { overwrite });
    };
    const old = await publish('1.0', false);
    expect(old.record.name).toBe('extension-rn-ext-1.0.zip');
    service.recordDownload(old.record);

    const renamed = await publish('1.0.0', true);
    expect(renamed).toMatchObject({ created: false, record: { id: old.record.id, name: 'extension-rn-ext-1.0.0.zip', downloadCount: 1 } });
    expect(() => service.get('extension-rn-ext-1.0.zip')).toThrow('no package named');

    // What a restart reads: the new record alone, with the count, and no record set aside for sharing its id.
    await service.close();
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const reopened = await new FilesystemStorage(root, log).open();
    expect(reopened.map((r) => [r.id, r.name, r.downloadCount])).toEqual([[old.record.id, 'extension-rn-ext-1.0.0.zip', 1]]);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });
});
