import { createCipheriv, createHash } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_IMPORT_LIMITS,
  EXPORT_FORMAT,
  EXPORT_FORMAT_VERSION,
  readExport,
  writeExport,
  type ExportPackage,
  type ExportRecord,
  type ImportSink,
} from '../../../src/transfer/archive.js';

const CHUNK = 64 * 1024;
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/**
 * Pseudo-random bytes made as they are read (AES-CTR over zeros, keyed by `seed`): nothing exists before a consumer
 * asks for it, so a writer that buffered a package would show in `progress.produced`.
 */
function lazyBytes(seed: string, size: number, progress?: { produced: number }): Readable {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  let left = size;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(CHUNK, left);
      left -= n;
      if (progress) progress.produced += n;
      this.push(cipher.update(Buffer.alloc(n)));
    },
  });
}

async function digestOf(stream: Readable): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

const record = (name: string): ExportRecord => ({
  provenance: { source: 'community', source_url: `https://example.test/${name}`, upstream_sha256: null, fetched_at: '2026-01-02T00:00:00Z' },
  approval: { state: 'approved', by: 'token:curator', at: '2026-01-03T00:00:00Z', reason: 'reviewed' },
});

const catalogs = { extension: { schema_version: '1.0', extensions: { acme: { id: 'acme' } } }, 'extension.discovery': { schema_version: '1.0', extensions: {} } };

/** Packages of pseudo-random bytes, with their size and sha256 computed beforehand (by reading them once). */
async function packagesOf(sizes: Record<string, number>, progress?: { produced: number; opened: string[]; ended: string[] }): Promise<ExportPackage[]> {
  return Promise.all(
    Object.entries(sizes).map(async ([name, size]) => ({
      name,
      ...(await digestOf(lazyBytes(name, size))),
      record: record(name),
      open: async () => {
        progress?.opened.push(name);
        const stream = lazyBytes(name, size, progress);
        stream.once('end', () => progress?.ended.push(name));
        return stream;
      },
    })),
  );
}

async function* iterate<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

function exportInput(packages: ExportPackage[]) {
  return {
    manifest: { server: 'release-server test', created_at: '2026-01-04T00:00:00.000Z', snapshot: '2026-01', packages: packages.map(({ name, size, sha256 }) => ({ name, size, sha256 })) },
    catalogs,
    packages: iterate(packages),
  };
}

/** The whole archive in memory: fine for the small packages of the refusal tests. */
async function archiveOf(packages: ExportPackage[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  await writeExport(out, exportInput(packages));
  return Buffer.concat(chunks);
}

/** A sink that stages into memory, as storage.stage would into its staging area; `staged` is what a caller discards. */
function memorySink(): { sink: ImportSink; staged: Map<string, Buffer> } {
  const staged = new Map<string, Buffer>();
  return {
    staged,
    sink: async (name, _size, bytes) => {
      const chunks: Buffer[] = [];
      for await (const chunk of bytes) chunks.push(chunk as Buffer);
      const all = Buffer.concat(chunks);
      staged.set(name, all);
      return { sha256: sha256(all) };
    },
  };
}

interface Member {
  name: string;
  body?: Buffer;
  type?: 'file' | 'symlink' | 'link' | 'directory' | 'fifo';
  linkname?: string;
}

/** Every member of a well-formed archive, in order, with their bodies: for tests that change one thing. */
async function membersOf(archive: Buffer): Promise<Member[]> {
  const extract = tar.extract();
  const members: Member[] = [];
  Readable.from([archive]).pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    members.push({ name: entry.header.name, body: Buffer.concat(chunks) });
  }
  return members;
}

/** A tar of `members` as given (SHA256SUMS is not recomputed). */
async function build(members: Member[]): Promise<Buffer> {
  const pack = tar.pack();
  const collected = (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of pack) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  })();
  for (const m of members) {
    const type = m.type ?? 'file';
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry({ name: m.name, type, size: m.body!.length }, m.body!, done);
      else pack.entry({ name: m.name, type, linkname: m.linkname, size: 0 }, done).end(undefined);
    });
  }
  pack.finalize();
  return collected;
}

