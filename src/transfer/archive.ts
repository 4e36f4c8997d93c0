import { createHash } from 'node:crypto';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar, { type Header, type Pack } from 'tar-stream';
import { unsafeNameReason } from '../domain/names.js';

/**
 * The archive that carries a snapshot across an air gap (`GET /export`, `POST /import`): a plain tar, members in
 * this order:
 *
 *     manifest.json               format, format_version, server, created_at, snapshot, catalogs, packages
 *     catalogs/<section>.json     one per catalog section the manifest lists (a JSON object each)
 *     records/<name>.json         per package, just before its bytes: { provenance, approval, ... } (JSON object)
 *     packages/<name>             the package's bytes
 *     SHA256SUMS                  `sha256sum` format (`<hex>  <member>`), one line for every other member, in order
 *
 * The manifest comes first so that a reader knows every package's size and sha256 before any byte of it arrives: a
 * tampered package is refused at its own member, and limits are checked before anything is staged. SHA256SUMS comes
 * last because it covers the whole archive, and is what `sha256sum -c` checks by hand after `tar -x`.
 *
 * Both sides stream: the writer never holds more than a chunk of a package (it opens one package at a time and waits
 * on the output), the reader hands each package's bytes to a sink as they arrive and buffers only the small JSON
 * members, each bounded by `maxJsonBytes`.
 *
 * An import, in this order (nothing is visible until the last step, and a failure anywhere before it discards):
 *   1. `readExport(body, sink, limits)`, where the sink calls `storage.stage(bytes)`, keeps the StagedBlob by name,
 *      and answers `{ sha256: staged.sha256 }`;
 *   2. on rejection: `discard()` every StagedBlob kept, answer 4xx with the error's message (it names the member);
 *   3. vet each staged package as an upload is vetted (reading `staged.localPath`); any refusal: discard all, 4xx;
 *   4. leave out packages already stored with the same sha256 (a second import changes nothing), discarding theirs;
 *   5. `storage.publishBatch(items)` (through the service, which owns the index), then audit: one commit, all or none.
 *
 * Not supported: compression (the packages are zips and tar.gz already), members other than the above, links,
 * directories and special files, or an archive without its end-of-archive marker.
 */
export const EXPORT_FORMAT = 'release-server-export';
export const EXPORT_FORMAT_VERSION = 1;

export type JsonObject = { [key: string]: unknown };

/** A package as the manifest lists it. */
export interface ExportEntry {
  name: string;
  size: number;
  /** Lower-case hex. */
  sha256: string;
}

export interface ExportManifest {
  format: typeof EXPORT_FORMAT;
  format_version: typeof EXPORT_FORMAT_VERSION;
  /** Which server wrote it (name, version or URL: for people, not checked). */
  server: string;
  /** ISO 8601. */
  created_at: string;
  snapshot: string;
  /** The sections in `catalogs/`, in archive order. */
  catalogs: string[];
  /** The packages in `packages/`, in archive order. */
  packages: ExportEntry[];
}

/** What travels beside a package: its provenance and approval, opaque here, and anything else the caller keeps. */
export interface ExportRecord extends JsonObject {
  provenance: JsonObject | null;
  approval: JsonObject | null;
}

export interface ExportPackage extends ExportEntry {
  record: ExportRecord;
  /** Opened when its turn comes, one at a time: the bytes, exactly `size` of them, hashing to `sha256`. */
  open(): Promise<Readable>;
}

export interface ExportInput {
  manifest: { server: string; created_at: string; snapshot: string; packages: ExportEntry[] };
  /** By section name (`extension`, `preset.discovery`, ...): each written as `catalogs/<section>.json`. */
  catalogs: Record<string, JsonObject>;
  /** The manifest's packages, in the same order, each once. */
  packages: AsyncIterable<ExportPackage>;
}

export interface ImportLimits {
  /** Packages in one archive. */
  maxPackages: number;
  maxPackageBytes: number;
  /** All packages together. */
  maxTotalBytes: number;
  /** manifest.json, each catalog and record, and SHA256SUMS. */
  maxJsonBytes: number;
  /** All of those together: what a reader holds in memory at most. */
  maxJsonTotalBytes: number;
}

export const DEFAULT_IMPORT_LIMITS: ImportLimits = {
  maxPackages: 10_000,
  maxPackageBytes: 100 * 1024 * 1024,
  maxTotalBytes: 20 * 1024 * 1024 * 1024,
  maxJsonBytes: 16 * 1024 * 1024,
  maxJsonTotalBytes: 64 * 1024 * 1024,
};

