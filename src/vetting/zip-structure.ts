import { decodeEntryName, displayName } from './entry-names.js';

/**
 * The zip reader of vetting: the archive's structure, read strictly from the end record *and* from every local
 * header, so that the entries vetted are the entries every client extracts.
 *
 * Zip readers disagree on malformed archives: Python's zipfile and Info-ZIP find the end record by scanning back
 * from the end and trust the central directory it points at (correcting offsets by any prefix); streaming readers
 * walk the local headers from the start and never read the central directory; some honour an Info-ZIP Unicode Path
 * field and some do not. An archive on which two readers could disagree is refused, whichever reading is harmless:
 *
 * - the end record sits exactly at the end (its comment fills the rest), and the comment holds no second end
 *   record signature (Python `rfind`s the signature in the last 64 KiB: it would take that one);
 * - one disk, no ZIP64 (spec-kit refuses it), and the end record's entry count is the central directory's;
 * - the central directory ends exactly where the end record begins;
 * - entries are laid out back to back from offset 0: each local header, name, extra field, data and (with flag
 *   bit 3) data descriptor ends where the next entry begins, and the last one where the central directory begins.
 *   No prefix, no gap where a second set of entries could hide, no overlap;
 * - every local header agrees with its central directory record: name bytes, method, flags, version needed, CRC
 *   and sizes (or zeros and a data descriptor that agrees), and the ids of its extra fields (their lengths may
 *   differ: 0x5455 timestamps are shorter in the central directory; timestamp and owner fields may be in one only);
 * - no ZIP64 extra field nor version needed ≥ 4.5 anywhere (spec-kit refuses them);
 * - no two entries with the same name bytes.
 *
 * Pure: bytes in, entries or violations out. Reads a few bytes at a time, never a member's data.
 */

/** Bytes that can be read at any offset, synchronously (a file in a worker thread, or a buffer in a test). */
export interface ByteSource {
  readonly size: number;
  /** `length` bytes from `offset`; fewer only when the source ends first. */
  read(offset: number, length: number): Buffer;
}

export interface Violation {
  /** The entry (or manifest field) at fault; `(archive)` for the archive as a whole. */
  path: string;
  message: string;
}

export interface ExtraField {
  id: number;
  data: Buffer;
}

/** One entry, as its central directory record and its local header (which agree) describe it. */
export interface ZipEntry {
  rawName: Buffer;
  flags: number;
  method: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  versionMadeBy: number;
  versionNeeded: number;
  externalAttributes: number;
  /** The central directory's extra fields. */
  extras: ExtraField[];
  localExtras: ExtraField[];
  localOffset: number;
  /** Where the member's (compressed) data begins. */
  dataOffset: number;
}

export interface ZipStructure {
  entries: ZipEntry[];
  centralDirectoryBytes: number;
}

export interface StructureLimits {
  maxEntries: number;
  maxCentralDirectoryBytes: number;
}

export const ARCHIVE = '(archive)';
const EOCD_SIGNATURE = 0x06054b50;
const EOCD_SIGNATURE_BYTES = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const DESCRIPTOR_SIGNATURE = 0x08074b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const MAX_COMMENT = 0xffff;
const ZIP64_EXTRA = 0x0001;
const DATA_DESCRIPTOR_FLAG = 0x0008;

const notReadable = (why: string): Violation[] => [{ path: ARCHIVE, message: `not a readable zip archive: ${why}` }];

