import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import type { ByteRange } from '../storage/storage.js';
import { collisionKey, normalizeEntryName, unsafeEntryNameReason } from './entry-names.js';

/** Bytes that can be read at any offset: a staged upload. */
export interface RandomSource {
  readonly size: number;
  read(range: ByteRange): Readable;
}

export interface Violation {
  /** The entry (or manifest field) at fault; `(archive)` for the archive as a whole. */
  path: string;
  message: string;
}

export interface ArchiveLimits {
  maxEntries: number;
  /** Real inflated bytes of one member. */
  maxEntryBytes: number;
  /** Real inflated bytes of all members. */
  maxTotalBytes: number;
  maxCentralDirectoryBytes: number;
}

export interface ArchiveEntry {
  /** As it lands on disk: `/` separators, no trailing `/`. */
  name: string;
  directory: boolean;
  raw: yauzl.Entry;
}

/** An archive whose central directory was read and checked; its members are read with `inflate`. */
export interface OpenedArchive {
  entries: ArchiveEntry[];
  /** Every directory, named by an entry or implied by a file's path. */
  directories: Set<string>;
  files: Set<string>;
  centralDirectoryBytes: number;
  violations: Violation[];
  inflate(limits: ArchiveLimits, keep: (name: string) => boolean, deadline: number): Promise<{ kept: Map<string, Buffer>; violations: Violation[] }>;
  close(): void;
}

const ARCHIVE = '(archive)';
const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;
const STORED = 0;
const DEFLATED = 8;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** Kept files (manifests) larger than this are a violation, not a buffer. */
const MAX_KEPT_BYTES = 1024 * 1024;
/** One report need not list a thousand bad names. */
const MAX_VIOLATIONS = 50;

/**
 * Opens a zip archive for vetting: reads its end record and central directory (never more than the limits allow
 * into memory) and checks every entry's metadata against the rules spec-kit's extractor applies. Nothing is
 * inflated yet; `inflate` streams members one by one, counting real bytes. Throws nothing for a bad archive:
 * every problem is a violation.
 */
export async function openArchive(source: RandomSource, limits: ArchiveLimits): Promise<OpenedArchive | { violations: Violation[] }> {
  const tail = await readTail(source, limits);
  if ('violations' in tail) return tail;
  const reader = new SourceReader(source, tail.offset, tail.bytes);
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(reader, source.size, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: false });
  } catch (err) {
    return { violations: [{ path: ARCHIVE, message: `not a readable zip archive: ${(err as Error).message}` }] };
  }
  if (zip.entryCount > limits.maxEntries) {
    zip.close();
    return { violations: [{ path: ARCHIVE, message: `the archive has ${zip.entryCount} entries; at most ${limits.maxEntries} are allowed` }] };
  }
  const violations: Violation[] = [];
  const entries: ArchiveEntry[] = [];
  try {
    for await (const raw of zip.eachEntry()) {
      const entry = checkEntry(raw, violations);
      if (entry) entries.push(entry);
    }
  } catch (err) {
    zip.close();
    return { violations: [...violations, { path: ARCHIVE, message: `not a readable zip archive: ${(err as Error).message}` }] };
  }
  const { files, directories } = checkLayout(entries, violations);
  return {
    entries,
    files,
    directories,
    centralDirectoryBytes: tail.bytes.length,
    violations: violations.slice(0, MAX_VIOLATIONS),
    inflate: (inflateLimits, keep, deadline) => inflateAll(zip, entries, inflateLimits, keep, deadline),
    close: () => zip.close(),
  };
}

