import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createInflateRaw, crc32 } from 'node:zlib';
import {
  collisionKey,
  decodeEntryName,
  displayName,
  escapeForDisplay,
  normalizeEntryName,
  unsafeEntryNameReason,
  unsafeRawNameReason,
} from './entry-names.js';
import { ARCHIVE, readZipStructure, unicodePathOf, type ByteSource, type Violation, type ZipEntry } from './zip-structure.js';

export type { Violation } from './zip-structure.js';

/** A staged upload: read a few bytes at a time for its structure, streamed for its members. */
export interface ArchiveSource extends ByteSource {
  /** `end` is exclusive. */
  stream(start: number, end: number): Readable;
  /** Reads into `buffer` from `offset`; the bytes read (0 at the end). Lets stored members be read without garbage. */
  readInto(buffer: Buffer, offset: number): number;
}

export interface ArchiveLimits {
  maxEntries: number;
  /** Real inflated bytes of one member. */
  maxEntryBytes: number;
  /** Real inflated bytes of all members. */
  maxTotalBytes: number;
  maxCentralDirectoryBytes: number;
}

/** An entry that passed the name rules: its name as the CLI decodes it and as it lands on disk. */
export interface ArchiveEntry {
  /** As it lands on disk: `/` separators, no trailing `/`. */
  name: string;
  directory: boolean;
  zip: ZipEntry;
}

/** An archive whose structure and entries were read and checked; its members are read with `inflateMembers`. */
export interface OpenedArchive {
  entries: ArchiveEntry[];
  /** Every directory, named by an entry or implied by a file's path. */
  directories: Set<string>;
  files: Set<string>;
  centralDirectoryBytes: number;
  violations: Violation[];
}

const STORED = 0;
const DEFLATED = 8;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** One report need not list a thousand bad names. */
const MAX_VIOLATIONS = 50;

/**
 * Reads an archive for vetting: its strict structure (zip-structure.ts), then every entry's name (decoded as the
 * CLI decodes it, and its raw bytes) and type against the rules spec-kit's extractor applies. Nothing is inflated
 * yet. Returns nothing but violations for a bad archive.
 */
export function openArchive(source: ByteSource, limits: ArchiveLimits): OpenedArchive | { violations: Violation[] } {
  const structure = readZipStructure(source, limits);
  if ('violations' in structure) return { violations: structure.violations.slice(0, MAX_VIOLATIONS) };
  const violations: Violation[] = [];
  const entries: ArchiveEntry[] = [];
  for (const zip of structure.entries) {
    const entry = checkEntry(zip, violations);
    if (entry) entries.push(entry);
  }
  const { files, directories } = checkLayout(entries, violations);
  return { entries, files, directories, centralDirectoryBytes: structure.centralDirectoryBytes, violations: violations.slice(0, MAX_VIOLATIONS) };
}

/** The entry's own checks; null when it is unusable (its name cannot be trusted). */
function checkEntry(zip: ZipEntry, violations: Violation[]): ArchiveEntry | null {
  const decoded = decodeEntryName(zip.rawName, zip.flags);
  const path = displayName(zip.rawName, zip.flags);
  const fail = (message: string) => {
    violations.push({ path, message });
    return null;
  };
  if (decoded === null) return fail('the name is not valid UTF-8, though the entry says it is');
  const unsafe = unsafeRawNameReason(zip.rawName) ?? unsafeEntryNameReason(decoded);
  if (unsafe) return fail(`unsafe entry name: ${unsafe}`);
  // Info-ZIP's unzip extracts under this name, Python's zipfile under the header's: they must be one.
  for (const extras of [zip.extras, zip.localExtras]) {
    const other = unicodePathOf(extras);
    if (other !== undefined && other !== decoded) {
      return fail(`its Unicode Path extra field names ${other === null ? 'nothing readable' : JSON.stringify(escapeForDisplay(other))}: zip readers disagree on its name`);
    }
  }
  const mode = (zip.externalAttributes >>> 16) & S_IFMT;
  if (mode === S_IFLNK) return fail('symbolic links are refused by spec-kit');
  if (mode !== 0 && mode !== S_IFREG && mode !== S_IFDIR) return fail('special files are refused by spec-kit');
  // Bit 0 encrypted, 5 patched data, 6 strong encryption, 13 an encrypted central directory: Python's zipfile
  // opens none of them, so the CLI could not install the package.
  if (zip.flags & 0x1) return fail('encrypted entries cannot be installed');
  if (zip.flags & 0x2060) return fail('patched or strongly encrypted entries cannot be installed (general purpose flag bits 5, 6 or 13)');
  if (zip.method !== STORED && zip.method !== DEFLATED) return fail(`compression method ${zip.method} is refused by spec-kit (only stored and deflated)`);
  // Python's zipfile takes only a trailing "/" for a directory, so a name ending in "\\" is a file to it (the CLI
  // then maps the "\\"): refused, rather than vetted as an empty directory while a client extracts its bytes.
  if (decoded.endsWith('\\')) return fail('the name ends in "\\": zip readers disagree on whether it is a directory');
  const directory = decoded.endsWith('/');
  // A directory is never read (some tools deflate it to two bytes of nothing); one that declares content is a lie.
  if (directory && zip.uncompressedSize !== 0) return fail('is a directory entry that declares content');
  if (!directory && zip.method === DEFLATED && zip.compressedSize === 0) return fail('is deflated but holds no compressed data');
  return { name: normalizeEntryName(decoded), directory, zip };
}