export function readZipStructure(source: ByteSource, limits: StructureLimits): ZipStructure | { violations: Violation[] } {
  if (source.size < EOCD_SIZE) return { violations: notReadable('it is too short') };
  const tailLength = Math.min(source.size, EOCD_SIZE + MAX_COMMENT);
  const tailStart = source.size - tailLength;
  const tail = source.read(tailStart, tailLength);
  let at = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i -= 1) {
    if (tail.readUInt32LE(i) === EOCD_SIGNATURE && i + EOCD_SIZE + tail.readUInt16LE(i + 20) === tail.length) {
      at = i;
      break;
    }
  }
  if (at < 0) return { violations: notReadable('no end of central directory record') };
  const eocdOffset = tailStart + at;
  if (eocdOffset >= 20 && source.read(eocdOffset - 20, 4).readUInt32LE(0) === ZIP64_LOCATOR_SIGNATURE) {
    return { violations: [{ path: ARCHIVE, message: 'ZIP64 archives are refused by spec-kit' }] };
  }
  // Anywhere after this record's first byte: the comment, or its own fields running into the comment (a comment
  // length of 0x4b50 is "PK", and a comment that starts with 05 06 completes the signature).
  if (tail.indexOf(EOCD_SIGNATURE_BYTES, at + 1) >= 0) {
    return { violations: [{ path: ARCHIVE, message: 'the archive comment holds a second end of central directory record: zip readers disagree on which one is real' }] };
  }
  const disk = tail.readUInt16LE(at + 4);
  const cdDisk = tail.readUInt16LE(at + 6);
  const onDisk = tail.readUInt16LE(at + 8);
  const count = tail.readUInt16LE(at + 10);
  const cdSize = tail.readUInt32LE(at + 12);
  const cdOffset = tail.readUInt32LE(at + 16);
  if (disk !== 0 || cdDisk !== 0 || onDisk !== count) return { violations: [{ path: ARCHIVE, message: 'multi-disk archives are refused by spec-kit' }] };
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) return { violations: [{ path: ARCHIVE, message: 'ZIP64 archives are refused by spec-kit' }] };
  if (count > limits.maxEntries) return { violations: [{ path: ARCHIVE, message: `the archive has ${count} entries; at most ${limits.maxEntries} are allowed` }] };
  if (cdSize > limits.maxCentralDirectoryBytes) {
    return { violations: [{ path: ARCHIVE, message: `the central directory is ${cdSize} bytes; at most ${limits.maxCentralDirectoryBytes} are allowed` }] };
  }
  if (cdOffset + cdSize !== eocdOffset) {
    const where = cdOffset + cdSize > eocdOffset ? 'runs past the end record' : `ends ${eocdOffset - cdOffset - cdSize} bytes before the end record`;
    return {
      violations: [{ path: ARCHIVE, message: `the central directory ${where}: the archive has bytes that zip readers interpret differently (a second central directory?)` }],
    };
  }

  const cd = source.read(cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let pos = 0;
  for (let i = 0; i < count; i += 1) {
    if (pos + CENTRAL_SIZE > cd.length || cd.readUInt32LE(pos) !== CENTRAL_SIGNATURE) {
      return { violations: notReadable(`the central directory holds fewer entries than the ${count} its end record counts`) };
    }
    const nameLength = cd.readUInt16LE(pos + 28);
    const extraLength = cd.readUInt16LE(pos + 30);
    const commentLength = cd.readUInt16LE(pos + 32);
    const end = pos + CENTRAL_SIZE + nameLength + extraLength + commentLength;
    if (end > cd.length) return { violations: notReadable('a central directory record runs past the central directory') };
    const rawName = Buffer.from(cd.subarray(pos + CENTRAL_SIZE, pos + CENTRAL_SIZE + nameLength));
    const flags = cd.readUInt16LE(pos + 8);
    const extras = parseExtras(cd.subarray(pos + CENTRAL_SIZE + nameLength, pos + CENTRAL_SIZE + nameLength + extraLength));
    if (!extras) return { violations: [{ path: displayName(rawName, flags), message: 'its extra field in the central directory is malformed' }] };
    if (cd.readUInt16LE(pos + 34) !== 0) return { violations: [{ path: ARCHIVE, message: 'multi-disk archives are refused by spec-kit' }] };
    entries.push({
      rawName,
      flags,
      versionMadeBy: cd.readUInt16LE(pos + 4),
      versionNeeded: cd.readUInt16LE(pos + 6),
      method: cd.readUInt16LE(pos + 10),
      crc32: cd.readUInt32LE(pos + 16),
      compressedSize: cd.readUInt32LE(pos + 20),
      uncompressedSize: cd.readUInt32LE(pos + 24),
      externalAttributes: cd.readUInt32LE(pos + 38),
      localOffset: cd.readUInt32LE(pos + 42),
      extras,
      localExtras: [],
      dataOffset: 0,
    });
    pos = end;
  }
  if (pos !== cd.length) {
    return {
      violations: [{ path: ARCHIVE, message: `the central directory holds more than the ${count} entries its end record counts: zip readers disagree on which entries exist` }],
    };
  }

  const violations: Violation[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const key = entry.rawName.toString('latin1');
    if (seen.has(key)) violations.push({ path: displayName(entry.rawName, entry.flags), message: 'appears twice in the archive: zip readers disagree on which one is extracted' });
    seen.add(key);
  }
  const spans: { entry: ZipEntry; end: number }[] = [];
  for (const entry of entries) {
    const path = displayName(entry.rawName, entry.flags);
    const fail = (message: string) => violations.push({ path, message });
    if (entry.extras.some((f) => f.id === ZIP64_EXTRA)) fail('ZIP64 entries are refused by spec-kit');
    if (entry.versionNeeded >= 45) fail(`the entry needs zip version ${entry.versionNeeded / 10} to extract; spec-kit refuses 4.5 and above`);
    const local = readLocal(source, entry, cdOffset);
    if (typeof local === 'string') {
      fail(local);
      continue;
    }
    entry.localExtras = local.extras;
    entry.dataOffset = local.dataOffset;
    for (const disagreement of compareLocal(entry, local)) fail(`its local header disagrees with the central directory: ${disagreement}`);
    let end = local.dataOffset + entry.compressedSize;
    if (end > cdOffset) {
      fail('its data runs into the central directory');
      continue;
    }
    if (entry.flags & DATA_DESCRIPTOR_FLAG) {
      const descriptor = descriptorLength(source, entry, end, cdOffset);
      if (descriptor === 0) fail('its data descriptor is missing or disagrees with the central directory');
      end += descriptor;
    }
    spans.push({ entry, end });
  }
  if (violations.length > 0) return { violations };

  // Back to back from offset 0 to the central directory: no prefix, no gap, no overlap.
  spans.sort((a, b) => a.entry.localOffset - b.entry.localOffset);
  let expected = 0;
  for (const { entry, end } of spans) {
    const path = displayName(entry.rawName, entry.flags);
    if (entry.localOffset > expected) {
      violations.push(
        expected === 0
          ? { path: ARCHIVE, message: `${entry.localOffset} bytes come before the first entry: zip readers disagree on what they are` }
          : { path, message: `${entry.localOffset - expected} bytes that no entry claims come before this entry: zip readers disagree on what they are` },
      );
    } else if (entry.localOffset < expected) {
      violations.push({ path, message: 'overlaps the entry before it' });
    }
    expected = Math.max(expected, end);
  }
  if (violations.length === 0 && expected !== cdOffset) {
    violations.push({ path: ARCHIVE, message: `${cdOffset - expected} bytes that no entry claims come before the central directory: zip readers disagree on what they are` });
  }
  if (violations.length > 0) return { violations };
  return { entries, centralDirectoryBytes: cdSize };
}

