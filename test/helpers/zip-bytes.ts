import { crc32, deflateRawSync } from 'node:zlib';

/**
 * Zip archives written byte by byte, part by part: local headers, central directory records and end records
 * that tests assemble in any order, to make the archives on which zip readers disagree (a decoy central
 * directory, a prefix, overlapping entries, local headers that contradict the central directory).
 */

export interface EntrySpec {
  /** A string is written as UTF-8 (and flagged so unless `flags` says otherwise); bytes are written as they are. */
  name: string | Buffer;
  data?: Buffer | string;
  /** 0 stored (default), 8 deflated. */
  method?: number;
  /** The compressed bytes as written, instead of `data` stored or deflated. */
  body?: Buffer;
  /** General purpose flags of both headers; 0x0800 (UTF-8) by default. */
  flags?: number;
  /** Unix mode in the external attributes; a regular file (or a directory, for a name ending in `/`) by default. */
  mode?: number;
  versionNeeded?: number;
  /** Extra field of both headers. */
  extra?: Buffer;
  /** Sizes and CRC after the data (flag bit 3), zeros in the local header. */
  descriptor?: boolean;
  /** Fields of the local header only, where it contradicts the central directory. */
  local?: Partial<{ name: Buffer | string; method: number; flags: number; crc32: number; compressedSize: number; uncompressedSize: number; versionNeeded: number; extra: Buffer }>;
}

export interface Member {
  /** Local header, name, extra, data (and data descriptor). */
  bytes: Buffer;
  /** Its central directory record, for a local header at `offset`. */
  central(offset: number): Buffer;
}

export function member(spec: EntrySpec): Member {
  const name = typeof spec.name === 'string' ? Buffer.from(spec.name, 'utf8') : spec.name;
  const data = Buffer.from(spec.data ?? '');
  const method = spec.method ?? 0;
  const body = spec.body ?? (method === 8 ? deflateRawSync(data) : data);
  const flags = (spec.flags ?? 0x0800) | (spec.descriptor ? 0x0008 : 0);
  const extra = spec.extra ?? Buffer.alloc(0);
  const crc = crc32(data);
  const version = spec.versionNeeded ?? 20;
  const l = spec.local ?? {};
  const localName = l.name === undefined ? name : Buffer.from(l.name);
  const localExtra = l.extra ?? extra;
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(l.versionNeeded ?? version, 4);
  header.writeUInt16LE(l.flags ?? flags, 6);
  header.writeUInt16LE(l.method ?? method, 8);
  header.writeUInt32LE(l.crc32 ?? (spec.descriptor ? 0 : crc), 14);
  header.writeUInt32LE(l.compressedSize ?? (spec.descriptor ? 0 : body.length), 18);
  header.writeUInt32LE(l.uncompressedSize ?? (spec.descriptor ? 0 : data.length), 22);
  header.writeUInt16LE(localName.length, 26);
  header.writeUInt16LE(localExtra.length, 28);
  const parts = [header, localName, localExtra, body];
  if (spec.descriptor) {
    const descriptor = Buffer.alloc(16);
    descriptor.writeUInt32LE(0x08074b50, 0);
    descriptor.writeUInt32LE(crc, 4);
    descriptor.writeUInt32LE(body.length, 8);
    descriptor.writeUInt32LE(data.length, 12);
    parts.push(descriptor);
  }
  const nameText = typeof spec.name === 'string' ? spec.name : '';
  const mode = spec.mode ?? (nameText.endsWith('/') ? 0o40755 : 0o100644);
  return {
    bytes: Buffer.concat(parts),
    central(offset) {
      const c = Buffer.alloc(46);
      c.writeUInt32LE(0x02014b50, 0);
      c.writeUInt16LE((3 << 8) | 20, 4); // made by Unix
      c.writeUInt16LE(version, 6);
      c.writeUInt16LE(flags, 8);
      c.writeUInt16LE(method, 10);
      c.writeUInt32LE(crc, 16);
      c.writeUInt32LE(body.length, 20);
      c.writeUInt32LE(data.length, 24);
      c.writeUInt16LE(name.length, 28);
      c.writeUInt16LE(extra.length, 30);
      c.writeUInt32LE((mode << 16) >>> 0, 38);
      c.writeUInt32LE(offset, 42);
      return Buffer.concat([c, name, extra]);
    },
  };
}

export function endRecord(fields: { count: number; cdSize: number; cdOffset: number; comment?: Buffer; commentLength?: number }): Buffer {
  const comment = fields.comment ?? Buffer.alloc(0);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(fields.count, 8);
  eocd.writeUInt16LE(fields.count, 10);
  eocd.writeUInt32LE(fields.cdSize, 12);
  eocd.writeUInt32LE(fields.cdOffset, 16);
  eocd.writeUInt16LE(fields.commentLength ?? comment.length, 20);
  return Buffer.concat([eocd, comment]);
}

/** Members back to back, their central directory and end record: a well-formed zip unless the specs say otherwise. */
export function zipBytes(specs: EntrySpec[], options: { comment?: Buffer } = {}): Buffer {
  const members = specs.map(member);
  const offsets: number[] = [];
  let offset = 0;
  for (const m of members) {
    offsets.push(offset);
    offset += m.bytes.length;
  }
  const cd = Buffer.concat(members.map((m, i) => m.central(offsets[i]!)));
  return Buffer.concat([...members.map((m) => m.bytes), cd, endRecord({ count: members.length, cdSize: cd.length, cdOffset: offset, ...options })]);
}

