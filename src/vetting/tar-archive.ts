import { createInflateRaw, crc32 } from 'node:zlib';
import type { Writable } from 'node:stream';
import tar from 'tar-stream';
import type { ArchiveLimits, ArchiveSource } from './archive.js';
import { collisionKey, escapeForDisplay, normalizeEntryName, unsafeEntryNameReason } from './entry-names.js';
import { ARCHIVE, type Violation } from './zip-structure.js';

/**
 * The tar.gz reader of vetting. The CLI extracts with Python's `gzip` and `tarfile` (`safe_extract_tar`); a
 * JavaScript client would use a reader such as `tar-stream`. Where two readers could see different entries, the
 * archive is refused, whichever reading is harmless, as the zip reader does:
 *
 * - **gzip**: exactly one member, parsed here (header flags, deflate data through node:zlib's raw inflater, CRC-32
 *   and size trailer), ending exactly at the end of the file. Python's gzip reads a second member as more of the
 *   same stream and skips trailing zeros while Node's gunzip ignores trailing garbage: concatenated members and
 *   any byte after the trailer are refused.
 * - **tar**: every 512-byte header is read twice, by `tar-stream` and by a strict reader here that follows
 *   Python's `tarfile` (its name, prefix, GNU long name and pax `path` rules, its octal fields, its types) and
 *   refuses whatever it does not fully understand; each entry's name, type and size must be the same in both.
 *   Refused outright: formats other than POSIX ustar and GNU, base-256 numbers, global pax headers (`tarfile`
 *   applies them to every later member's name), pax `size`, `linkpath`, `hdrcharset` and `GNU.sparse.*` records
 *   (the readers apply them differently, or not at all), a pax `path` together with a GNU long name (`tarfile`
 *   and `tar-stream` let a different one win), two pax headers or long names for one entry, a directory with
 *   data, and any non-zero byte after the end-of-archive block (`tarfile` stops at the first zero block; a reader
 *   that skips it would read what follows). A pax `path` alone is accepted: both readers take it (strict UTF-8,
 *   records that tile the header exactly), and the names they give are compared.
 * - **entries**: only regular files and directories (no links, devices, FIFOs or anything else: spec-kit refuses
 *   them), the extractor's name rules (entry-names.ts), and, as `safe_extract_tar` does, two members whose names
 *   fold to one path conflict even when both are directories.
 * - **limits**: at most `maxEntries` members, `maxEntryBytes` a member and `maxTotalBytes` in all, checked against
 *   each header before its data is read (tar sizes are exact: the data is what the header says); headers, pax
 *   records, padding and trailing zero blocks together at most `maxCentralDirectoryBytes`. Every inflated byte is
 *   counted as it streams: the first byte past either budget stops the inflater, so a gzip bomb is never inflated
 *   beyond its limit.
 *
 * Nothing is written anywhere; only the files `keep` selects (manifests, up to `maxKeptBytes` each) are kept.
 */

export interface TarEntry {
  /** As the CLI extracts it: `/` separators, no trailing `/`. */
  name: string;
  directory: boolean;
  size: number;
}

export interface OpenedTar {
  entries: TarEntry[];
  files: Set<string>;
  directories: Set<string>;
  /** The bytes of each kept file; a kept file larger than `maxKeptBytes` is listed in `oversized` instead. */
  kept: Map<string, Buffer>;
  oversized: Map<string, number>;
  violations: Violation[];
  /** Bytes the inflater produced before reading stopped (for the limits' tests). */
  inflatedBytes: number;
}