interface LocalHeader {
  rawName: Buffer;
  flags: number;
  versionNeeded: number;
  method: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  extras: ExtraField[];
  dataOffset: number;
}

function readLocal(source: ByteSource, entry: ZipEntry, cdOffset: number): LocalHeader | string {
  if (entry.localOffset + LOCAL_SIZE > cdOffset) return 'its local header lies outside the archive data';
  const header = source.read(entry.localOffset, LOCAL_SIZE);
  if (header.length < LOCAL_SIZE || header.readUInt32LE(0) !== LOCAL_SIGNATURE) return 'no local header where the central directory says it is';
  const nameLength = header.readUInt16LE(26);
  const extraLength = header.readUInt16LE(28);
  const dataOffset = entry.localOffset + LOCAL_SIZE + nameLength + extraLength;
  if (dataOffset > cdOffset) return 'its local header runs into the central directory';
  const rest = source.read(entry.localOffset + LOCAL_SIZE, nameLength + extraLength);
  const extras = parseExtras(rest.subarray(nameLength));
  if (!extras) return 'its extra field in the local header is malformed';
  return {
    rawName: Buffer.from(rest.subarray(0, nameLength)),
    flags: header.readUInt16LE(6),
    versionNeeded: header.readUInt16LE(4),
    method: header.readUInt16LE(8),
    crc32: header.readUInt32LE(14),
    compressedSize: header.readUInt32LE(18),
    uncompressedSize: header.readUInt32LE(22),
    extras,
    dataOffset,
  };
}