/**
 * Two archives in one: the end record points at a decoy central directory (the `decoy` entries, which yauzl
 * reads), while its size field fits a second central directory right before the end record (the `hidden`
 * entries). Python's zipfile and Info-ZIP take the difference for bytes prepended to the archive, shift the
 * central directory by it and read the hidden entries.
 */
export function decoyCentralDirectoryZip(decoy: EntrySpec[], hidden: EntrySpec[]): Buffer {
  const members = [...decoy, ...hidden].map(member);
  const offsets: number[] = [];
  let offset = 0;
  for (const m of members) {
    offsets.push(offset);
    offset += m.bytes.length;
  }
  const decoyCd = Buffer.concat(members.slice(0, decoy.length).map((m, i) => m.central(offsets[i]!)));
  // Python reads the hidden directory at cdOffset + shift, and every local header at its offset + shift.
  const shift = decoyCd.length;
  const hiddenCd = Buffer.concat(members.slice(decoy.length).map((m, i) => m.central(offsets[decoy.length + i]! - shift)));
  const end = endRecord({ count: decoy.length, cdSize: hiddenCd.length, cdOffset: offset });
  return Buffer.concat([...members.map((m) => m.bytes), decoyCd, hiddenCd, end]);
}

/**
 * The end record's comment holds a second central directory and a second end record pointing at it (with
 * bytes after it, so that its comment length does not reach the end): Python `rfind`s the last end record
 * signature and reads the hidden entries; a reader that checks the comment length reads the decoy ones.
 */
export function commentEndRecordZip(decoy: EntrySpec[], hidden: EntrySpec[]): Buffer {
  const members = [...decoy, ...hidden].map(member);
  const offsets: number[] = [];
  let offset = 0;
  for (const m of members) {
    offsets.push(offset);
    offset += m.bytes.length;
  }
  const decoyCd = Buffer.concat(members.slice(0, decoy.length).map((m, i) => m.central(offsets[i]!)));
  const hiddenCd = Buffer.concat(members.slice(decoy.length).map((m, i) => m.central(offsets[decoy.length + i]!)));
  const hiddenCdOffset = offset + decoyCd.length + 22;
  const fake = endRecord({ count: hidden.length, cdSize: hiddenCd.length, cdOffset: hiddenCdOffset });
  const comment = Buffer.concat([hiddenCd, fake, Buffer.from('..')]);
  const end = endRecord({ count: decoy.length, cdSize: decoyCd.length, cdOffset: offset, comment });
  return Buffer.concat([...members.map((m) => m.bytes), decoyCd, end]);
}

/**
 * After the `before` entries, entry `inner` lies inside the stored data of entry `outer`: both are listed, at
 * overlapping offsets (the trick of overlapping-entry zip bombs, and a way to show one reader bytes another reads
 * as a different file).
 */
export function overlappingZip(before: EntrySpec[], outerSpec: EntrySpec, innerSpec: EntrySpec): Buffer {
  const members = before.map(member);
  const offsets: number[] = [];
  let offset = 0;
  for (const m of members) {
    offsets.push(offset);
    offset += m.bytes.length;
  }
  const inner = member(innerSpec);
  const outer = member({ ...outerSpec, data: inner.bytes, method: 0 });
  const innerOffset = offset + outer.bytes.length - inner.bytes.length;
  const cd = Buffer.concat([...members.map((m, i) => m.central(offsets[i]!)), outer.central(offset), inner.central(innerOffset)]);
  const cdOffset = offset + outer.bytes.length;
  return Buffer.concat([...members.map((m) => m.bytes), outer.bytes, cd, endRecord({ count: members.length + 2, cdSize: cd.length, cdOffset })]);
}

/** A well-formed zip after `prefix`; with `adjust`, its offsets count the prefix (as a self-extracting archive's do). */
export function prefixedZip(prefix: Buffer, specs: EntrySpec[], adjust: boolean): Buffer {
  const members = specs.map(member);
  const offsets: number[] = [];
  let offset = adjust ? prefix.length : 0;
  for (const m of members) {
    offsets.push(offset);
    offset += m.bytes.length;
  }
  const cd = Buffer.concat(members.map((m, i) => m.central(offsets[i]!)));
  return Buffer.concat([prefix, ...members.map((m) => m.bytes), cd, endRecord({ count: members.length, cdSize: cd.length, cdOffset: offset })]);
}

/** An extra field record. */
export function extraField(id: number, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16LE(id, 0);
  head.writeUInt16LE(data.length, 2);
  return Buffer.concat([head, data]);
}

/** Info-ZIP's Unicode Path extra field (0x7075): version 1, the CRC-32 of the header's name, the UTF-8 name. */
export function unicodePathExtra(headerName: Buffer | string, unicodeName: string): Buffer {
  const crc = Buffer.alloc(5);
  crc.writeUInt8(1, 0);
  crc.writeUInt32LE(crc32(Buffer.from(headerName)), 1);
  return extraField(0x7075, Buffer.concat([crc, Buffer.from(unicodeName, 'utf8')]));
}

export function zip64Extra(size: number): Buffer {
  const data = Buffer.alloc(16);
  data.writeBigUInt64LE(BigInt(size), 0);
  data.writeBigUInt64LE(BigInt(size), 8);
  return extraField(0x0001, data);
}
