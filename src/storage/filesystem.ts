import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, constants, open as openFd, statSync } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { isSafeName } from '../domain/names.js';
import { tagOfName } from '../domain/version.js';
import { mapLimit } from './concurrency.js';
import { Digest } from './digest.js';
import { StorageError, type ByteRange, type PackageRecord, type StagedBlob, type Storage } from './storage.js';

/** A record as persisted: the blob's mtime tells whether the blob changed behind the record's back. */
interface StoredRecord extends PackageRecord {
  mtimeMs: number;
}

/** `.meta/index.json`: every record, and the highest id ever handed out. */
interface IndexFile {
  version: 1;
  lastId: number;
  records: StoredRecord[];
}

const READ_CHUNK = 1024 * 1024;
const VET_CHUNK = 64 * 1024;
const HASH_CONCURRENCY = 8;

class FsStagedBlob implements StagedBlob {
  private settled = false;
  constructor(readonly path: string, readonly size: number, readonly sha256: string, readonly mtimeMs: number) {}

  get localPath(): string {
    return this.path;
  }

  /** Hands the file over to its final place; after this, discard leaves it alone. */
  claim(): void {
    if (this.settled) throw new Error('staged blob already published or discarded');
    this.settled = true;
  }

  read(range: ByteRange): Readable {
    if (this.settled) throw new Error('staged blob already published or discarded');
    // Small reads: vetting streams the whole archive once more, and 1 MiB buffers would pile up between collections.
    return createReadStream(this.path, { start: range.start, end: range.end, highWaterMark: Math.max(1, Math.min(VET_CHUNK, range.end - range.start + 1)) });
  }

  async discard(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await rm(this.path, { force: true });
  }
}

/**
 * Packages as plain files under `root`, their records in one index file, `root/.meta/index.json`, so that
 * start-up reads one file rather than one per package. Writes go to `root/.tmp` (same file system, so the final
 * rename is atomic) and are synced before they are renamed into place; `.tmp` is emptied at start-up, so a crash
 * never leaves a partial file visible. Package names never start with a dot, so neither directory can collide
 * with a package.
 *
 * A publish writes the index (with the new record) before it renames the blob into place: a crash between the two
 * leaves a record whose blob is missing or whose mtime does not match, and open() drops or re-hashes it.
 */
export class FilesystemStorage implements Storage {
  private readonly metaDir: string;
  private readonly tmpDir: string;
  private readonly indexFile: string;
  private readonly records = new Map<string, StoredRecord>();
  private lastId = 0;
  private indexWrites: Promise<void> = Promise.resolve();

  constructor(private readonly root: string, private readonly log: Logger) {
    this.metaDir = join(root, '.meta');
    this.tmpDir = join(root, '.tmp');
    this.indexFile = join(this.metaDir, 'index.json');
  }

  async open(): Promise<PackageRecord[]> {
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.metaDir, { recursive: true });
    const index = await this.readIndex();
    this.lastId = Math.max(index.lastId, ...index.records.map((r) => r.id));
    const known = new Map(index.records.map((r) => [r.name, r]));