/** SHA256SUMS for `members` (all but a SHA256SUMS among them), replacing the old one, which stays last. */
function withSums(members: Member[]): Member[] {
  const others = members.filter((m) => m.name !== 'SHA256SUMS');
  const sums = others.filter((m) => (m.type ?? 'file') === 'file').map((m) => `${sha256(m.body!)}  ${m.name}\n`).join('');
  return [...others, { name: 'SHA256SUMS', body: Buffer.from(sums) }];
}

/** Each member's header start, data start and end (padded), walking the ustar headers. */
function layout(archive: Buffer): { name: string; header: number; data: number; end: number }[] {
  const found = [];
  for (let at = 0; at + 512 <= archive.length; ) {
    const header = archive.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(header.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim(), 8);
    const end = at + 512 + Math.ceil(size / 512) * 512;
    found.push({ name, header: at, data: at + 512, end });
    at = end;
  }
  return found;
}

const read = (archive: Buffer, limits = DEFAULT_IMPORT_LIMITS) => {
  const { sink, staged } = memorySink();
  // In pieces that do not line up with tar blocks, as a request body arrives.
  const pieces = Array.from({ length: Math.ceil(archive.length / 7000) }, (_, i) => archive.subarray(i * 7000, (i + 1) * 7000));
  return { staged, result: readExport(Readable.from(pieces), sink, limits) };
};