/** Names that would land on one path, and files that are also used as directories. */
function checkLayout(entries: ArchiveEntry[], violations: Violation[]): { files: Set<string>; directories: Set<string> } {
  const files = new Set<string>();
  const directories = new Set<string>();
  const seen = new Map<string, string>();
  const exact = new Set<string>();
  for (const entry of entries) {
    const shown = escapeForDisplay(entry.name);
    const whole = `${entry.name}${entry.directory ? '/' : ''}`;
    if (exact.has(whole)) {
      violations.push({ path: shown, message: 'appears twice in the archive: zip readers disagree on which one is extracted' });
      continue;
    }
    exact.add(whole);
    const key = collisionKey(entry.name);
    const earlier = seen.get(key);
    if (earlier !== undefined && !(entry.directory && directories.has(earlier))) {
      violations.push({ path: shown, message: `collides with "${escapeForDisplay(earlier)}" on a case-insensitive file system` });
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
    if (directoryKeys.has(collisionKey(file))) violations.push({ path: escapeForDisplay(file), message: 'is a file and also a directory' });
  }
  return { files, directories };
}

/**
 * Inflates every file member in turn, counting real bytes (a bomb whose headers understate its size is caught at
 * the first byte past its declared size or past a limit) and checking CRC-32 and that the deflate stream fills its
 * compressed size exactly, so that every package served opens in the CLI. Keeps the bytes of the files `keep`
 * names, up to `maxKeptBytes` each.
 */
export async function inflateMembers(
  source: ArchiveSource,
  entries: ArchiveEntry[],
  limits: ArchiveLimits,
  keep: (name: string) => boolean,
  maxKeptBytes: number,
  options: { sha256?: boolean } = {},
): Promise<{ kept: Map<string, Buffer>; violations: Violation[]; sha256: Map<string, string> }> {
  const kept = new Map<string, Buffer>();
  const digests = new Map<string, string>();
  const violations: Violation[] = [];
  let total = 0;
  for (const entry of entries) {
    if (entry.directory) continue;
    const path = escapeForDisplay(entry.name);
    const declared = entry.zip.uncompressedSize;
    if (declared > limits.maxEntryBytes) {
      violations.push({ path, message: `declares ${declared} bytes; a member may hold at most ${limits.maxEntryBytes}` });
      continue;
    }
    const room = limits.maxTotalBytes - total;
    const wanted = keep(entry.name);
    const hash = options.sha256 ? createHash('sha256') : undefined;
    const result = await inflateEntry(source, entry.zip, Math.min(declared, room), wanted ? maxKeptBytes : 0, hash);
    total += result.bytes;
    if (result.error) violations.push({ path, message: result.error });
    else if (result.bytes > room) {
      violations.push({ path: ARCHIVE, message: `the archive inflates to more than ${limits.maxTotalBytes} bytes` });
      break;
    } else if (result.bytes !== declared) {
      violations.push({ path, message: `declares ${declared} bytes but inflates to ${result.bytes > declared ? 'more' : result.bytes}` });
    } else if (result.crc !== entry.zip.crc32) {
      violations.push({ path, message: 'its CRC-32 does not match its bytes (the archive is corrupt)' });
    } else if (result.trailing) {
      violations.push({ path, message: 'its compressed data does not end where its deflate stream ends: zip readers disagree on what follows' });
    } else {
      if (hash) digests.set(entry.name, hash.digest('hex'));
      if (wanted) {
        if (result.bytes > maxKeptBytes) violations.push({ path, message: `is ${result.bytes} bytes; a manifest may have at most ${maxKeptBytes}` });
        else kept.set(entry.name, Buffer.concat(result.chunks));
      }
    }
    if (violations.length >= MAX_VIOLATIONS) break;
  }
  return { kept, violations, sha256: digests };
}

interface Inflated {
  /** Real bytes seen, at most `cap + 1`: reading stops at the first byte past the cap. */
  bytes: number;
  crc: number;
  chunks: Buffer[];
  /** The deflate stream ended before its compressed size did. */
  trailing?: boolean;
  error?: string;
}

/** 1 MiB: a 100 MiB stored member is checked in ~35 ms instead of ~50 ms with 64 KiB reads (fewer system calls). */
const STORED_CHUNK = 1024 * 1024;
/** The one buffer stored members are read through: readStored runs start to end synchronously, so it is never shared. */
let storedBuffer: Buffer | null = null;

/**
 * A stored member, read through one reused buffer: a stream would allocate a buffer per chunk outside the heap,
 * and tens of MiB of them pile up before V8 collects them (the worker's memory stays flat this way).
 */
function readStored(source: ArchiveSource, entry: ZipEntry, cap: number, keepBytes: number, hash?: Hash): Inflated {
  const result: Inflated = { bytes: 0, crc: 0, chunks: [] };
  storedBuffer ??= Buffer.allocUnsafeSlow(STORED_CHUNK);
  const buffer = storedBuffer;
  let offset = entry.dataOffset;
  const end = entry.dataOffset + entry.compressedSize;
  while (offset < end && result.bytes <= cap) {
    const n = source.readInto(buffer.subarray(0, Math.min(buffer.length, end - offset, cap + 1 - result.bytes)), offset);
    if (n === 0) return { ...result, error: 'cannot be read: the archive ends inside it' };
    const part = buffer.subarray(0, n);
    result.bytes += n;
    result.crc = crc32(part, result.crc);
    hash?.update(part);
    if (result.bytes <= keepBytes) result.chunks.push(Buffer.from(part));
    offset += n;
  }
  return result;
}

function inflateEntry(source: ArchiveSource, entry: ZipEntry, cap: number, keepBytes: number, hash?: Hash): Promise<Inflated> {
  if (entry.method === STORED) return Promise.resolve(readStored(source, entry, cap, keepBytes, hash));
  return new Promise((resolve) => {
    const raw = source.stream(entry.dataOffset, entry.dataOffset + entry.compressedSize);
    const inflater = entry.method === DEFLATED ? createInflateRaw() : null;
    const stream = inflater ? raw.pipe(inflater) : raw;
    const result: Inflated = { bytes: 0, crc: 0, chunks: [] };
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      if (error) result.error = error;
      raw.destroy();
      inflater?.destroy();
      resolve(result);
    };
    stream.on('data', (chunk: Buffer) => {
      const room = cap + 1 - result.bytes;
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      result.bytes += part.length;
      result.crc = crc32(part, result.crc);
      hash?.update(part);
      if (result.bytes <= keepBytes) result.chunks.push(part);
      if (result.bytes > cap) finish();
    });
    stream.on('end', () => {
      if (inflater && inflater.bytesWritten !== entry.compressedSize) result.trailing = true;
      finish();
    });
    stream.on('error', (e: Error) => finish(`cannot be inflated: ${e.message}`));
    raw.on('error', (e: Error) => finish(`cannot be read: ${e.message}`));
  });
}

export function bufferArchive(bytes: Buffer): ArchiveSource {
  return {
    size: bytes.length,
    read: (offset, length) => bytes.subarray(offset, offset + length),
    stream: (start, end) => Readable.from([bytes.subarray(start, end)]),
    readInto: (buffer, offset) => bytes.copy(buffer, 0, offset, Math.min(bytes.length, offset + buffer.length)),
  };
}