function compareLocal(entry: ZipEntry, local: LocalHeader): string[] {
  const out: string[] = [];
  if (!local.rawName.equals(entry.rawName)) out.push(`it names the entry ${JSON.stringify(displayName(local.rawName, local.flags))}`);
  if (local.method !== entry.method) out.push(`compression method ${local.method}, not ${entry.method}`);
  if (local.flags !== entry.flags) out.push(`flags 0x${local.flags.toString(16)}, not 0x${entry.flags.toString(16)}`);
  if (local.versionNeeded !== entry.versionNeeded) out.push(`version needed ${local.versionNeeded / 10}, not ${entry.versionNeeded / 10}`);
  const deferred = (entry.flags & DATA_DESCRIPTOR_FLAG) !== 0 && local.crc32 === 0 && local.compressedSize === 0 && local.uncompressedSize === 0;
  if (!deferred) {
    if (local.crc32 !== entry.crc32) out.push('a different CRC-32');
    if (local.compressedSize !== entry.compressedSize || local.uncompressedSize !== entry.uncompressedSize) {
      out.push(`sizes ${local.compressedSize}/${local.uncompressedSize}, not ${entry.compressedSize}/${entry.uncompressedSize}`);
    }
  }
  if (local.extras.some((f) => f.id === ZIP64_EXTRA)) out.push('a ZIP64 extra field (refused by spec-kit)');
  if (local.versionNeeded >= 45 && entry.versionNeeded < 45) out.push('version 4.5 or above (refused by spec-kit)');
  const meaningful = (extras: ExtraField[]) => extras.filter((f) => !METADATA_EXTRAS.has(f.id));
  const ids = (extras: ExtraField[]) => meaningful(extras).map((f) => f.id).sort((a, b) => a - b).join(',');
  if (ids(local.extras) !== ids(entry.extras)) out.push(`extra fields [${hexIds(meaningful(local.extras))}], not [${hexIds(meaningful(entry.extras))}]`);
  return out;
}

/**
 * Extra fields that carry only timestamps and owners, which writers put in one header and not the other (yazl
 * writes 0x5455 in the central directory only): they may differ. Every other id must be in both headers.
 */
const METADATA_EXTRAS = new Set([0x000a, 0x000d, 0x5455, 0x5855, 0x7855, 0x7875]);

const hexIds = (extras: ExtraField[]) => extras.map((f) => `0x${f.id.toString(16).padStart(4, '0')}`).join(', ');

/** The length of the data descriptor at `at` (16 with its signature, 12 without), or 0 when none agrees with the entry. */
function descriptorLength(source: ByteSource, entry: ZipEntry, at: number, limit: number): number {
  const bytes = source.read(at, Math.min(16, limit - at));
  const matches = (o: number) =>
    bytes.length >= o + 12 && bytes.readUInt32LE(o) === entry.crc32 && bytes.readUInt32LE(o + 4) === entry.compressedSize && bytes.readUInt32LE(o + 8) === entry.uncompressedSize;
  if (bytes.length >= 4 && bytes.readUInt32LE(0) === DESCRIPTOR_SIGNATURE && matches(4)) return 16;
  if (matches(0)) return 12;
  return 0;
}

/** The extra fields, or null when they do not fill the field exactly or an id repeats. */
function parseExtras(bytes: Buffer): ExtraField[] | null {
  const fields: ExtraField[] = [];
  const ids = new Set<number>();
  let pos = 0;
  while (pos < bytes.length) {
    if (pos + 4 > bytes.length) return null;
    const id = bytes.readUInt16LE(pos);
    const length = bytes.readUInt16LE(pos + 2);
    if (pos + 4 + length > bytes.length || ids.has(id)) return null;
    ids.add(id);
    fields.push({ id, data: Buffer.from(bytes.subarray(pos + 4, pos + 4 + length)) });
    pos += 4 + length;
  }
  return fields;
}

/** The name an Info-ZIP Unicode Path extra field (0x7075) gives, if the entry has one; null when it is malformed. */
export function unicodePathOf(extras: ExtraField[]): string | null | undefined {
  const field = extras.find((f) => f.id === 0x7075);
  if (!field) return undefined;
  if (field.data.length < 5 || field.data[0] !== 1) return null;
  return decodeEntryName(field.data.subarray(5), 0x0800);
}

export function bufferSource(bytes: Buffer): ByteSource {
  return { size: bytes.length, read: (offset, length) => bytes.subarray(offset, offset + length) };
}