describe('export archive', () => {
  it('round-trips a snapshot of ~5 MiB packages, streaming both ways: one package open at a time, never a package buffered', async () => {
    const progress = { produced: 0, opened: [] as string[], ended: [] as string[] };
    const sizes = { 'extension-acme-1.0.0.zip': 5 * 1024 * 1024 + 17, 'preset-lean-2.1.0.zip': 5 * 1024 * 1024 - 300, 'spec-kit-template-claude-sh-v0.2.0.zip': 5 * 1024 * 1024 };
    const packages = await packagesOf(sizes, progress);
    let received = 0;
    let maxAhead = 0;
    const sink: ImportSink = async (name, size, bytes) => {
      // Each package is opened only once the one before it was read to its end.
      expect(progress.opened.at(-1)).toBe(name);
      expect(progress.ended).toEqual(progress.opened.slice(0, -1));
      const hash = createHash('sha256');
      let n = 0;
      for await (const chunk of bytes) {
        hash.update(chunk as Buffer);
        n += (chunk as Buffer).length;
        received += (chunk as Buffer).length;
        maxAhead = Math.max(maxAhead, progress.produced - received);
      }
      expect(n).toBe(size);
      return { sha256: hash.digest('hex') };
    };
    // Writer and reader at once, through a pipe, as an HTTP export piped into an import would be.
    const pipe = new PassThrough();
    const [manifest, verified] = await Promise.all([writeExport(pipe, exportInput(packages)), readExport(pipe, sink)]);
    expect(manifest).toEqual({
      format: EXPORT_FORMAT,
      format_version: EXPORT_FORMAT_VERSION,
      server: 'release-server test',
      created_at: '2026-01-04T00:00:00.000Z',
      snapshot: '2026-01',
      catalogs: ['extension', 'extension.discovery'],
      packages: packages.map(({ name, size, sha256 }) => ({ name, size, sha256 })),
    });
    expect(verified.manifest).toEqual(manifest);
    expect(verified.catalogs).toEqual(catalogs);
    expect(verified.packages).toEqual(packages.map(({ name, size, sha256 }) => ({ name, size, sha256, record: record(name) })));
    expect(received).toBe(Object.values(sizes).reduce((a, b) => a + b));
    // Bytes made but not yet at the sink: stream buffers, not a package (5 MiB).
    expect(maxAhead).toBeLessThan(1024 * 1024);
  });

  it('writes manifest.json first, then catalogs, each record before its package, and SHA256SUMS last, covering every other member', async () => {
    const packages = await packagesOf({ 'a.zip': 1000, 'b.zip': 70_000 });
    const members = await membersOf(await archiveOf(packages));
    expect(members.map((m) => m.name)).toEqual([
      'manifest.json',
      'catalogs/extension.json',
      'catalogs/extension.discovery.json',
      'records/a.zip.json',
      'packages/a.zip',
      'records/b.zip.json',
      'packages/b.zip',
      'SHA256SUMS',
    ]);
    const sums = members.at(-1)!.body!.toString();
    expect(sums).toBe(members.slice(0, -1).map((m) => `${sha256(m.body!)}  ${m.name}\n`).join(''));
    expect(JSON.parse(members[3]!.body!.toString())).toEqual(record('a.zip'));
  });

  it('refuses to write a package whose bytes are not the ones its entry announces, and cuts the archive short', async () => {
    const [pkg] = await packagesOf({ 'a.zip': 10_000 });
    const lying = { ...pkg!, open: async () => lazyBytes('other', 10_000) };
    const chunks: Buffer[] = [];
    const out = new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) });
    await expect(writeExport(out, exportInput([lying]))).rejects.toThrow(/packages\/a\.zip: .*hash/);
    await expect(readExport(Readable.from([Buffer.concat(chunks)]), memorySink().sink)).rejects.toThrow(/truncated/);
  });

  describe('refuses, naming the member, and returns nothing', () => {
    const small = () => packagesOf({ 'a.zip': 30_000, 'b.zip': 20_000, 'c.zip': 10_000 });

    it('accepts the untouched archive (the control for every case below)', async () => {
      const { result, staged } = read(await archiveOf(await small()));
      expect((await result).packages.map((p) => p.name)).toEqual(['a.zip', 'b.zip', 'c.zip']);
      expect([...staged.keys()]).toEqual(['a.zip', 'b.zip', 'c.zip']);
    });

    it('a package with one byte changed', async () => {
      const archive = await archiveOf(await small());
      const b = layout(archive).find((m) => m.name === 'packages/b.zip')!;
      archive[b.data + 1234]! ^= 0x01;
      await expect(read(archive).result).rejects.toThrow(/^packages\/b\.zip: its bytes hash to [0-9a-f]{64}, the manifest says/);
    });

    it('a package changed together with its manifest entry: SHA256SUMS still catches it', async () => {
      const members = await membersOf(await archiveOf(await small()));
      const manifest = JSON.parse(members[0]!.body!.toString());
      const c = members.find((m) => m.name === 'packages/c.zip')!;
      c.body = Buffer.from(c.body!);
      c.body[0]! ^= 0xff;
      manifest.packages[2].sha256 = sha256(c.body);
      members[0]!.body = Buffer.from(JSON.stringify(manifest));
      await expect(read(await build(members)).result).rejects.toThrow(/^manifest\.json: SHA256SUMS says [0-9a-f]{64}, the member hashes to/);
    });

    it('a tampered SHA256SUMS: a changed digit, a missing line, an extra line, a line twice', async () => {
      const members = await membersOf(await archiveOf(await small()));
      const sums = members.at(-1)!.body!.toString();
      const lines = sums.split('\n').filter(Boolean);
      const line = lines.findIndex((l) => l.endsWith('records/b.zip.json'));
      const changed = [...lines];
      changed[line] = `${changed[line]![0] === 'a' ? 'b' : 'a'}${changed[line]!.slice(1)}`;
      const cases: [string[], RegExp][] = [
        [changed, /^records\/b\.zip\.json: SHA256SUMS says/],
        [lines.filter((_, i) => i !== line), /^SHA256SUMS: has no line for records\/b\.zip\.json/],
        [[...lines, `${'0'.repeat(64)}  packages/d.zip`], /^SHA256SUMS: lists packages\/d\.zip, which the archive does not hold/],
        [[...lines, lines[0]!], /^SHA256SUMS: lists manifest\.json twice/],
      ];
      for (const [text, error] of cases) {
        const archive = await build([...members.slice(0, -1), { name: 'SHA256SUMS', body: Buffer.from(`${text.join('\n')}\n`) }]);
        await expect(read(archive).result).rejects.toThrow(error);
      }
    });

    it('a truncated archive, cut anywhere: in a header, in a package, at a member boundary, in SHA256SUMS, in the end-of-archive marker', async () => {
      const archive = await archiveOf(await small());
      const members = layout(archive);
      const at = (name: string) => members.find((m) => m.name === name)!;
      const cuts = [
        100,
        at('manifest.json').data + 10,
        at('packages/a.zip').data + 15_000,
        at('packages/b.zip').header,
        at('packages/b.zip').header + 300,
        at('packages/c.zip').end,
        at('SHA256SUMS').header,
        at('SHA256SUMS').data + 40,
        at('SHA256SUMS').end,
        at('SHA256SUMS').end + 512,
        archive.length - 1,
      ];
      for (const cut of cuts) {
        const { result, staged } = read(archive.subarray(0, cut));
        await expect(result, `cut at ${cut}`).rejects.toThrow(/truncated/);
        // Packages before the cut reached the sink: the caller discards them.
        if (cut > at('packages/b.zip').header) expect(staged.has('a.zip')).toBe(true);
      }
    });

    it('an extra member, even one SHA256SUMS lists', async () => {
      const members = await membersOf(await archiveOf(await small()));
      const notes = { name: 'notes.txt', body: Buffer.from('hello') };
      await expect(read(await build(withSums([...members.slice(0, 1), notes, ...members.slice(1)]))).result).rejects.toThrow(/^notes\.txt: not a member of an export/);
      const stowaway = { name: 'packages/d.zip', body: Buffer.from('not listed') };
      await expect(read(await build(withSums([...members.slice(0, -1), stowaway]))).result).rejects.toThrow(/^packages\/d\.zip: a package the manifest does not list/);
      await expect(read(await build(withSums([...members.slice(0, 3), members[1]!, ...members.slice(3)]))).result).rejects.toThrow(
        /^catalogs\/extension\.json: the archive holds this member twice/,
      );
    });

    it('a symlink, a hard link, a directory, or a name climbing out with /..', async () => {
      const members = await membersOf(await archiveOf(await small()));
      const cases: [Member, RegExp][] = [
        [{ name: 'packages/a.zip', type: 'symlink', linkname: '/etc/passwd' }, /^packages\/a\.zip: a symlink entry/],
        [{ name: 'packages/b.zip', type: 'link', linkname: 'manifest.json' }, /^packages\/b\.zip: a link entry/],
        [{ name: 'packages/', type: 'directory' }, /^packages\/: a directory entry/],
        [{ name: 'packages/../../etc/cron.d/x', body: Buffer.from('x') }, /^packages\/\.\.\/\.\.\/etc\/cron\.d\/x: a member name with "\.\."/],
      ];
      for (const [member, error] of cases) {
        const archive = await build(withSums([...members.slice(0, 3), member, ...members.slice(3)]));
        await expect(read(archive).result).rejects.toThrow(error);
      }
    });

    it('anything before manifest.json, a manifest of another format, a package over the limits, a member the manifest lists but the archive lacks', async () => {
      const members = await membersOf(await archiveOf(await small()));
      await expect(read(await build(withSums([members[1]!, members[0]!, ...members.slice(2)]))).result).rejects.toThrow(/^catalogs\/extension\.json: manifest\.json must be the first member/);
      const other = { name: 'manifest.json', body: Buffer.from(JSON.stringify({ ...JSON.parse(members[0]!.body!.toString()), format_version: 2 })) };
      await expect(read(await build(withSums([other, ...members.slice(1)]))).result).rejects.toThrow(/^manifest\.json: format_version 2/);
      const archive = await build(members);
      await expect(read(archive, { ...DEFAULT_IMPORT_LIMITS, maxPackageBytes: 25_000 }).result).rejects.toThrow(/^manifest\.json: .*a\.zip is 30000 bytes, more than the 25000 allowed/);
      await expect(read(archive, { ...DEFAULT_IMPORT_LIMITS, maxTotalBytes: 50_000 }).result).rejects.toThrow(/^manifest\.json: the packages add up to more than/);
      await expect(read(archive, { ...DEFAULT_IMPORT_LIMITS, maxPackages: 2 }).result).rejects.toThrow(/^manifest\.json: 3 packages, more than the 2 allowed/);
      await expect(read(archive, { ...DEFAULT_IMPORT_LIMITS, maxJsonBytes: 300 }).result).rejects.toThrow(/^manifest\.json: \d+ bytes, more than the 300 allowed/);
      await expect(read(archive, { ...DEFAULT_IMPORT_LIMITS, maxJsonTotalBytes: 1500 }).result).rejects.toThrow(/^records\/.*: the JSON members add up to more than the 1500 bytes allowed/);
      const withoutC = members.filter((m) => m.name !== 'packages/c.zip');
      await expect(read(await build(withSums(withoutC))).result).rejects.toThrow(/^packages\/c\.zip: missing/);
    });
  });
});
