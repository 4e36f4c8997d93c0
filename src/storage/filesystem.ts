import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, constants } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { isSafeName } from '../domain/names.js';
import { mapLimit } from './concurrency.js';
import { Digest } from './digest.js';
import { StorageError, type ByteRange, type PackageRecord, type StagedBlob, type Storage } from './storage.js';

/** A record as persisted: the blob's mtime tells whether the blob changed behind the record's back. */
interface RecordFile extends PackageRecord {
  mtimeMs: number;
}

const READ_CHUNK = 1024 * 1024;
const SCAN_CONCURRENCY = 64;

class FsStagedBlob implements StagedBlob {
  private settled = false;
  constructor(readonly path: string, readonly size: number, readonly sha256: string, readonly mtimeMs: number) {}

  /** Hands the file over to its final place; after this, discard leaves it alone. */
  claim(): void {
    if (this.settled) throw new Error('staged blob already published or discarded');
    this.settled = true;
  }

  async discard(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await rm(this.path, { force: true });
  }
}

/**
 * Packages as plain files under `root`, each with a JSON record in `root/.meta` (named by a hash of the package name). Writes go to `root/.tmp` (same
 * file system, so the final rename is atomic) and are synced before they are renamed into place; `.tmp` is
 * emptied at start-up, so a crash never leaves a partial file visible. Package names never start with a dot,
 * so neither directory can collide with a package.
 */
export class FilesystemStorage implements Storage {
  private readonly metaDir: string;
  private readonly tmpDir: string;
  private readonly idFile: string;
  /** Blob mtimes of the records in use, so a record can be rewritten without reading it back. */
  private readonly mtimes = new Map<string, number>();
  private lastId = 0;
  private idWrites: Promise<void> = Promise.resolve();

  constructor(private readonly root: string, private readonly log: Logger) {
    this.metaDir = join(root, '.meta');
    this.tmpDir = join(root, '.tmp');
    this.idFile = join(this.metaDir, 'last-id');
  }

  async open(): Promise<PackageRecord[]> {
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.metaDir, { recursive: true });
    this.lastId = Number((await readFile(this.idFile, 'utf8').catch(() => '0')).trim()) || 0;

    const recordFiles = (await readdir(this.metaDir)).filter((f) => f.endsWith('.json'));
    const known = new Map<string, RecordFile>();
    for (const record of await mapLimit(recordFiles, SCAN_CONCURRENCY, (f) => readJson(join(this.metaDir, f)))) {
      if (record) known.set(record.name, record);
    }
    this.lastId = Math.max(this.lastId, ...[...known.values()].map((r) => r.id));