/** The end of central directory record, and the central directory itself, read once into memory. */
async function readTail(source: RandomSource, limits: ArchiveLimits): Promise<{ offset: number; bytes: Buffer } | { violations: Violation[] }> {
  const notZip = (why: string) => ({ violations: [{ path: ARCHIVE, message: `not a readable zip archive: ${why}` }] });
  if (source.size < EOCD_SIZE) return notZip('it is too short');
  const length = Math.min(source.size, EOCD_SIZE + MAX_COMMENT + 20);
  const tail = await readRange(source, source.size - length, source.size - 1);
  let at = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i -= 1) {
    if (tail.readUInt32LE(i) === EOCD_SIGNATURE && i + EOCD_SIZE + tail.readUInt16LE(i + 20) === tail.length) {
      at = i;
      break;
    }
  }
  if (at < 0) return notZip('no end of central directory record');
  if (at >= 20 && tail.readUInt32LE(at - 20) === ZIP64_LOCATOR_SIGNATURE) {
    return { violations: [{ path: ARCHIVE, message: 'ZIP64 archives are refused by spec-kit' }] };
  }
  if (tail.readUInt16LE(at + 4) !== 0 || tail.readUInt16LE(at + 6) !== 0) return { violations: [{ path: ARCHIVE, message: 'multi-disk archives are refused by spec-kit' }] };
  const cdSize = tail.readUInt32LE(at + 12);
  const cdOffset = tail.readUInt32LE(at + 16);
  if (cdSize > limits.maxCentralDirectoryBytes) {
    return { violations: [{ path: ARCHIVE, message: `the central directory is ${cdSize} bytes; at most ${limits.maxCentralDirectoryBytes} are allowed` }] };
  }
  const eocdOffset = source.size - length + at;
  if (cdOffset + cdSize > eocdOffset) return notZip('the central directory lies outside the file');
  return { offset: cdOffset, bytes: await readRange(source, cdOffset, source.size - 1) };
}

/** The entry's own checks; null when it is unusable (its name cannot be trusted). */
function checkEntry(raw: yauzl.Entry, violations: Violation[]): ArchiveEntry | null {
  const rawName = yauzl.getFileNameLowLevel(raw.generalPurposeBitFlag, raw.fileNameRaw, [], true);
  const fail = (message: string) => {
    violations.push({ path: rawName, message });
    return null;
  };
  const unsafe = unsafeEntryNameReason(rawName);
  if (unsafe) return fail(`unsafe entry name: ${unsafe}`);
  const mode = (raw.externalFileAttributes >>> 16) & S_IFMT;
  if (mode === S_IFLNK) return fail('symbolic links are refused by spec-kit');
  if (mode !== 0 && mode !== S_IFREG && mode !== S_IFDIR) return fail('special files are refused by spec-kit');
  if (raw.extraFields.some((f) => f.id === 0x0001)) return fail('ZIP64 entries are refused by spec-kit');
  if (raw.versionNeededToExtract >= 45) return fail(`the entry needs zip version ${raw.versionNeededToExtract / 10} to extract; spec-kit refuses 4.5 and above`);
  if (raw.generalPurposeBitFlag & 0x1) return fail('encrypted entries cannot be installed');
  if (raw.compressionMethod !== STORED && raw.compressionMethod !== DEFLATED) {
    return fail(`compression method ${raw.compressionMethod} is refused by spec-kit (only stored and deflated)`);
  }
  const directory = rawName.endsWith('/') || rawName.endsWith('\\');
  return { name: normalizeEntryName(rawName), directory, raw };
}

/** Names that would land on one path, and files that are also used as directories. */
function checkLayout(entries: ArchiveEntry[], violations: Violation[]): { files: Set<string>; directories: Set<string> } {
  const files = new Set<string>();
  const directories = new Set<string>();
  const seen = new Map<string, string>();
  for (const entry of entries) {
    const key = collisionKey(entry.name);
    const earlier = seen.get(key);
    if (earlier !== undefined && !(entry.directory && directories.has(earlier))) {
      violations.push({ path: entry.name, message: `collides with "${earlier}" on a case-insensitive file system` });
      continue;
    }
    seen.set(key, entry.name);
    if (entry.directory) directories.add(entry.name);
    else files.add(entry.name);
    const parts = entry.name.split('/');
    for (let i = 1; i < parts.length; i += 1) directories.add(parts.slice(0, i).join('/'));
  }
  const directoryKeys = new Set([...directories].map(collisionKey));
  for (const file of files) {
    if (directoryKeys.has(collisionKey(file))) violations.push({ path: file, message: 'is a file and also a directory' });
  }
  return { files, directories };
}

/**
 * Inflates every file member in turn, counting real bytes (a bomb whose headers understate its size is caught at
 * the first byte past its declared size or past a limit) and checking CRC-32, so that every package served opens
 * in the CLI. Keeps the bytes of the files `keep` names, up to 1 MiB each.
 */