const BLOCK = 512;
/** A pax header or GNU long name longer than this is no real package's. */
const MAX_METADATA_ENTRY = 64 * 1024;
const MAX_GZIP_HEADER = 256 * 1024;
const MAX_VIOLATIONS = 50;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const TYPE_NAMES: Record<string, string> = {
  '1': 'hard links are refused by spec-kit',
  '2': 'symbolic links are refused by spec-kit',
  '3': 'character devices are refused by spec-kit (only regular files and directories)',
  '4': 'block devices are refused by spec-kit (only regular files and directories)',
  '6': 'FIFOs are refused by spec-kit (only regular files and directories)',
  '7': 'contiguous files are refused (only regular files and directories)',
  K: 'GNU long link names are refused (links are refused by spec-kit)',
  S: 'GNU sparse files are refused (only regular files and directories)',
  g: 'global pax headers are refused: tar readers apply them differently to the members that follow',
};

/** One member as the strict reader saw it, waiting for tar-stream's view of it. */
interface WalkedEntry {
  /** Python's name, before the trailing `/` is dropped; null when it is not UTF-8. */
  name: string | null;
  type: 'file' | 'directory' | 'other';
  size: number;
}

/**
 * The strict reader: fed the inflated tar stream chunk by chunk, it walks the blocks as `tarfile` does and stops
 * at the first thing it does not accept (`fatal`). It keeps what `keep` selects and counts every byte.
 */
class TarWalker {
  readonly violations: Violation[] = [];
  readonly pending: WalkedEntry[] = [];
  readonly entries: TarEntry[] = [];
  readonly kept = new Map<string, Buffer>();
  readonly oversized = new Map<string, number>();
  fatal = false;
  ended = false;
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Data bytes (and then padding) still to come for the current header. */
  private dataLeft = 0;
  private padLeft = 0;
  private dataKind: 'member' | 'pax' | 'longname' | 'skip' = 'skip';
  private metadata: Buffer[] = [];
  private keptChunks: Buffer[] | null = null;
  private keptName = '';
  private paxPath: string | null | undefined;
  private longName: string | null | undefined;
  private memberCount = 0;
  private dataBytes = 0;
  private metaBytes = 0;

  constructor(
    private readonly limits: ArchiveLimits,
    private readonly keep: (name: string) => boolean,
    private readonly maxKeptBytes: number,
  ) {}

  fail(path: string, message: string, fatal = true): void {
    if (this.violations.length < MAX_VIOLATIONS) this.violations.push({ path, message });
    if (fatal || this.violations.length >= MAX_VIOLATIONS) this.fatal = true;
  }

  private countMeta(n: number): boolean {
    this.metaBytes += n;
    if (this.metaBytes > this.limits.maxCentralDirectoryBytes) {
      this.fail(ARCHIVE, `the tar headers, padding and end blocks take more than ${this.limits.maxCentralDirectoryBytes} bytes`);
      return false;
    }
    return true;
  }

