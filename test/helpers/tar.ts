import { gzipSync } from 'node:zlib';

/**
 * Tar archives written block by block, so that tests can make what no well-behaved tool writes: links, devices,
 * FIFOs, pax records, GNU long names, names with a ustar prefix, bytes after the end blocks.
 */
export interface TarSpec {
  name: string;
  /** The name field's bytes, written as they are instead of `name`. */
  rawName?: Buffer;
  data?: Buffer | string;
  /** The type flag: '0' file (default, '5' for a name ending in `/`), '1' hard link, '2' symlink, '3', '4', '6', 'x', 'L', 'g'. */
  type?: string;
  linkname?: string;
  /** The ustar prefix field. */
  prefix?: string;
  /** `gnu` writes the GNU magic (`ustar  \0`), `v7` none. */
  magic?: 'ustar' | 'gnu' | 'v7';
  /** A size field other than the data's length. */
  size?: number;
}

function field(buf: Buffer, offset: number, length: number, value: string | Buffer): void {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  bytes.copy(buf, offset, 0, Math.min(bytes.length, length));
}

const octal = (n: number, length: number) => `${n.toString(8).padStart(length - 1, '0')}\u0000`;

export function tarHeader(spec: TarSpec & { size: number }): Buffer {
  const h = Buffer.alloc(512);
  const type = spec.type ?? (spec.name.endsWith('/') ? '5' : '0');
  field(h, 0, 100, spec.rawName ?? spec.name);
  field(h, 100, 8, octal(type === '5' ? 0o755 : 0o644, 8));
  field(h, 108, 8, octal(0, 8));
  field(h, 116, 8, octal(0, 8));
  field(h, 124, 12, octal(spec.size, 12));
  field(h, 136, 12, octal(0, 12));
  h[156] = type.charCodeAt(0);
  if (spec.linkname) field(h, 157, 100, spec.linkname);
  const magic = spec.magic ?? 'ustar';
  if (magic === 'ustar') field(h, 257, 8, Buffer.from('ustar\u000000', 'latin1'));
  else if (magic === 'gnu') field(h, 257, 8, Buffer.from('ustar  \u0000', 'latin1'));
  if (spec.prefix) field(h, 345, 155, spec.prefix);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\u0000 `);
  return h;
}

const pad = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);

/** One entry: its header and its data, padded to whole blocks. */
export function tarEntry(spec: TarSpec): Buffer {
  const data = Buffer.from(spec.data ?? '');
  return Buffer.concat([tarHeader({ ...spec, size: spec.size ?? data.length }), pad(data)]);
}

/** A pax extended header ('x') with the given records, to precede the next entry. */
export function paxEntry(records: Record<string, string>, name = 'PaxHeader'): Buffer {
  const body = Object.entries(records)
    .map(([key, value]) => {
      const rest = ` ${key}=${value}\n`;
      let length = Buffer.byteLength(rest) + 1;
      while (String(length).length + Buffer.byteLength(rest) !== length) length = String(length).length + Buffer.byteLength(rest);
      return `${length}${rest}`;
    })
    .join('');
  return tarEntry({ name, type: 'x', data: body });
}

/** A GNU long name ('L') for the next entry. */
export function longNameEntry(name: string): Buffer {
  return tarEntry({ name: '././@LongLink', type: 'L', data: Buffer.concat([Buffer.from(name), Buffer.alloc(1)]), magic: 'gnu' });
}

/** Entries (specs, or blocks made by the functions above) and the two zero blocks that end an archive. */
export function tarBytes(entries: (TarSpec | Buffer)[], options: { end?: boolean } = {}): Buffer {
  const blocks = entries.map((e) => (Buffer.isBuffer(e) ? e : tarEntry(e)));
  if (options.end !== false) blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function tarGz(entries: (TarSpec | Buffer)[], options: { end?: boolean } = {}): Buffer {
  return gzipSync(tarBytes(entries, options));
}

/** Files (name → text) as a tar.gz, as `tar czf` of a folder writes them. */
export function tarGzFiles(files: Record<string, string>): Buffer {
  return tarGz(Object.entries(files).map(([name, data]) => ({ name, data })));
}