/** Hands one package's bytes to the caller (which stages them) and answers with the sha256 it computed. */
export type ImportSink = (name: string, size: number, bytes: Readable) => Promise<{ sha256: string }>;

/** An archive that checked out entirely: every member present once, every checksum verified. */
export interface VerifiedExport {
  manifest: ExportManifest;
  catalogs: Record<string, JsonObject>;
  /** In archive order; each was handed to the sink. */
  packages: (ExportEntry & { record: ExportRecord })[];
}

/** Why an archive was refused; `member` names the member at fault when there is one. */
export class ExportArchiveError extends Error {
  constructor(message: string, readonly member: string | null = null, options?: ErrorOptions) {
    super(member ? `${member}: ${message}` : message, options);
    this.name = 'ExportArchiveError';
  }
}

const MANIFEST = 'manifest.json';
const SUMS = 'SHA256SUMS';
const SECTION = /^[a-z0-9][a-z0-9._-]{0,99}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const BLOCK = 512;

type TarHeader = Partial<Header> & Pick<Header, 'name'>;

const catalogMember = (section: string) => `catalogs/${section}.json`;
const recordMember = (name: string) => `records/${name}.json`;
const packageMember = (name: string) => `packages/${name}`;

function sectionProblem(section: string): string | null {
  return SECTION.test(section) && !section.includes('..') ? null : 'a catalog section is lower-case letters, digits, ".", "_" and "-"';
}

/**
 * Writes the archive to `out`, streaming: one package open at a time, each chunk written when `out` takes it. Each
 * package's bytes are hashed on the way and must match its entry (else the archive is cut short and this rejects,
 * naming it: an export never claims bytes it did not send). Resolves with the manifest written once `out` finished.
 */
export async function writeExport(out: Writable, input: ExportInput): Promise<ExportManifest> {
  const sections = Object.keys(input.catalogs);
  for (const section of sections) {
    const problem = sectionProblem(section);
    if (problem) throw new ExportArchiveError(problem, catalogMember(section));
  }
  const names = new Set<string>();
  for (const entry of input.manifest.packages) {
    const problem = entryProblem(entry) ?? (names.has(entry.name) ? 'listed twice' : null);
    if (problem) throw new ExportArchiveError(problem, packageMember(entry.name));
    names.add(entry.name);
  }
  const manifest: ExportManifest = {
    format: EXPORT_FORMAT,
    format_version: EXPORT_FORMAT_VERSION,
    server: input.manifest.server,
    created_at: input.manifest.created_at,
    snapshot: input.manifest.snapshot,
    catalogs: sections,
    packages: input.manifest.packages.map(({ name, size, sha256 }) => ({ name, size, sha256 })),
  };
  const mtime = Number.isNaN(Date.parse(manifest.created_at)) ? new Date() : new Date(manifest.created_at);
  const pack = tar.pack();
  pack.on('error', () => undefined);
  const pumped = pipeline(Readable.from(pack), out);
  // Settles only on failure: raced with every wait on the pack, so that a closed `out` never leaves one hanging.
  const outFailed = pumped.then(
    () => new Promise<never>(() => undefined),
    (err: unknown) => Promise.reject(new ExportArchiveError(`the output failed: ${(err as Error).message}`, null, { cause: err })),
  );
  outFailed.catch(() => undefined);
  const sums: string[] = [];
  const header = (name: string, size: number): TarHeader => ({ name, size, type: 'file', mode: 0o644, mtime, uid: 0, gid: 0, uname: '', gname: '' });
  const small = async (name: string, body: Buffer) => {
    await Promise.race([new Promise<void>((resolve, reject) => pack.entry(header(name, body.length), body, (err) => (err ? reject(err) : resolve()))), outFailed]);
    sums.push(`${createHash('sha256').update(body).digest('hex')}  ${name}\n`);
  };
  try {
    await small(MANIFEST, json(manifest));
    for (const section of sections) await small(catalogMember(section), json(input.catalogs[section]));
    let index = 0;
    for await (const pkg of input.packages) {
      const expected = manifest.packages[index];
      if (!expected || expected.name !== pkg.name || expected.size !== pkg.size || expected.sha256 !== pkg.sha256) {
        throw new ExportArchiveError(`not the package the manifest lists at position ${index + 1} (${expected ? expected.name : 'none'})`, packageMember(pkg.name));
      }
      index += 1;
      if (!isJsonObject(pkg.record) || !nullOrObject(pkg.record.provenance) || !nullOrObject(pkg.record.approval)) {
        throw new ExportArchiveError('a record is a JSON object with provenance and approval (each an object or null)', recordMember(pkg.name));
      }
      await small(recordMember(pkg.name), json(pkg.record));
      sums.push(`${await streamMember(pack, header(packageMember(pkg.name), pkg.size), pkg, outFailed)}  ${packageMember(pkg.name)}\n`);
    }
    if (index !== manifest.packages.length) throw new ExportArchiveError(`the manifest lists ${manifest.packages.length} packages, ${index} were given`);
    await small(SUMS, Buffer.from(sums.join('')));
    pack.finalize();
    await pumped;
  } catch (err) {
    // Cut short: a reader refuses what it got (no SHA256SUMS, no end-of-archive marker).
    pack.destroy(err as Error);
    await pumped.catch(() => undefined);
    throw err;
  }
  return manifest;
}

