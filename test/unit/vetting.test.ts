import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { bufferArchive } from '../../src/vetting/archive.js';
import { decodeEntryName, unsafeEntryNameReason } from '../../src/vetting/entry-names.js';
import { checkManifest } from '../../src/vetting/manifest.js';
import { vetArchive, vetFile } from '../../src/vetting/vet.js';
import { bufferSource, readZipStructure } from '../../src/vetting/zip-structure.js';
import { extensionManifest } from '../helpers/packages.js';
import { makeZip } from '../helpers/zip.js';
import { decoyCentralDirectoryZip, zipBytes } from '../helpers/zip-bytes.js';

const LIMITS = { maxEntries: 512, maxCentralDirectoryBytes: 1 << 20 };
const files = { 'extension.yml': stringify(extensionManifest('unit-ext')), 'commands/greet.md': '# Greet\n' };

describe('reader: the zip structure, strictly', () => {
  it('reads what yazl writes (data descriptors, 0x5455 in the central directory only) and what zipBytes writes', async () => {
    const yazl = readZipStructure(bufferSource(await makeZip(files)), LIMITS);
    expect('entries' in yazl && yazl.entries.map((e) => e.rawName.toString())).toEqual(['extension.yml', 'commands/greet.md']);
    const plain = readZipStructure(bufferSource(zipBytes(Object.entries(files).map(([name, data]) => ({ name, data, method: 8 })))), LIMITS);
    expect('entries' in plain).toBe(true);
  });

  it('refuses a central directory that does not end at the end record', () => {
    const zip = decoyCentralDirectoryZip([{ name: 'a.md', data: 'a'.repeat(200) }], [{ name: 'b.md', data: 'b' }]);
    expect(readZipStructure(bufferSource(zip), LIMITS)).toEqual({ violations: [{ path: '(archive)', message: expect.stringContaining('central directory ends') }] });
  });

  it('refuses an end record signature that its own comment length completes (Python would rfind that one)', () => {
    const comment = Buffer.concat([Buffer.from([0x05, 0x06]), Buffer.alloc(0x4b50 - 2, 0x20)]);
    const zip = zipBytes([{ name: 'a.md', data: 'a' }], { comment });
    expect(zip.indexOf(Buffer.from('PK\x05\x06', 'latin1'), zip.length - comment.length - 4)).toBe(zip.length - comment.length - 2);
    expect(readZipStructure(bufferSource(zip), LIMITS)).toEqual({ violations: [{ path: '(archive)', message: expect.stringContaining('second end of central directory record') }] });
    expect('entries' in readZipStructure(bufferSource(zipBytes([{ name: 'a.md', data: 'a' }], { comment: Buffer.from('a plain comment') })), LIMITS)).toBe(true);
  });

  it('accepts stored entries with a data descriptor without its signature', async () => {
    const zip = zipBytes([{ name: 'a.md', data: 'abc', descriptor: true }]);
    // Drop the descriptor's signature (4 bytes), and shift the central directory's offset to match.
    const at = zip.indexOf(Buffer.from([0x50, 0x4b, 0x07, 0x08]));
    const shorter = Buffer.concat([zip.subarray(0, at), zip.subarray(at + 4)]);
    shorter.writeUInt32LE(shorter.readUInt32LE(shorter.length - 6) - 4, shorter.length - 6);
    expect('entries' in readZipStructure(bufferSource(shorter), LIMITS)).toBe(true);
    expect(await vetArchive(bufferArchive(shorter))).toEqual({ accepted: true, kind: 'template', format: 'zip', catalog: null });
  });
});