async function inflateAll(
  zip: yauzl.ZipFile,
  entries: ArchiveEntry[],
  limits: ArchiveLimits,
  keep: (name: string) => boolean,
  deadline: number,
): Promise<{ kept: Map<string, Buffer>; violations: Violation[] }> {
  const kept = new Map<string, Buffer>();
  const violations: Violation[] = [];
  let total = 0;
  for (const entry of entries) {
    if (entry.directory) continue;
    if (Date.now() > deadline) {
      violations.push({ path: ARCHIVE, message: 'the archive took too long to check' });
      break;
    }
    const declared = entry.raw.uncompressedSize;
    if (declared > limits.maxEntryBytes) {
      violations.push({ path: entry.name, message: `declares ${declared} bytes; a member may hold at most ${limits.maxEntryBytes}` });
      continue;
    }
    const room = limits.maxTotalBytes - total;
    const wanted = keep(entry.name);
    const result = await inflateEntry(zip, entry.raw, Math.min(declared, room), wanted, deadline);
    total += result.bytes;
    if (result.error) violations.push({ path: entry.name, message: result.error });
    else if (result.bytes > room) {
      violations.push({ path: ARCHIVE, message: `the archive inflates to more than ${limits.maxTotalBytes} bytes` });
      break;
    } else if (result.bytes !== declared) {
      violations.push({ path: entry.name, message: `declares ${declared} bytes but inflates to ${result.bytes > declared ? 'more' : result.bytes}` });
    } else if (result.crc !== entry.raw.crc32) {
      violations.push({ path: entry.name, message: 'its CRC-32 does not match its bytes (the archive is corrupt)' });
    } else if (wanted) {
      if (result.bytes > MAX_KEPT_BYTES) violations.push({ path: entry.name, message: `is larger than ${MAX_KEPT_BYTES} bytes` });
      else kept.set(entry.name, Buffer.concat(result.chunks));
    }
    if (violations.length >= MAX_VIOLATIONS) break;
  }
  return { kept, violations };
}

interface Inflated {
  /** Real bytes seen, at most `cap + 1`: reading stops at the first byte past the cap. */
  bytes: number;
  crc: number;
  chunks: Buffer[];
  error?: string;
}

function inflateEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, cap: number, keepBytes: boolean, deadline: number): Promise<Inflated> {
  return new Promise((resolve) => {
    zip.openReadStream(entry, (err, stream) => {
      if (err || !stream) {
        resolve({ bytes: 0, crc: 0, chunks: [], error: `cannot be read: ${err?.message ?? 'no data'}` });
        return;
      }
      const result: Inflated = { bytes: 0, crc: 0, chunks: [] };
      let done = false;
      const finish = (error?: string) => {
        if (done) return;
        done = true;
        if (error) result.error = error;
        stream.destroy();
        resolve(result);
      };
      stream.on('data', (chunk: Buffer) => {
        const room = cap + 1 - result.bytes;
        const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
        result.bytes += part.length;
        result.crc = crc32(part, result.crc);
        if (keepBytes && result.bytes <= MAX_KEPT_BYTES) result.chunks.push(part);
        if (result.bytes > cap) finish();
        else if (Date.now() > deadline) finish('the archive took too long to check');
      });
      stream.on('end', () => finish());
      stream.on('error', (e: Error) => finish(`cannot be inflated: ${e.message}`));
    });
  });
}

/**
 * yauzl's view of the source: reads inside the central directory and end record come from memory (one read
 * instead of two per entry), the members stream from the source.
 */
class SourceReader extends yauzl.RandomAccessReader {
  constructor(
    private readonly source: RandomSource,
    private readonly cachedFrom: number,
    private readonly cached: Buffer,
  ) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    if (start >= this.cachedFrom) return Readable.from([this.cached.subarray(start - this.cachedFrom, end - this.cachedFrom)]);
    if (end <= start) return Readable.from([]);
    return this.source.read({ start, end: end - 1 });
  }
}

async function readRange(source: RandomSource, start: number, end: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source.read({ start, end })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