/** Streams one package into its member, hashing it; rejects, naming it, when its bytes are not the ones announced. */
async function streamMember(pack: Pack, header: TarHeader, pkg: ExportPackage, outFailed: Promise<never>): Promise<string> {
  const member = header.name;
  const hash = createHash('sha256');
  let size = 0;
  let settle!: (err?: Error | null) => void;
  const written = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
  written.catch(() => undefined);
  const entry = pack.entry(header, (err) => settle(err));
  // Destroyed with the pack when the export fails: the error is the export's, reported once, by writeExport.
  entry.on('error', (err: Error) => settle(err));
  const source = await Promise.race([pkg.open(), outFailed]);
  try {
    for await (const chunk of source) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > pkg.size) throw new ExportArchiveError(`the store gave more than the ${pkg.size} bytes of its record`, member);
      hash.update(buffer);
      if (!entry.write(buffer)) await Promise.race([new Promise<void>((resolve) => entry.once('drain', () => resolve())), outFailed]);
    }
  } finally {
    source.destroy();
  }
  if (size !== pkg.size) throw new ExportArchiveError(`the store gave ${size} of the ${pkg.size} bytes of its record`, member);
  const sha256 = hash.digest('hex');
  if (sha256 !== pkg.sha256) throw new ExportArchiveError(`the stored bytes hash to ${sha256}, not to the record's ${pkg.sha256}`, member);
  // streamx types want an argument; undefined writes nothing.
  entry.end(undefined);
  await Promise.race([written, outFailed]);
  return sha256;
}

/**
 * Reads an archive `writeExport` wrote, streaming each package to `sink` as it arrives and verifying everything:
 * manifest.json first and well-formed; every member a regular file with a name of the forms above, present once,
 * listed by the manifest; each package's size and sha256 as the manifest says (checked at its member, and against
 * the sink's own hash); SHA256SUMS last, with exactly one matching line per other member; the end-of-archive marker
 * present. Resolves only when all of it checked out; otherwise rejects with an ExportArchiveError naming the member,
 * and the caller discards whatever the sink staged. The sink must read the bytes it is given to their end.
 */