    const entries = await readdir(this.root, { withFileTypes: true });
    const names = entries.filter((e) => e.isFile() && isSafeName(e.name)).map((e) => e.name);
    for (const e of entries) {
      if (e.isFile() && !isSafeName(e.name)) this.log.warn({ file: e.name }, 'ignoring a file whose name is not a safe package name');
    }
    const records = await mapLimit(names, SCAN_CONCURRENCY, async (name) => {
      const st = await stat(join(this.root, name));
      const record = known.get(name) ?? null;
      if (record && record.size === st.size && record.mtimeMs === st.mtimeMs) {
        this.mtimes.set(name, st.mtimeMs);
        return withoutMtime(record);
      }
      return this.adopt(name, st.mtimeMs, st.mtime, record);
    });
    // Records of packages that are gone: a crash between writing a record and renaming its blob, or a hand deletion.
    const current = new Set(names.map(recordFileOf));
    await mapLimit(recordFiles.filter((f) => !current.has(f)), SCAN_CONCURRENCY, (f) => rm(join(this.metaDir, f), { force: true }));
    await this.idWrites;
    return records;
  }

  async stage(source: Readable): Promise<StagedBlob> {
    const path = join(this.tmpDir, randomUUID());
    const digest = new Digest();
    try {
      // flush: the bytes are on disk before the rename makes them visible.
      await pipeline(source, digest.tap, createWriteStream(path, { flags: 'wx', flush: true }));
      const { mtimeMs } = await stat(path);
      return new FsStagedBlob(path, digest.size, digest.hex(), mtimeMs);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
  }

  async publish(staged: StagedBlob, record: PackageRecord): Promise<void> {
    if (!(staged instanceof FsStagedBlob)) throw new TypeError('blob was not staged by this storage');
    staged.claim();
    try {
      // Record first: a crash between the two renames leaves a record whose mtime does not match the blob,
      // and open() re-hashes that blob rather than trusting the record.
      await this.writeRecord(record, staged.mtimeMs);
      await rename(staged.path, join(this.root, record.name));
    } catch (err) {
      await rm(staged.path, { force: true });
      throw err;
    }
    await syncDir(this.root);
  }

  async saveRecord(record: PackageRecord): Promise<void> {
    const mtimeMs = this.mtimes.get(record.name);
    if (mtimeMs === undefined) return; // removed meanwhile
    await this.writeRecord(record, mtimeMs);
  }

  async read(name: string, range?: ByteRange): Promise<Readable> {
    try {
      const handle = await open(join(this.root, name), 'r');
      return handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: READ_CHUNK });
    } catch (err) {
      throw asNotFound(err, name);
    }
  }

  async remove(name: string): Promise<void> {
    try {
      await unlink(join(this.root, name));
    } catch (err) {
      throw asNotFound(err, name);
    }
    this.mtimes.delete(name);
    await rm(this.recordPath(name), { force: true });
    await syncDir(this.root);
  }

  nextId(): Promise<number> {
    const id = ++this.lastId;
    this.idWrites = this.idWrites.then(() => this.writeAtomic(this.idFile, String(this.lastId)));
    return this.idWrites.then(() => id);
  }

  async check(): Promise<void> {
    try {
      await access(this.root, constants.R_OK | constants.W_OK);
      const probe = join(this.tmpDir, `probe-${randomUUID()}`);
      await writeFile(probe, 'ok');
      await readFile(probe);
      await unlink(probe);
    } catch (err) {
      throw new StorageError('unavailable', `storage at ${this.root} is not readable and writable: ${(err as Error).message}`, { cause: err });
    }
  }

  private recordPath(name: string): string {
    return join(this.metaDir, recordFileOf(name));
  }

  private async writeRecord(record: PackageRecord, mtimeMs: number): Promise<void> {
    const file: RecordFile = { ...record, mtimeMs };
    await this.writeAtomic(this.recordPath(record.name), JSON.stringify(file));
    this.mtimes.set(record.name, mtimeMs);
  }

  private async writeAtomic(path: string, data: string): Promise<void> {
    const tmp = join(this.tmpDir, randomUUID());
    const handle = await open(tmp, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  }

  /** A file placed by hand, or one whose record no longer matches it: hash it once and record it. */
  private async adopt(name: string, mtimeMs: number, mtime: Date, stale: RecordFile | null): Promise<PackageRecord> {
    const digest = new Digest();
    for await (const _ of digest.tap(createReadStream(join(this.root, name), { highWaterMark: READ_CHUNK }))) {
      // consumed for the digest
    }
    const record: PackageRecord = {
      id: stale?.id ?? (await this.nextId()),
      name,
      size: digest.size,
      sha256: digest.hex(),
      createdAt: stale?.createdAt ?? mtime.toISOString(),
      updatedAt: mtime.toISOString(),
      downloadCount: stale?.downloadCount ?? 0,
    };
    await this.writeRecord(record, mtimeMs);
    this.log.info({ name, size: record.size, sha256: record.sha256 }, stale ? 'package re-hashed' : 'package adopted');
    return record;
  }

}

/** Records are named by a hash of the package name: a 255-byte name plus a suffix would exceed NAME_MAX. */
function recordFileOf(name: string): string {
  return `${createHash('sha256').update(name).digest('hex')}.json`;
}

async function readJson(path: string): Promise<RecordFile | null> {
  try {
    const record = JSON.parse(await readFile(path, 'utf8')) as RecordFile;
    return typeof record.name === 'string' && isSafeName(record.name) ? record : null;
  } catch {
    return null;
  }
}

function withoutMtime({ mtimeMs: _, ...record }: RecordFile): PackageRecord {
  return record;
}

function asNotFound(err: unknown, name: string): unknown {
  return (err as NodeJS.ErrnoException).code === 'ENOENT' ? new StorageError('not-found', `no package named ${name}`) : err;
}

/** Makes a rename durable. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