describe('members: inflated once, and exactly', () => {
  it('refuses bytes hidden after the end of a deflate stream, inside its compressed size (read from a file, in chunks)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rs-vet-unit-'));
    try {
      const zip = zipBytes([{ name: 'a.md', data: 'hello', method: 8 }]);
      // Rebuild the member by hand: deflate('hello') followed by 200 KiB that a streaming reader would read as more entries.
      const body = Buffer.concat([deflateRawSync('hello'), Buffer.alloc(200 * 1024, 0x50)]);
      const name = Buffer.from('a.md');
      const local = Buffer.from(zip.subarray(0, 30));
      local.writeUInt32LE(body.length, 18);
      const central = Buffer.from(zip.subarray(30 + name.length + deflateRawSync('hello').length, zip.length - 22));
      central.writeUInt32LE(body.length, 20);
      const end = Buffer.from(zip.subarray(zip.length - 22));
      end.writeUInt32LE(30 + name.length + body.length, 16);
      const path = join(dir, 'trailing.zip');
      await writeFile(path, Buffer.concat([local, name, body, central, end]));
      expect(await vetFile(path)).toEqual({ accepted: false, violations: [{ path: 'a.md', message: expect.stringContaining('does not end where its deflate stream ends') }] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('entries: names as the CLI decodes them', () => {
  it('decodes cp437 as Python does: controls stay controls', () => {
    expect(decodeEntryName(Buffer.from('ex\x01tra.md', 'latin1'), 0)).toBe('ex\u0001tra.md');
    expect(decodeEntryName(Buffer.from([0x82, 0xff]), 0)).toBe('é\u00a0');
    expect(decodeEntryName(Buffer.from('é'), 0x0800)).toBe('é');
    expect(decodeEntryName(Buffer.from([0xc3]), 0x0800)).toBeNull();
  });

  it.each(['a<b', 'a>b', 'a"b', 'a|b', 'a?b', 'a*b', ' lead', 'dir/ lead', 'c1\u0085x'])('refuses %j', (name) => {
    expect(unsafeEntryNameReason(name)).not.toBeNull();
  });
});

describe('manifest: bounded, and safe to show', () => {
  const check = (text: string) => checkManifest({ kind: 'extension', path: 'extension.yml', text: Buffer.from(text), files: new Set(['commands/greet.md']) });
  const base = (info: Record<string, unknown> = {}, more = '') => {
    const m = extensionManifest('unit-ext');
    Object.assign(m.extension as object, info);
    return `${stringify(m)}${more}`;
  };

  it('accepts a real manifest, with a multi-line description', () => {
    expect(check(base({ description: 'Line one\nline two\twith a tab', homepage: 'https://example.com/x' })).violations).toEqual([]);
  });

  it.each([
    ['a flow collection 100,000 deep', '['.repeat(100_000), 'nests deeper'],
    ['a block mapping 40 deep', Array.from({ length: 40 }, (_, i) => `${'  '.repeat(i)}a:`).join('\n'), 'nests deeper'],
    ['more than 256 KiB', `a: "${'x'.repeat(300 * 1024)}"`, 'a manifest may have at most'],
    ['6,000 keys', Array.from({ length: 6000 }, (_, i) => `k${i}: 1`).join('\n'), 'more than 5000'],
    ['17 aliases', `a: &a 1\nb: [${Array(17).fill('*a').join(', ')}]`, 'aliases'],
    ['a merge key', 'a: &a {x: 1}\nb: {<<: *a}', 'merge key'],
    ['a repeated key', 'a: 1\na: 2', 'appears twice'],
  ])('refuses %s', (_what, text, reason) => {
    expect(check(text).violations).toContainEqual({ path: expect.stringMatching(/^extension\.yml/), message: expect.stringContaining(reason) });
  });

  it.each([
    ['javascript:', { homepage: 'javascript:alert(1)' }, '/extension/homepage', 'https:'],
    ['data:', { documentation: 'data:text/html,<script>' }, '/extension/documentation', 'https:'],
    ['not a URL', { repository: 'github.com/acme/x' }, '/extension/repository', 'https:'],
    ['ESC', { description: 'x\u001b[31mred' }, '/extension/description', 'terminal escape'],
    ['OSC (C1)', { author: 'x\u009d8;;https://evil\u009c' }, '/extension/author', 'terminal escape'],
    ['a newline in the name', { name: 'two\nlines' }, '/extension/name', 'line break'],
    ['RLO', { name: 'Acme \u202Eolleh' }, '/extension/name', 'bidirectional'],
    ['LRI in a tag', { tags: ['ok', 'x\u2066y'] }, '/extension/tags/1', 'bidirectional'],
  ])('refuses %s in catalog text', (_what, info, pointer, reason) => {
    expect(check(base(info)).violations).toContainEqual({ path: `extension.yml#${pointer}`, message: expect.stringContaining(reason) });
  });
});