export async function readExport(source: Readable, sink: ImportSink, limits: ImportLimits = DEFAULT_IMPORT_LIMITS): Promise<VerifiedExport> {
  const trailer = new TrailerWatch();
  const extract = tar.extract();
  let extractError: Error | null = null;
  extract.on('error', (err: Error) => (extractError ??= err));
  source.on('error', (err: Error) => extract.destroy(err));
  source.pipe(trailer).pipe(extract);
  const truncated = () => extractError !== null && /unexpected end/i.test(extractError.message);

  let manifest: ExportManifest | null = null;
  const expected = new Map<string, ExportEntry>();
  const seen = new Set<string>();
  /** Member → sha256, in archive order (SHA256SUMS excluded). */
  const hashes = new Map<string, string>();
  const catalogs: Record<string, JsonObject> = {};
  const records = new Map<string, ExportRecord>();
  const received: string[] = [];
  let sums: { text: string; end: number } | null = null;
  let current: string | null = null;
  let held = 0;
  const readJson = async (entry: AsyncIterable<unknown>, name: string, size: number) => {
    held += size;
    if (held > limits.maxJsonTotalBytes) throw new ExportArchiveError(`the JSON members add up to more than the ${limits.maxJsonTotalBytes} bytes allowed`, name);
    return readSmall(entry, name, size, limits.maxJsonBytes);
  };

  try {
    for await (const entry of extract) {
      const { header } = entry;
      const name = header.name;
      current = name;
      if (sums) throw new ExportArchiveError(`a member after ${SUMS}, which must be the last`, name);
      const type = header.type ?? 'file';
      if (type !== 'file') throw new ExportArchiveError(`a ${type} entry: only regular files belong in an export`, name);
      if (pathProblem(name)) throw new ExportArchiveError(pathProblem(name)!, name);
      if (seen.has(name)) throw new ExportArchiveError('the archive holds this member twice', name);
      seen.add(name);
      const size = header.size ?? 0;

      if (!manifest) {
        if (name !== MANIFEST) throw new ExportArchiveError(`${MANIFEST} must be the first member`, name);
        const text = await readJson(entry, name, size);
        manifest = parseManifest(text.buffer, limits);
        for (const pkg of manifest.packages) expected.set(pkg.name, pkg);
        hashes.set(name, text.sha256);
        continue;
      }
      if (name === SUMS) {
        const text = await readJson(entry, name, size);
        const offset = (header as { byteOffset?: unknown }).byteOffset;
        if (typeof offset !== 'number') throw new ExportArchiveError('cannot locate the end of the archive');
        sums = { text: text.buffer.toString('utf8'), end: Math.ceil((offset + size) / BLOCK) * BLOCK };
        continue;
      }
      const [dir, ...rest] = name.split('/');
      const leaf = rest.join('/');
      if (dir === 'catalogs' && leaf.endsWith('.json')) {
        const section = leaf.slice(0, -'.json'.length);
        if (!manifest.catalogs.includes(section)) throw new ExportArchiveError('a catalog the manifest does not list', name);
        const text = await readJson(entry, name, size);
        catalogs[section] = parseObject(text.buffer, name);
        hashes.set(name, text.sha256);
      } else if (dir === 'records' && leaf.endsWith('.json')) {
        const pkg = leaf.slice(0, -'.json'.length);
        if (!expected.has(pkg)) throw new ExportArchiveError('a record of a package the manifest does not list', name);
        const text = await readJson(entry, name, size);
        const record = parseObject(text.buffer, name);
        if (!nullOrObject(record.provenance) || !nullOrObject(record.approval)) {
          throw new ExportArchiveError('provenance and approval must each be a JSON object or null', name);
        }
        records.set(pkg, record as ExportRecord);
        hashes.set(name, text.sha256);
      } else if (dir === 'packages' && leaf.length > 0) {
        const want = expected.get(leaf);
        if (!want) throw new ExportArchiveError('a package the manifest does not list', name);
        if (size !== want.size) throw new ExportArchiveError(`${size} bytes, the manifest says ${want.size}`, name);
        const sha256 = await streamToSink(entry, name, want, sink, truncated);
        hashes.set(name, sha256);
        received.push(leaf);
      } else {
        throw new ExportArchiveError('not a member of an export (manifest.json, catalogs/, records/, packages/, SHA256SUMS)', name);
      }
    }
    current = null;
    await trailer.done;
  } catch (err) {
    // Let a stream error that is on its way (the extractor's "unexpected end") arrive before saying why.
    await new Promise<void>((resolve) => setImmediate(resolve));
    source.unpipe(trailer);
    trailer.unpipe(extract);
    extract.destroy();
    source.destroy();
    if (truncated()) throw new ExportArchiveError(`the archive is truncated${current ? ` (it ends inside ${current})` : ''}`, null, { cause: err });
    if (err instanceof ExportArchiveError) throw err;
    throw new ExportArchiveError((err as Error).message, current, { cause: err });
  }
  if (extractError) throw new ExportArchiveError(truncatedOr(extractError), null, { cause: extractError });
  if (!manifest) throw new ExportArchiveError('the archive is empty: it has no manifest.json');
  if (!sums) throw new ExportArchiveError(`the archive is truncated or incomplete: ${SUMS}, its last member, is missing`);
  // The tar end-of-archive marker (two zero blocks) right after SHA256SUMS: else the archive was cut at a member's end.
  if (trailer.total < sums.end + 2 * BLOCK || trailer.lastNonZero >= sums.end) {
    throw new ExportArchiveError('the archive is truncated: the end-of-archive marker after SHA256SUMS is missing or not zeros');
  }
  for (const section of manifest.catalogs) if (!(section in catalogs)) throw new ExportArchiveError('missing: the manifest lists it', catalogMember(section));
  for (const { name } of manifest.packages) {
    if (!records.has(name)) throw new ExportArchiveError('missing: the manifest lists its package', recordMember(name));
    if (!hashes.has(packageMember(name))) throw new ExportArchiveError('missing: the manifest lists it', packageMember(name));
  }
  verifySums(sums.text, hashes);
  return {
    manifest,
    catalogs,
    packages: received.map((name) => ({ ...expected.get(name)!, record: records.get(name)! })),
  };
}