    const entries = await readdir(this.root, { withFileTypes: true });
    const toHash: { name: string; mtimeMs: number; mtime: Date; stale: StoredRecord | null }[] = [];
    const onDisk = new Set<string>();
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      if (!isSafeName(entry.name)) {
        this.log.warn({ file: entry.name }, 'ignoring a file whose name is not a safe package name');
        continue;
      }
      onDisk.add(entry.name);
      // Synchronous on purpose: one stat per package, and the promise API costs ten times the syscall.
      const st = statSync(join(this.root, entry.name));
      const record = known.get(entry.name) ?? null;
      if (record && record.size === st.size && record.mtimeMs === st.mtimeMs) this.records.set(entry.name, record);
      else toHash.push({ name: entry.name, mtimeMs: st.mtimeMs, mtime: st.mtime, stale: record });
    }
    // Files placed by hand, or changed behind their record: hash each once and record it.
    const adopted = await mapLimit(toHash, HASH_CONCURRENCY, (file) => this.adopt(file.name, file.mtimeMs, file.mtime, file.stale));
    // Records whose file is gone: a crash between writing the index and renaming the blob, or a hand deletion.
    const dropped = index.records.filter((r) => !onDisk.has(r.name)).length;
    if (adopted.length > 0 || dropped > 0 || !index.fromFile) await this.writeIndex();
    if (adopted.length > 0 || dropped > 0) {
      this.log.info(
        { adopted: adopted.filter((a) => !a.stale).length, rehashed: adopted.filter((a) => a.stale).length, dropped },
        'storage reconciled with the files on disk',
      );
    }
    return [...this.records.values()].map(withoutMtime);
  }

  async stage(source: Readable): Promise<StagedBlob> {
    const path = join(this.tmpDir, randomUUID());
    const digest = new Digest();
    try {
      // flush: the bytes are on disk before the rename makes them visible.
      await pipeline(source, digest.passThrough(), createWriteStream(path, { flags: 'wx', flush: true, highWaterMark: READ_CHUNK }));
      const { mtimeMs } = statSync(path);
      return new FsStagedBlob(path, digest.size, digest.hex(), mtimeMs);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
  }

  async publish(staged: StagedBlob, input: PackageRecord, options: { ifAbsent?: boolean } = {}): Promise<PackageRecord> {
    if (!(staged instanceof FsStagedBlob)) throw new TypeError('blob was not staged by this storage');
    // One process owns a directory, so this map is the store: nobody else can have written the name meanwhile.
    if (options.ifAbsent && this.records.has(input.name)) {
      await staged.discard();
      throw new StorageError('conflict', `${input.name} exists`);
    }
    staged.claim();
    const previous = this.records.get(input.name);
    // Counts belong to the store (addDownloads): a replaced package keeps its count.
    const record = { ...input, id: input.id === 0 ? ++this.lastId : input.id, downloadCount: previous?.downloadCount ?? 0 };
    this.records.set(record.name, { ...record, mtimeMs: staged.mtimeMs });
    try {
      await this.writeIndex();
      await rename(staged.path, join(this.root, record.name));
    } catch (err) {
      if (previous) this.records.set(record.name, previous);
      else this.records.delete(record.name);
      await rm(staged.path, { force: true });
      throw err;
    }
    await syncDir(this.root);
    return record;
  }

  async addDownloads(counts: ReadonlyMap<string, number>): Promise<void> {
    let changed = false;
    for (const [name, delta] of counts) {
      const current = this.records.get(name);
      if (!current) continue; // removed meanwhile
      this.records.set(name, { ...current, downloadCount: current.downloadCount + delta });
      changed = true;
    }
    if (changed) await this.writeIndex();
  }

  async refresh(): Promise<PackageRecord[] | null> {
    return null;
  }

  async read(name: string, range?: ByteRange): Promise<Readable> {
    // The callback API: on the hot path of every download, fs/promises' FileHandle costs several times more.
    const fd = await new Promise<number>((resolve, reject) =>
      openFd(join(this.root, name), 'r', (err, fd) => (err ? reject(asNotFound(err, name)) : resolve(fd))),
    );
    // A buffer no larger than what is read: a 1 KiB package must not allocate 1 MiB.
    const length = range ? range.end - range.start + 1 : READ_CHUNK;
    return createReadStream('', { fd, start: range?.start, end: range?.end, highWaterMark: Math.max(1, Math.min(READ_CHUNK, length)) });
  }

  async remove(name: string): Promise<void> {
    try {
      await unlink(join(this.root, name));
    } catch (err) {
      throw asNotFound(err, name);
    }
    await syncDir(this.root);
    this.records.delete(name);
    await this.writeIndex();
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

  private async readIndex(): Promise<Pick<IndexFile, 'lastId' | 'records'> & { fromFile: boolean }> {
    let text: string;
    try {
      text = await readFile(this.indexFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { lastId: 0, records: [], fromFile: false };
      throw err;
    }
    try {
      const index = JSON.parse(text) as IndexFile;
      const records = index.records
        .filter((r) => typeof r.name === 'string' && isSafeName(r.name))
        .map((r) => ({ ...r, tag: r.tag === undefined ? tagOfName(r.name) : r.tag, kind: r.kind ?? 'template', catalog: r.catalog ?? null }));
      return { lastId: Number(index.lastId) || 0, records, fromFile: true };
    } catch (err) {
      // Only a hand edit can break it (writes are atomic): re-hash everything rather than refuse to start.
      this.log.error({ err, file: this.indexFile }, 'the package index is unreadable; rebuilding it from the files');
      return { lastId: 0, records: [], fromFile: false };
    }
  }

  /** Writes the whole index atomically (temp file, fsync, rename), one write at a time, each with the latest state. */
  private writeIndex(): Promise<void> {
    const write = this.indexWrites.then(async () => {
      const index: IndexFile = { version: 1, lastId: this.lastId, records: [...this.records.values()] };
      const tmp = join(this.tmpDir, `index-${randomUUID()}`);
      const handle = await open(tmp, 'wx');
      try {
        await handle.writeFile(JSON.stringify(index));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.indexFile);
    });
    this.indexWrites = write.catch(() => undefined);
    return write;
  }

  private async adopt(name: string, mtimeMs: number, mtime: Date, stale: StoredRecord | null): Promise<{ stale: boolean }> {
    const digest = new Digest();
    for await (const chunk of createReadStream(join(this.root, name), { highWaterMark: READ_CHUNK })) digest.update(chunk as Buffer);
    this.records.set(name, {
      id: stale?.id ?? ++this.lastId,
      name,
      size: digest.size,
      sha256: digest.hex(),
      createdAt: stale?.createdAt ?? mtime.toISOString(),
      updatedAt: mtime.toISOString(),
      downloadCount: stale?.downloadCount ?? 0,
      // A file placed by hand belongs to the release its name ends with.
      tag: stale ? stale.tag : tagOfName(name),
      // Nothing vetted a file placed by hand, so it is served as a template, never as a catalog package.
      kind: stale?.kind ?? 'template',
      catalog: stale?.catalog ?? null,
      mtimeMs,
    });
    this.log.debug({ name, size: digest.size }, stale ? 'package re-hashed' : 'package adopted');
    return { stale: stale !== null };
  }
}

function withoutMtime({ mtimeMs: _, ...record }: StoredRecord): PackageRecord {
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