  feed(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && !this.fatal) {
      if (this.ended) {
        const n = chunk.length - pos;
        if (!this.countMeta(n)) return;
        for (let i = pos; i < chunk.length; i += 1) {
          if (chunk[i] !== 0) {
            this.fail(ARCHIVE, 'bytes follow the end-of-archive block: tar readers disagree on whether they are more entries');
            return;
          }
        }
        return;
      }
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, chunk.length - pos);
        this.take(chunk.subarray(pos, pos + n));
        this.dataLeft -= n;
        pos += n;
        if (this.dataLeft === 0) this.endData();
        continue;
      }
      if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, chunk.length - pos);
        if (!this.countMeta(n)) return;
        this.padLeft -= n;
        pos += n;
        continue;
      }
      const n = Math.min(BLOCK - this.headerFill, chunk.length - pos);
      chunk.copy(this.header, this.headerFill, pos, pos + n);
      this.headerFill += n;
      pos += n;
      if (this.headerFill === BLOCK) {
        this.headerFill = 0;
        if (!this.countMeta(BLOCK)) return;
        this.readHeader(this.header);
      }
    }
  }

  /** The stream ended: only at the end-of-archive block, or after a whole entry (tarfile takes that as the end). */
  finish(): void {
    if (this.fatal || this.ended) return;
    if (this.headerFill !== 0 || this.dataLeft > 0 || this.padLeft > 0 || this.paxPath !== undefined || this.longName !== undefined) {
      this.fail(ARCHIVE, 'the tar stream ends inside an entry (the archive is truncated)');
    }
  }

  private take(part: Buffer): void {
    if (this.dataKind === 'member') {
      this.dataBytes += part.length;
      if (this.keptChunks) {
        this.keptChunks.push(Buffer.from(part));
      }
    } else if (this.dataKind === 'pax' || this.dataKind === 'longname') {
      this.metadata.push(Buffer.from(part));
    }
  }

  private endData(): void {
    if (this.dataKind === 'member' && this.keptChunks) {
      this.kept.set(this.keptName, Buffer.concat(this.keptChunks));
      this.keptChunks = null;
    } else if (this.dataKind === 'pax') {
      this.readPax(Buffer.concat(this.metadata));
      this.metadata = [];
    } else if (this.dataKind === 'longname') {
      const data = Buffer.concat(this.metadata);
      this.metadata = [];
      const nul = data.indexOf(0);
      this.longName = decodeStrict(nul < 0 ? data : data.subarray(0, nul));
    }
  }

  private readHeader(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      if (this.paxPath !== undefined || this.longName !== undefined) this.fail(ARCHIVE, 'a pax header or GNU long name is followed by the end of the archive');
      this.ended = true;
      return;
    }
    const at = `(tar header ${this.memberCount + 1})`;
    const checksum = octal(block.subarray(148, 156));
    let sum = 8 * 32;
    for (let i = 0; i < BLOCK; i += 1) if (i < 148 || i >= 156) sum += block[i]!;
    if (checksum === null || checksum !== sum) return this.fail(at, 'its header checksum is wrong (the archive is corrupt)');
    const magic = block.subarray(257, 265).toString('latin1');
    if (magic !== 'ustar\u000000' && magic !== 'ustar  \u0000') return this.fail(at, 'is not a POSIX ustar or GNU tar header: tar readers disagree on older formats');
    const size = octal(block.subarray(124, 136));
    if (size === null) return this.fail(at, 'its size field is not a plain octal number');
    const flag = String.fromCharCode(block[156]!);
    this.dataLeft = size;
    this.padLeft = (BLOCK - (size % BLOCK)) % BLOCK;

    if (flag === 'x' || flag === 'L') {
      if ((flag === 'x' ? this.paxPath : this.longName) !== undefined) return this.fail(at, 'two pax headers or GNU long names for one entry: tar readers disagree on which applies');
      if (size > MAX_METADATA_ENTRY) return this.fail(at, `a pax header or GNU long name of ${size} bytes; at most ${MAX_METADATA_ENTRY} are allowed`);
      if (!this.countMeta(size)) return;
      this.dataKind = flag === 'x' ? 'pax' : 'longname';
      if (flag === 'x') this.paxPath = null;
      else this.longName = null;
      if (size === 0) this.endData();
      return;
    }
    this.memberCount += 1;
    if (this.memberCount > this.limits.maxEntries) return this.fail(ARCHIVE, `the archive has more than ${this.limits.maxEntries} entries; at most ${this.limits.maxEntries} are allowed`);

    // The name as tarfile builds it: the name field to its first NUL; an old-style `\0` type with a trailing `/` is
    // a directory; a directory's trailing slashes go; a ustar prefix joins in front (GNU types aside); then a GNU
    // long name replaces it, and a pax path replaces that (minus trailing slashes).
    const nameBytes = cString(block.subarray(0, 100));
    const prefixBytes = cString(block.subarray(345, 500));
    let type: WalkedEntry['type'] = flag === '0' || flag === '\u0000' ? 'file' : flag === '5' ? 'directory' : 'other';
    let name = decodeStrict(nameBytes);
    if (flag === '\u0000' && name?.endsWith('/')) type = 'directory';
    if (name !== null && type === 'directory') name = name.replace(/\/+$/, '');
    if (prefixBytes.length > 0) {
      const prefix = decodeStrict(prefixBytes);
      name = prefix === null || name === null ? null : `${prefix}/${name}`;
    }
    if (this.longName !== undefined && this.paxPath) {
      this.fail(at, 'has both a GNU long name and a pax path: tar readers disagree on which one names it');
    }
    if (this.longName !== undefined) name = this.longName;
    if (this.paxPath) name = this.paxPath.replace(/\/+$/, '');
    this.longName = undefined;
    this.paxPath = undefined;
    if (this.fatal) return;
    this.pending.push({ name, type, size });

    const shown = name === null ? at : escapeForDisplay(name);
    this.dataKind = 'skip';
    if (type === 'other') {
      // tarfile reads no data for links and devices: one with a size would be read differently by each reader.
      if (size !== 0) return this.fail(shown, `${TYPE_NAMES[flag] ?? `entry type ${JSON.stringify(flag)} is refused by spec-kit (only regular files and directories)`}; it also declares data`);
      return this.fail(shown, TYPE_NAMES[flag] ?? `entry type ${JSON.stringify(flag)} is refused by spec-kit (only regular files and directories)`, false);
    }
    if (name === null) return this.fail(at, 'its name is not valid UTF-8 (spec-kit cannot extract it)');
    if (type === 'directory' && size !== 0) return this.fail(shown, 'is a directory entry that declares content: tar readers disagree on what follows');
    const unsafe = unsafeEntryNameReason(name);
    if (unsafe) {
      this.fail(shown, `unsafe entry name: ${unsafe}`, false);
    } else {
      this.entries.push({ name: normalizeEntryName(name), directory: type === 'directory', size });
    }
    if (type === 'file') {
      if (size > this.limits.maxEntryBytes) return this.fail(shown, `is ${size} bytes; a member may hold at most ${this.limits.maxEntryBytes}`);
      if (this.dataBytes + this.dataLeft > this.limits.maxTotalBytes) return this.fail(ARCHIVE, `the archive inflates to more than ${this.limits.maxTotalBytes} bytes`);
      this.dataKind = 'member';
      const normalized = normalizeEntryName(name);
      if (!unsafe && this.keep(normalized)) {
        if (size > this.maxKeptBytes) this.oversized.set(normalized, size);
        else {
          this.keptChunks = [];
          this.keptName = normalized;
        }
      }
      if (size === 0) this.endData();
    }
  }

  /** Pax records, as tarfile parses them, strictly: `<length> <key>=<value>\n`, tiling the data exactly. */
  private readPax(data: Buffer): void {
    const at = `(pax header before entry ${this.memberCount + 1})`;
    let pos = 0;
    const keys = new Set<string>();
    while (pos < data.length) {
      const space = data.indexOf(0x20, pos);
      const digits = space < 0 ? '' : data.subarray(pos, space).toString('latin1');
      const length = /^[1-9][0-9]{0,6}$/.test(digits) ? Number(digits) : 0;
      if (length < 5 || pos + length > data.length || data[pos + length - 1] !== 0x0a) return this.fail(at, 'its records are malformed: tar readers disagree on them');
      const record = data.subarray(space + 1, pos + length - 1);
      const equals = record.indexOf(0x3d);
      const key = equals <= 0 ? null : decodeStrict(record.subarray(0, equals));
      const value = equals <= 0 ? null : decodeStrict(record.subarray(equals + 1));
      if (key === null || value === null) return this.fail(at, 'a record is malformed or not UTF-8: tar readers disagree on it');
      if (keys.has(key)) return this.fail(at, `the record "${escapeForDisplay(key)}" appears twice`);
      keys.add(key);
      if (key === 'size' || key === 'linkpath' || key === 'hdrcharset' || key.startsWith('GNU.sparse.')) {
        return this.fail(at, `the pax record "${key}" is refused: tar readers apply it differently`);
      }
      if (key === 'path') {
        if (value === '') return this.fail(at, 'an empty pax path is refused: tar readers disagree on it');
        this.paxPath = value;
      }
      pos += length;
    }
  }
}