/** Every member but SHA256SUMS has exactly one line, with its hash; no line names anything else. */
function verifySums(text: string, hashes: Map<string, string>): void {
  if (!text.endsWith('\n')) throw new ExportArchiveError('does not end with a newline (cut short?)', SUMS);
  const listed = new Map<string, string>();
  for (const [i, line] of text.slice(0, -1).split('\n').entries()) {
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!match) throw new ExportArchiveError(`line ${i + 1} is not "<sha256>  <member>"`, SUMS);
    const [, sha256, member] = match as unknown as [string, string, string];
    if (listed.has(member)) throw new ExportArchiveError(`lists ${member} twice`, SUMS);
    if (!hashes.has(member)) throw new ExportArchiveError(`lists ${member}, which the archive does not hold`, SUMS);
    listed.set(member, sha256);
  }
  for (const [member, sha256] of hashes) {
    const want = listed.get(member);
    if (want === undefined) throw new ExportArchiveError(`has no line for ${member}`, SUMS);
    if (want !== sha256) throw new ExportArchiveError(`${SUMS} says ${want}, the member hashes to ${sha256}`, member);
  }
}

/** Hands a package member to the sink through a hashing stream; its sha256 once every byte matched. */
async function streamToSink(entry: AsyncIterable<unknown>, member: string, want: ExportEntry, sink: ImportSink, truncated: () => boolean): Promise<string> {
  const hash = createHash('sha256');
  let size = 0;
  let ended = false;
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of entry) {
      size += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
      yield chunk as Buffer;
    }
    ended = true;
  }
  const bytes = Readable.from(hashed(), { objectMode: false });
  let answer: { sha256: string };
  try {
    answer = await sink(want.name, want.size, bytes);
  } catch (err) {
    if (truncated()) throw err;
    throw new ExportArchiveError(`could not be stored: ${(err as Error).message}`, member, { cause: err });
  } finally {
    bytes.destroy();
  }
  // The member ended before its size: the archive did.
  if (ended && size !== want.size) throw new ExportArchiveError('the archive is truncated', member);
  if (!ended) throw new ExportArchiveError(`the sink read ${size} of its ${want.size} bytes, not all of them`, member);
  const sha256 = hash.digest('hex');
  if (sha256 !== want.sha256) throw new ExportArchiveError(`its bytes hash to ${sha256}, the manifest says ${want.sha256}`, member);
  if (answer.sha256 !== sha256) throw new ExportArchiveError(`the store hashed it to ${answer.sha256}, the archive to ${sha256}`, member);
  return sha256;
}

/** A small member, whole, with its sha256; refused beyond `max` bytes before any is read. */
async function readSmall(entry: AsyncIterable<unknown>, member: string, size: number, max: number): Promise<{ buffer: Buffer; sha256: string }> {
  if (size > max) throw new ExportArchiveError(`${size} bytes, more than the ${max} allowed`, member);
  const chunks: Buffer[] = [];
  let read = 0;
  for await (const chunk of entry) {
    read += (chunk as Buffer).length;
    if (read > max) throw new ExportArchiveError(`more than the ${max} bytes allowed`, member);
    chunks.push(chunk as Buffer);
  }
  if (read !== size) throw new ExportArchiveError('the archive is truncated', member);
  const buffer = Buffer.concat(chunks);
  return { buffer, sha256: createHash('sha256').update(buffer).digest('hex') };
}

function parseManifest(buffer: Buffer, limits: ImportLimits): ExportManifest {
  const m = parseObject(buffer, MANIFEST);
  const fail = (why: string) => new ExportArchiveError(why, MANIFEST);
  if (m.format !== EXPORT_FORMAT) throw fail(`not a ${EXPORT_FORMAT} manifest (format ${JSON.stringify(m.format)})`);
  if (m.format_version !== EXPORT_FORMAT_VERSION) throw fail(`format_version ${JSON.stringify(m.format_version)} is not one this server reads (${EXPORT_FORMAT_VERSION})`);
  for (const key of ['server', 'created_at', 'snapshot'] as const) if (typeof m[key] !== 'string') throw fail(`${key} is not text`);
  if (!Array.isArray(m.catalogs) || !m.catalogs.every((s) => typeof s === 'string' && sectionProblem(s) === null)) throw fail('catalogs is not a list of section names');
  if (new Set(m.catalogs).size !== m.catalogs.length) throw fail('catalogs lists a section twice');
  if (!Array.isArray(m.packages)) throw fail('packages is not a list');
  if (m.packages.length > limits.maxPackages) throw fail(`${m.packages.length} packages, more than the ${limits.maxPackages} allowed`);
  const names = new Set<string>();
  let total = 0;
  for (const [i, raw] of (m.packages as unknown[]).entries()) {
    const entry = raw as ExportEntry;
    const problem = isJsonObject(raw) ? entryProblem(entry) : 'not an object';
    if (problem) throw fail(`packages[${i}]: ${problem}`);
    if (names.has(entry.name)) throw fail(`lists ${entry.name} twice`);
    names.add(entry.name);
    if (entry.size > limits.maxPackageBytes) throw fail(`${entry.name} is ${entry.size} bytes, more than the ${limits.maxPackageBytes} allowed`);
    total += entry.size;
    if (total > limits.maxTotalBytes) throw fail(`the packages add up to more than the ${limits.maxTotalBytes} bytes allowed`);
  }
  return {
    format: EXPORT_FORMAT,
    format_version: EXPORT_FORMAT_VERSION,
    server: m.server as string,
    created_at: m.created_at as string,
    snapshot: m.snapshot as string,
    catalogs: m.catalogs as string[],
    packages: (m.packages as ExportEntry[]).map(({ name, size, sha256 }) => ({ name, size, sha256 })),
  };
}

function entryProblem(entry: ExportEntry): string | null {
  if (typeof entry.name !== 'string') return 'name is not text';
  const unsafe = unsafeNameReason(entry.name);
  if (unsafe) return `${JSON.stringify(entry.name)}: ${unsafe}`;
  if (!Number.isSafeInteger(entry.size) || entry.size < 0) return `${entry.name}: size is not a non-negative integer`;
  if (typeof entry.sha256 !== 'string' || !HEX64.test(entry.sha256)) return `${entry.name}: sha256 is not 64 lower-case hex digits`;
  return null;
}

/** Names that could reach outside the archive's own tree, whatever the reader later does with them. */
function pathProblem(name: string): string | null {
  if (name.length === 0) return 'an empty member name';
  if (name.includes('\0') || name.includes('\\')) return 'a member name with a NUL or a backslash';
  if (name.startsWith('/')) return 'an absolute member name';
  if (name.split('/').some((part) => part === '..' || part === '.' || part === '')) return 'a member name with "..", "." or an empty segment';
  return null;
}

function parseObject(buffer: Buffer, member: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(buffer.toString('utf8'));
  } catch (err) {
    throw new ExportArchiveError(`not valid JSON: ${(err as Error).message}`, member);
  }
  if (!isJsonObject(value)) throw new ExportArchiveError('not a JSON object', member);
  return value;
}

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nullOrObject(value: unknown): boolean {
  return value === null || isJsonObject(value);
}

function json(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
}

function truncatedOr(err: Error): string {
  return /unexpected end/i.test(err.message) ? 'the archive is truncated' : `not a readable tar archive: ${err.message}`;
}

/** Passes bytes on, counting them and remembering where the last non-zero byte was (for the end-of-archive check). */
class TrailerWatch extends Transform {
  total = 0;
  lastNonZero = -1;
  readonly done: Promise<void>;

  constructor() {
    super();
    this.done = new Promise((resolve, reject) => {
      this.once('end', resolve);
      this.once('error', reject);
    });
    this.done.catch(() => undefined);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null, data?: Buffer) => void): void {
    for (let i = chunk.length - 1; i >= 0; i -= 1) {
      if (chunk[i] !== 0) {
        this.lastNonZero = this.total + i;
        break;
      }
    }
    this.total += chunk.length;
    callback(null, chunk);
  }
}