/** A NUL-terminated field, as tarfile's `nts` cuts it. */
function cString(field: Buffer): Buffer {
  const nul = field.indexOf(0);
  return nul < 0 ? field : field.subarray(0, nul);
}

function decodeStrict(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * A numeric field as both readers parse it alike: optional leading spaces, octal digits, then NULs or spaces only.
 * Null for base-256 and anything else (tarfile and tar-stream would read different numbers).
 */
function octal(field: Buffer): number | null {
  const text = field.toString('latin1');
  const match = /^ *([0-7]+)[ \u0000]*$/.exec(text);
  if (!match) return /^[ \u0000]*$/.test(text) && field[0] !== 0x80 && field[0] !== 0xff ? 0 : null;
  const value = parseInt(match[1]!, 8);
  return Number.isSafeInteger(value) ? value : null;
}

/** The gzip header's length, or why it is refused. */
function gzipHeaderLength(head: Buffer): number | string {
  if (head.length < 18 || head[0] !== 0x1f || head[1] !== 0x8b) return 'not a gzip file';
  if (head[2] !== 8) return 'its compression method is not deflate';
  const flags = head[3]!;
  if (flags & 0xe0) return 'its header sets reserved flags';
  let pos = 10;
  if (flags & 0x04) {
    if (pos + 2 > head.length) return 'its header is truncated';
    pos += 2 + head.readUInt16LE(pos);
  }
  for (const bit of [0x08, 0x10]) {
    if (flags & bit) {
      const nul = head.indexOf(0, pos);
      if (nul < 0) return 'its header is truncated or too long';
      pos = nul + 1;
    }
  }
  if (flags & 0x02) pos += 2;
  if (pos + 8 > head.length) return 'its header is truncated';
  return pos;
}

/**
 * Reads a tar.gz archive for vetting in one streaming pass, as the module comment says. Resolves with the
 * entries, or with violations; never rejects.
 */
export function readTarGz(source: ArchiveSource, limits: ArchiveLimits, keep: (name: string) => boolean, maxKeptBytes: number): Promise<OpenedTar> {
  const walker = new TarWalker(limits, keep, maxKeptBytes);
  const result = (inflatedBytes: number): OpenedTar => {
    const { files, directories } = tarLayout(walker.entries, walker.violations);
    return {
      entries: walker.entries,
      files,
      directories,
      kept: walker.kept,
      oversized: walker.oversized,
      violations: walker.violations.slice(0, MAX_VIOLATIONS),
      inflatedBytes,
    };
  };
  const headerLength = gzipHeaderLength(source.read(0, Math.min(source.size, MAX_GZIP_HEADER)));
  if (typeof headerLength === 'string') {
    walker.fail(ARCHIVE, `not a readable tar.gz archive: ${headerLength}`);
    return Promise.resolve(result(0));
  }
  const deflateEnd = source.size - 8;
  return new Promise((resolve) => {
    const raw = source.stream(headerLength, deflateEnd);
    const inflater = createInflateRaw();
    const extract = tar.extract();
    let inflated = 0;
    let crc = 0;
    let done = false;
    let inflaterEnded = false;
    let extractFinished = false;
    const finish = () => {
      if (done) return;
      done = true;
      raw.destroy();
      inflater.destroy();
      extract.destroy();
      resolve(result(inflated));
    };
    const compare = (header: tar.Header) => {
      const walked = walker.pending.shift();
      const theirs = header.type === 'file' || header.type === 'directory' ? header.type : 'other';
      const strip = (s: string) => s.replace(/\/+$/, '');
      if (!walked || walked.name === null || strip(walked.name) !== strip(header.name) || walked.type !== theirs || (walked.type === 'file' && walked.size !== header.size)) {
        walker.fail(walked?.name ? escapeForDisplay(walked.name) : ARCHIVE, `tar readers disagree on this entry (${escapeForDisplay(header.name)}, ${header.type ?? 'unknown type'}, ${header.size ?? 0} bytes)`);
      }
    };
    extract.on('entry', (header, stream, next) => {
      compare(header);
      if (walker.fatal) return finish();
      stream.on('end', next);
      stream.resume();
    });
    extract.on('error', (e: Error) => {
      if (!walker.fatal) walker.fail(ARCHIVE, `not a readable tar archive: ${e.message}`);
      finish();
    });
    extract.on('finish', () => {
      extractFinished = true;
      settle();
    });
    const settle = () => {
      if (!inflaterEnded || !extractFinished || done) return;
      if (!walker.fatal && walker.pending.length > 0) walker.fail(ARCHIVE, 'tar readers disagree on the entries at the end of the archive');
      finish();
    };
    inflater.on('data', (chunk: Buffer) => {
      if (done) return;
      inflated += chunk.length;
      crc = crc32(chunk, crc);
      walker.feed(chunk);
      if (walker.fatal) return finish();
      if (!extract.write(chunk)) {
        inflater.pause();
        extract.once('drain', () => inflater.resume());
      }
    });
    inflater.on('end', () => {
      if (done) return;
      inflaterEnded = true;
      walker.finish();
      const trailer = source.read(deflateEnd, 8);
      if (walker.fatal) return finish();
      if (inflater.bytesWritten !== deflateEnd - headerLength) {
        walker.fail(ARCHIVE, 'bytes follow the compressed data (a second gzip member, or trailing garbage): gzip readers disagree on them');
      } else if (trailer.length !== 8 || trailer.readUInt32LE(0) !== crc >>> 0 || trailer.readUInt32LE(4) !== inflated % 2 ** 32) {
        walker.fail(ARCHIVE, 'its gzip CRC-32 or size does not match its data (the archive is corrupt)');
      }
      if (walker.fatal) return finish();
      (extract as unknown as Writable).end();
    });
    inflater.on('error', (e: Error) => {
      if (!walker.fatal) walker.fail(ARCHIVE, `cannot be inflated: ${e.message}`);
      finish();
    });
    raw.on('error', (e: Error) => {
      if (!walker.fatal) walker.fail(ARCHIVE, `cannot be read: ${e.message}`);
      finish();
    });
    raw.pipe(inflater);
  });
}

/**
 * Names that land on one path, as `safe_extract_tar` compares them: any two members whose names fold to one
 * (casefold + NFC) conflict, directories too; and a file that is also a directory.
 */
function tarLayout(entries: TarEntry[], violations: Violation[]): { files: Set<string>; directories: Set<string> } {
  const files = new Set<string>();
  const directories = new Set<string>();
  const seen = new Map<string, string>();
  for (const entry of entries) {
    const key = collisionKey(entry.name);
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      if (violations.length < MAX_VIOLATIONS) {
        violations.push({ path: escapeForDisplay(entry.name), message: earlier === entry.name ? 'appears twice in the archive: tar readers disagree on which one is extracted' : `collides with "${escapeForDisplay(earlier)}" on a case-insensitive file system` });
      }
      continue;
    }
    seen.set(key, entry.name);
    (entry.directory ? directories : files).add(entry.name);
    const parts = entry.name.split('/');
    for (let i = 1; i < parts.length; i += 1) directories.add(parts.slice(0, i).join('/'));
  }
  const directoryKeys = new Set([...directories].map(collisionKey));
  for (const file of files) {
    if (directoryKeys.has(collisionKey(file)) && violations.length < MAX_VIOLATIONS) violations.push({ path: escapeForDisplay(file), message: 'is a file and also a directory' });
  }
  return { files, directories };
}

