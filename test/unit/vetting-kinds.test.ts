import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, inflateRawSync } from 'node:zlib';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CatalogMetadata } from '../../src/domain/record.js';
import { bufferArchive } from '../../src/vetting/archive.js';
import { readTarGz } from '../../src/vetting/tar-archive.js';
import { CATALOG_LIMITS, vetFile, type Verdict } from '../../src/vetting/vet.js';
import { extensionManifest, presetManifest, workflowManifest } from '../helpers/packages.js';
import { longNameEntry, paxEntry, tarBytes, tarEntry, tarGz, tarGzFiles, type TarSpec } from '../helpers/tar.js';
import { makeZip } from '../helpers/zip.js';
import { zipBytes, type EntrySpec } from '../helpers/zip-bytes.js';

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rs-vet-kinds-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Vets bytes the way the worker does: from a staged file. */
async function vet(bytes: Buffer | string): Promise<Verdict> {
  const path = join(dir, `upload-${(n += 1)}`);
  await writeFile(path, bytes);
  return vetFile(path);
}

function violationsOf(verdict: Verdict) {
  expect(verdict.accepted).toBe(false);
  return verdict.accepted ? [] : verdict.violations;
}

function catalogOf(verdict: Verdict): CatalogMetadata {
  if (!verdict.accepted) throw new Error(`refused: ${JSON.stringify(verdict.violations)}`);
  return verdict.catalog!;
}

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

const extensionFiles = (id = 'tar-ext') => ({ 'extension.yml': stringify(extensionManifest(id)), 'commands/greet.md': '# Greet\n' });

/** A valid extension's entries plus `more`, as a tar.gz. */
const extensionTar = (more: (TarSpec | Buffer)[], id = 'tar-ext') => tarGz([...Object.entries(extensionFiles(id)).map(([name, data]) => ({ name, data })), ...more]);

describe('format: decided by the bytes', () => {
  it('reads a zip, a tar.gz and bare YAML, whatever the file is called, and says which', async () => {
    const zip = await makeZip(extensionFiles());
    expect(await vet(zip)).toMatchObject({ accepted: true, kind: 'extension', format: 'zip' });
    expect(await vet(tarGzFiles(extensionFiles()))).toMatchObject({ accepted: true, kind: 'extension', format: 'tar.gz' });
    expect(await vet(stringify(workflowManifest('bare-flow')))).toMatchObject({ accepted: true, kind: 'workflow', format: 'yaml' });
  });

  it('gives a tar.gz extension the catalog metadata its zip gets', async () => {
    const fromZip = catalogOf(await vet(await makeZip(extensionFiles())));
    const fromTar = catalogOf(await vet(tarGzFiles(extensionFiles())));
    expect(fromTar).toEqual(fromZip);
    expect(fromTar).toMatchObject({ id: 'tar-ext', version: '1.0.0', provides: { commands: 1, hooks: 0 } });
  });

  it('accepts tar.gz presets and workflows, also inside one top-level directory', async () => {
    const preset = { 'p/preset.yml': stringify(presetManifest('tar-preset')), 'p/templates/spec-template.md': '# Spec\n' };
    expect(await vet(tarGz([{ name: 'p/' }, { name: 'p/templates/' }, ...Object.entries(preset).map(([name, data]) => ({ name, data }))]))).toMatchObject({ accepted: true, kind: 'preset', format: 'tar.gz' });
    expect(await vet(tarGzFiles({ 'workflow.yml': stringify(workflowManifest('tar-flow')) }))).toMatchObject({ accepted: true, kind: 'workflow', format: 'tar.gz' });
  });

  it('checks that a tar.gz manifest names only files the tar holds', async () => {
    const violations = violationsOf(await vet(tarGzFiles({ 'extension.yml': stringify(extensionManifest('tar-ext')) })));
    expect(violations).toContainEqual({ path: 'extension.yml#/provides/commands/0/file', message: expect.stringContaining('is not in the package') });
  });

  it('still reports a prefixed zip as a zip (the zip reader says why it is refused)', async () => {
    const zip = zipBytes([{ name: 'a.md', data: 'a' }]);
    const prefixed = Buffer.concat([Buffer.from('MZ anything\n'), zip]);
    expect(violationsOf(await vet(prefixed))).toEqual([{ path: '(archive)', message: expect.stringContaining('central directory') }]);
  });

  it.each([
    ['a step in a tar.gz', () => tarGzFiles({ 'step.yml': 'step: {type_key: x}\n', '__init__.py': '' }), 'step.yml', 'a step is a zip holding step.yml and __init__.py'],
    ['a bundle in a tar.gz', () => tarGzFiles({ 'bundle.yml': 'bundle: {}\n' }), 'bundle.yml', 'takes no tar.gz bundle'],
    ['an integration in a tar.gz', () => tarGzFiles({ 'integration.yml': 'integration: {}\n' }), 'integration.yml', 'an integration is a zip'],
    ['a template in a tar.gz', () => tarGzFiles({ 'README.md': '# T\n' }), '(archive)', 'a template is a zip'],
    ['a bare extension.yml', () => stringify(extensionManifest('bare-ext')), 'extension.yml', 'an extension must be an archive'],
    ['a bare preset.yml', () => stringify(presetManifest('bare-preset')), 'preset.yml', 'a preset must be an archive'],
    ['a bare step.yml', () => stringify(stepManifest('bare-step')), 'step.yml', 'a step is a zip holding step.yml and __init__.py'],
  ])('refuses %s', async (_what, bytes, path, message) => {
    expect(violationsOf(await vet(bytes()))).toEqual([{ path, message: expect.stringContaining(message) }]);
  });
});

describe('tar.gz: entries', () => {
  it.each<[string, TarSpec, string]>([
    ['a symbolic link', { name: 'link', type: '2', linkname: '/etc/passwd' }, 'symbolic links are refused'],
    ['a hard link', { name: 'hard', type: '1', linkname: 'extension.yml' }, 'hard links are refused'],
    ['a character device', { name: 'tty', type: '3' }, 'character devices are refused'],
    ['a block device', { name: 'disk', type: '4' }, 'block devices are refused'],
    ['a FIFO', { name: 'pipe', type: '6' }, 'FIFOs are refused'],
    ['an unknown type', { name: 'odd', type: 'Z' }, 'entry type "Z" is refused'],
    ['"../x"', { name: '../x', data: 'x' }, '".."'],
    ['an absolute path', { name: '/etc/x', data: 'x' }, 'absolute'],
    ['a drive letter', { name: 'C:/x', data: 'x' }, 'drive letter'],
    ['a control character', { name: 'a\u0001b', data: 'x' }, 'control character'],
    ['a Windows device name', { name: 'docs/nul.md', data: 'x' }, 'reserved Windows device name'],
    ['a trailing dot', { name: 'docs/x.', data: 'x' }, 'ends in a space or a dot'],
    ['"?"', { name: 'docs/x?.md', data: 'x' }, '"?"'],
  ])('refuses %s', async (_what, spec, message) => {
    expect(violationsOf(await vet(extensionTar([spec])))).toContainEqual({ path: expect.any(String), message: expect.stringContaining(message) });
  });

  it('refuses names that collide once case-folded, directories too (as safe_extract_tar does)', async () => {
    expect(violationsOf(await vet(extensionTar([{ name: 'README.md', data: 'a' }, { name: 'readme.md', data: 'b' }])))).toEqual([
      { path: 'readme.md', message: 'collides with "README.md" on a case-insensitive file system' },
    ]);
    expect(violationsOf(await vet(extensionTar([{ name: 'Docs/' }, { name: 'docs/' }])))).toEqual([{ path: 'docs', message: expect.stringContaining('collides with "Docs"') }]);
    expect(violationsOf(await vet(extensionTar([{ name: 'Stra\u00dfe.md', data: 'a' }, { name: 'STRASSE.md', data: 'b' }])))).toHaveLength(1);
  });

  it('refuses a name that appears twice', async () => {
    expect(violationsOf(await vet(extensionTar([{ name: 'commands/greet.md', data: 'other' }])))).toEqual([{ path: 'commands/greet.md', message: expect.stringContaining('appears twice') }]);
  });

  it('refuses a file that is also a directory', async () => {
    expect(violationsOf(await vet(extensionTar([{ name: 'docs', data: 'a' }, { name: 'docs/x.md', data: 'b' }])))).toContainEqual({ path: 'docs', message: 'is a file and also a directory' });
  });

  it('refuses more than 512 entries, and stops reading at the 513th', async () => {
    const many = Array.from({ length: 511 }, (_, i) => ({ name: `docs/${i}.md`, data: 'x' }));
    expect(await vet(extensionTar(many.slice(0, 509)))).toMatchObject({ accepted: true });
    const tar = extensionTar(many);
    expect(violationsOf(await vet(tar))).toEqual([{ path: '(archive)', message: expect.stringContaining('more than 512 entries') }]);
    const read = await readTarGz(bufferArchive(tar), CATALOG_LIMITS, () => false, 0);
    expect(read.entries).toHaveLength(512);
  });

  it('refuses a member over 10 MiB at its header, before reading its data', async () => {
    const big = extensionTar([{ name: 'big.bin', data: Buffer.alloc(11 * 1024 * 1024) }]);
    expect(violationsOf(await vet(big))).toEqual([{ path: 'big.bin', message: expect.stringContaining('a member may hold at most 10485760') }]);
    const read = await readTarGz(bufferArchive(big), CATALOG_LIMITS, () => false, 0);
    expect(read.inflatedBytes).toBeLessThan(1024 * 1024);
  });

  it('refuses more than 50 MiB in all, at the header that passes it', async () => {
    const nine = Array.from({ length: 6 }, (_, i) => ({ name: `blob${i}.bin`, data: Buffer.alloc(9 * 1024 * 1024) }));
    const tar = extensionTar(nine);
    expect(violationsOf(await vet(tar))).toEqual([{ path: '(archive)', message: expect.stringContaining('inflates to more than 52428800') }]);
    const read = await readTarGz(bufferArchive(tar), CATALOG_LIMITS, () => false, 0);
    expect(read.inflatedBytes).toBeLessThan(46 * 1024 * 1024);
  });

  it('stops a gzip bomb (60 MiB of zeros) at its limit, never inflating all of it', async () => {
    const bomb = gzipSync(Buffer.alloc(60 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(100 * 1024);
    expect(violationsOf(await vet(bomb))).toEqual([{ path: '(archive)', message: expect.stringContaining('tar headers, padding and end blocks take more than') }]);
    const read = await readTarGz(bufferArchive(bomb), CATALOG_LIMITS, () => false, 0);
    // The budget for headers and end blocks is 4 MiB; the inflater is stopped within one chunk past it.
    expect(read.inflatedBytes).toBeGreaterThan(CATALOG_LIMITS.maxCentralDirectoryBytes);
    expect(read.inflatedBytes).toBeLessThan(CATALOG_LIMITS.maxCentralDirectoryBytes + 256 * 1024);
  });

  it('accepts the zero blocks GNU tar pads a record with', async () => {
    const tar = tarBytes(Object.entries(extensionFiles()).map(([name, data]) => ({ name, data })));
    const padded = Buffer.concat([tar, Buffer.alloc(10240 - (tar.length % 10240))]);
    expect(await vet(gzipSync(padded))).toMatchObject({ accepted: true, format: 'tar.gz' });
  });
});

describe('tar.gz: what two readers would read differently', () => {
  const valid = () => tarBytes(Object.entries(extensionFiles()).map(([name, data]) => ({ name, data })));

  it('refuses a second gzip member (concatenated gzip)', async () => {
    const two = Buffer.concat([gzipSync(valid()), gzipSync(tarBytes([{ name: 'hidden.md', data: 'x' }]))]);
    expect(violationsOf(await vet(two))).toEqual([{ path: '(archive)', message: expect.stringContaining('a second gzip member') }]);
  });

  it('refuses bytes after the gzip trailer, zeros included', async () => {
    expect(violationsOf(await vet(Buffer.concat([gzipSync(valid()), Buffer.from('garbage')])))).toEqual([{ path: '(archive)', message: expect.stringContaining('trailing garbage') }]);
    expect(violationsOf(await vet(Buffer.concat([gzipSync(valid()), Buffer.alloc(8)])))).toEqual([{ path: '(archive)', message: expect.stringContaining('trailing garbage') }]);
    expect(await vet(gzipSync(valid()))).toMatchObject({ accepted: true });
  });

  it('refuses a gzip whose CRC does not match, and a truncated one', async () => {
    const gz = gzipSync(valid());
    const badCrc = Buffer.from(gz);
    badCrc.writeUInt32LE(badCrc.readUInt32LE(badCrc.length - 8) ^ 1, badCrc.length - 8);
    expect(violationsOf(await vet(badCrc))).toEqual([{ path: '(archive)', message: expect.stringContaining('CRC-32') }]);
    expect(violationsOf(await vet(gz.subarray(0, gz.length - 20)))).toEqual([{ path: '(archive)', message: expect.any(String) }]);
  });

  it('refuses entries hidden after the end-of-archive block (tarfile stops there)', async () => {
    const hidden = Buffer.concat([valid(), tarEntry({ name: 'hidden.md', data: 'x' }), Buffer.alloc(1024)]);
    expect(violationsOf(await vet(gzipSync(hidden)))).toEqual([{ path: '(archive)', message: expect.stringContaining('follow the end-of-archive block') }]);
  });

  it('refuses a GNU header with a prefix field (tarfile joins it to the name, tar-stream does not)', async () => {
    expect(violationsOf(await vet(extensionTar([{ name: 'x.md', data: 'x', magic: 'gnu', prefix: 'evil' }])))).toEqual([
      { path: 'evil/x.md', message: expect.stringContaining('tar readers disagree') },
    ]);
    // The ustar prefix both readers apply is fine.
    expect(await vet(extensionTar([{ name: 'x.md', data: 'x', prefix: 'docs' }]))).toMatchObject({ accepted: true });
  });

  it('refuses an old-style ("\\0"-type) entry whose name ends in "/" (tarfile: a directory; tar-stream: a file)', async () => {
    expect(violationsOf(await vet(extensionTar([{ name: 'docs/', type: '\u0000' }])))).toEqual([{ path: 'docs', message: expect.stringContaining('tar readers disagree') }]);
    // With type "0", both read a file (named "docs" once extracted).
    expect(await vet(extensionTar([{ name: 'docs/', type: '0' }]))).toMatchObject({ accepted: true });
  });

  it('refuses old (v7) headers, base-256 sizes and bad checksums', async () => {
    expect(violationsOf(await vet(extensionTar([{ name: 'x.md', data: 'x', magic: 'v7' }])))).toContainEqual({ path: '(tar header 3)', message: expect.stringContaining('POSIX ustar or GNU') });
    const header = tarEntry({ name: 'x.md', data: 'x' });
    header[200] = header[200]! ^ 1;
    expect(violationsOf(await vet(extensionTar([header])))).toContainEqual({ path: '(tar header 3)', message: expect.stringContaining('checksum') });
    // Size 1 in base-256 (tar-stream and tarfile both read it; we take octal only), with a checksum to match.
    const base256 = tarEntry({ name: 'x.md', data: 'x' });
    base256.fill(0, 124, 136);
    base256[124] = 0x80;
    base256[135] = 1;
    base256.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of base256.subarray(0, 512)) sum += b;
    base256.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
    expect(violationsOf(await vet(extensionTar([base256])))).toContainEqual({ path: '(tar header 3)', message: expect.stringContaining('not a plain octal number') });
  });

  it('takes a pax path (long names) and a GNU long name, as both readers do', async () => {
    const long = `docs/${'a'.repeat(150)}.md`;
    const verdict = await vet(extensionTar([paxEntry({ path: long, mtime: '0' }), { name: 'short.md', data: 'x' }, longNameEntry(`docs/${'b'.repeat(150)}.md`), { name: 'other.md', data: 'y' }]));
    expect(verdict).toMatchObject({ accepted: true });
    const read = await readTarGz(bufferArchive(extensionTar([paxEntry({ path: long }), { name: 'short.md', data: 'x' }])), CATALOG_LIMITS, () => false, 0);
    expect(read.entries.map((e) => e.name)).toContain(long);
    expect(read.entries.map((e) => e.name)).not.toContain('short.md');
  });

  it.each([
    ['a pax size record', [paxEntry({ size: '1' }), { name: 'x.md', data: 'x' }], 'the pax record "size" is refused'],
    ['a pax linkpath record', [paxEntry({ linkpath: 'y' }), { name: 'x.md', data: 'x' }], 'the pax record "linkpath" is refused'],
    ['a global pax header', [tarEntry({ name: 'g', type: 'g', data: '13 path=abc\n' }), { name: 'x.md', data: 'x' }], 'global pax headers are refused'],
    ['a pax path and a GNU long name on one entry', [longNameEntry('docs/one.md'), paxEntry({ path: 'docs/two.md' }), { name: 'x.md', data: 'x' }], 'both a GNU long name and a pax path'],
    ['two pax headers for one entry', [paxEntry({ path: 'a.md' }), paxEntry({ path: 'b.md' }), { name: 'x.md', data: 'x' }], 'two pax headers'],
    ['a malformed pax record', [tarEntry({ name: 'p', type: 'x', data: '99 path=abc\n' }), { name: 'x.md', data: 'x' }], 'records are malformed'],
    ['a pax path that is not UTF-8', [tarEntry({ name: 'p', type: 'x', data: Buffer.concat([Buffer.from('13 path=a'), Buffer.from([0xff, 0xfe]), Buffer.from('.\n')]) }), { name: 'x.md', data: 'x' }], 'not UTF-8'],
    ['a ustar name that is not UTF-8', [{ name: 'x', rawName: Buffer.from([0x78, 0xff, 0x2e, 0x6d, 0x64]), data: 'x' }], 'not valid UTF-8'],
    ['a directory with data', [{ name: 'docs/', data: 'hidden', type: '5' }], 'declares content'],
  ])('refuses %s', async (_what, entries, message) => {
    expect(violationsOf(await vet(extensionTar(entries as (TarSpec | Buffer)[])))).toContainEqual({ path: expect.any(String), message: expect.stringContaining(message) });
  });
});

function stepManifest(id: string, info: Record<string, unknown> = {}) {
  return { step: { type_key: id, name: `Step ${id}`, version: '1.0.0', description: `The ${id} step`, author: 'Acme', ...info } };
}

describe('steps: a zip holding step.yml and __init__.py', () => {
  const init = 'from specify_cli.workflows.base import StepBase\n\nclass Lint(StepBase):\n    type_key = "acme-lint"\n';
  const specs = (prefix: string): EntrySpec[] => [
    { name: `${prefix}step.yml`, data: stringify(stepManifest('acme-lint')), method: 8 },
    { name: `${prefix}__init__.py`, data: init, method: 0 },
    { name: `${prefix}helpers/util.py`, data: 'X = 1\n'.repeat(100), method: 8 },
    { name: `${prefix}empty.txt`, data: '', method: 0 },
  ];

  it.each([
    ['at the root', ''],
    ['in one top-level directory', 'acme-lint/'],
  ])('lists every file %s, located so that each can be served from the zip alone', async (_where, prefix) => {
    const entries = prefix ? [{ name: prefix }, ...specs(prefix)] : specs(prefix);
    const zip = zipBytes(entries);
    const catalog = catalogOf(await vet(zip));
    expect(catalog).toMatchObject({ id: 'acme-lint', version: '1.0.0', name: 'Step acme-lint', description: 'The acme-lint step', author: 'Acme' });
    expect(catalog.files!.map((f) => f.path)).toEqual(['step.yml', '__init__.py', 'helpers/util.py', 'empty.txt']);
    for (const file of catalog.files!) {
      const spec = specs(prefix).find((s) => s.name === `${prefix}${file.path}`)!;
      const data = Buffer.from(spec.data!);
      // Only the numbers the catalog keeps: a range of the stored bytes, inflated when deflated.
      const range = zip.subarray(file.offset, file.offset + file.compressedSize);
      const bytes = file.method === 'stored' ? range : inflateRawSync(range);
      expect(file).toMatchObject({ size: data.length, method: spec.method === 8 ? 'deflated' : 'stored' });
      expect(sha256(bytes)).toBe(file.sha256);
      expect(file.sha256).toBe(sha256(data));
    }
  });

  it('locates members of a zip written by yazl (data descriptors) too', async () => {
    const zip = await makeZip({ 'step.yml': stringify(stepManifest('acme-lint')), '__init__.py': init });
    const catalog = catalogOf(await vet(zip));
    for (const file of catalog.files!) {
      const range = zip.subarray(file.offset, file.offset + file.compressedSize);
      expect(sha256(file.method === 'stored' ? range : inflateRawSync(range))).toBe(file.sha256);
    }
  });

  it('refuses a step without __init__.py', async () => {
    expect(violationsOf(await vet(zipBytes([{ name: 'step.yml', data: stringify(stepManifest('acme-lint')) }])))).toEqual([
      { path: '__init__.py', message: expect.stringContaining('is missing') },
    ]);
  });

  it('refuses a step file over 5 MiB (the CLI fetches each with that limit)', async () => {
    const zip = zipBytes([...specs(''), { name: 'model.bin', data: Buffer.alloc(5 * 1024 * 1024 + 1), method: 8 }]);
    expect(violationsOf(await vet(zip))).toEqual([{ path: 'model.bin', message: expect.stringContaining('with a limit of 5242880') }]);
    expect(await vet(zipBytes([...specs(''), { name: 'model.bin', data: Buffer.alloc(5 * 1024 * 1024), method: 8 }]))).toMatchObject({ accepted: true });
  });

  it('refuses a step.yml that is not UTF-8 (the CLI decodes it strictly)', async () => {
    const latin1 = Buffer.from(stringify(stepManifest('acme-lint', { author: 'Ren\u00e9' })), 'latin1');
    expect(violationsOf(await vet(zipBytes([{ name: 'step.yml', data: latin1 }, { name: '__init__.py', data: init }])))).toEqual([{ path: 'step.yml', message: expect.stringContaining('not UTF-8') }]);
  });

  it('refuses a file outside the step directory', async () => {
    const zip = zipBytes([...specs('acme-lint/'), { name: 'README.md', data: 'x' }]);
    expect(violationsOf(await vet(zip))).toEqual([{ path: 'README.md', message: expect.stringContaining('outside the step') }]);
  });

  it.each([
    ['a built-in step type', 'shell', 'built into the spec-kit CLI'],
    ['a reserved name', '.cache', 'must match'],
    ['a Windows device name', 'con', 'reserved Windows device name'],
    ['upper case', 'Acme', 'must match'],
    ['a path', 'a/b', 'must match'],
    ['more than 64 characters', 'a'.repeat(65), 'at most 64'],
  ])('refuses a type_key that is %s', async (_what, id, message) => {
    const zip = zipBytes([{ name: 'step.yml', data: stringify(stepManifest(id)) }, { name: '__init__.py', data: init }]);
    expect(violationsOf(await vet(zip))).toEqual([{ path: 'step.yml#/step/type_key', message: expect.stringContaining(message) }]);
  });

  it.each([
    ['no version', { version: undefined }, '/step/version', 'is required'],
    ['a version that is not PEP 440', { version: 'one' }, '/step/version', 'PEP 440'],
    ['no description', { description: undefined }, '/step/description', 'is required'],
    ['no name', { name: undefined }, '/step/name', 'is required'],
  ])('refuses a step.yml with %s', async (_what, info, pointer, message) => {
    const zip = zipBytes([{ name: 'step.yml', data: stringify(stepManifest('acme-lint', info)) }, { name: '__init__.py', data: init }]);
    expect(violationsOf(await vet(zip))).toEqual([{ path: `step.yml#${pointer}`, message: expect.stringContaining(message) }]);
  });
});

function bundleManifest(overrides: Record<string, unknown> = {}) {
  return {
    schema_version: '1.0',
    bundle: { id: 'acme-team', name: 'Acme team', version: '1.2.0', role: 'developer', description: 'What Acme developers use', author: 'Acme', license: 'MIT', repository: 'https://example.com/acme' },
    requires: { speckit_version: '>=0.9.0' },
    provides: {
      extensions: [{ id: 'acme-hello', version: '1.0.0' }],
      presets: [{ id: 'acme-preset', version: '2.0.0', priority: 10, strategy: 'replace' }],
      steps: [{ id: 'acme-lint' }],
      workflows: [{ id: 'acme-flow', version: 'v1.0.0' }],
    },
    tags: ['acme', 'team'],
    ...overrides,
  };
}

describe('bundles: bundle.yml, in a zip or bare', () => {
  it('accepts a bare bundle.yml and a zipped one, with its components and their counts', async () => {
    const expected = {
      id: 'acme-team',
      version: '1.2.0',
      name: 'Acme team',
      role: 'developer',
      description: 'What Acme developers use',
      author: 'Acme',
      license: 'MIT',
      repository: 'https://example.com/acme',
      tags: ['acme', 'team'],
      requires: { speckit_version: '>=0.9.0' },
      provides: { extensions: 1, presets: 1, steps: 1, workflows: 1 },
      components: [
        { kind: 'extension', id: 'acme-hello', version: '1.0.0' },
        { kind: 'preset', id: 'acme-preset', version: '2.0.0' },
        { kind: 'step', id: 'acme-lint' },
        { kind: 'workflow', id: 'acme-flow', version: 'v1.0.0' },
      ],
    };
    const bare = await vet(stringify(bundleManifest()));
    expect(bare).toMatchObject({ accepted: true, kind: 'bundle', format: 'yaml' });
    expect(catalogOf(bare)).toMatchObject(expected);
    const zipped = await vet(await makeZip({ 'bundle.yml': stringify(bundleManifest()), 'README.md': '# Acme\n' }));
    expect(zipped).toMatchObject({ accepted: true, kind: 'bundle', format: 'zip' });
    expect(catalogOf(zipped)).toMatchObject(expected);
  });

  it('refuses a zip whose bundle.yml is in a directory (the CLI opens "bundle.yml" at the root only)', async () => {
    expect(violationsOf(await vet(await makeZip({ 'acme/bundle.yml': stringify(bundleManifest()) })))).toEqual([
      { path: 'acme/bundle.yml', message: expect.stringContaining('only at the root') },
    ]);
  });

  it('decides by `bundle:` even when the bundle names an integration', async () => {
    expect(await vet(stringify(bundleManifest({ integration: { id: 'copilot' } })))).toMatchObject({ accepted: true, kind: 'bundle' });
  });

  it('reports every structural problem, each naming its component', async () => {
    const manifest = bundleManifest({
      provides: {
        extensions: [{ id: 'acme-ok', version: '1.0.0' }, { id: 'acme-hello' }, { id: 'acme-short', version: '1.0' }],
        presets: [{ id: 'acme-preset', version: '1.0.0' }],
        workflows: [{ version: '1.0.0' }],
      },
    });
    (manifest.bundle as Record<string, unknown>).id = 'Bad/ID';
    const violations = violationsOf(await vet(stringify(manifest)));
    expect(violations).toEqual([
      { path: 'bundle.yml#/bundle/id', message: expect.stringContaining('must be a slug') },
      { path: 'bundle.yml#provides.extensions[1] (acme-hello)', message: expect.stringContaining('must be pinned to a version') },
      { path: 'bundle.yml#provides.extensions[2] (acme-short)', message: expect.stringContaining('"1.0" is not SemVer') },
      { path: 'bundle.yml#provides.presets[0] (acme-preset)', message: expect.stringContaining('integer priority') },
      { path: 'bundle.yml#provides.presets[0] (acme-preset)', message: expect.stringContaining('strategy is missing') },
      { path: 'bundle.yml#provides.workflows[0]', message: 'has no id' },
    ]);
  });

  it.each([
    ['a bundle version that is not SemVer', { bundle: { ...bundleManifest().bundle, version: '1.2' } }, 'bundle.yml#/bundle/version', 'not SemVer'],
    ['no role', { bundle: { ...bundleManifest().bundle, role: undefined } }, 'bundle.yml#/bundle/role', 'is required'],
    ['no license', { bundle: { ...bundleManifest().bundle, license: '' } }, 'bundle.yml#/bundle/license', 'must not be empty'],
    ['no requires.speckit_version', { requires: {} }, 'bundle.yml#/requires/speckit_version', 'is required'],
    ['schema_version 2.0', { schema_version: '2.0' }, 'bundle.yml#/schema_version', '"1.0"'],
    ['tags that are not strings', { tags: ['ok', 3] }, 'bundle.yml#/tags', 'list of strings'],
    ['a preset strategy outside the four', { provides: { presets: [{ id: 'p', version: '1.0.0', priority: 1, strategy: 'merge' }] } }, 'bundle.yml#provides.presets[0] (p)', 'must be replace, prepend, append or wrap'],
    ['a preset priority that is no integer', { provides: { presets: [{ id: 'p', version: '1.0.0', priority: 'high', strategy: 'wrap' }] } }, 'bundle.yml#provides.presets[0] (p)', 'must be an integer'],
    ['an unquoted number as a pin', { provides: { extensions: [{ id: 'e', version: 1 }] } }, 'bundle.yml#provides.extensions[0] (e)', 'quote it'],
    ['an integration that is not a mapping', { integration: 'copilot' }, 'bundle.yml#/integration', 'must be a mapping'],
  ])('refuses %s', async (_what, overrides, path, message) => {
    expect(violationsOf(await vet(stringify(bundleManifest(overrides))))).toContainEqual({ path, message: expect.stringContaining(message) });
  });

  it('accepts unpinned steps and priorities written as strings, as upstream does', async () => {
    const manifest = bundleManifest({ provides: { presets: [{ id: 'p', version: '1.0.0', priority: '5', strategy: 'append' }], steps: [{ id: 's' }, { id: 't', version: '0.1.0' }] } });
    expect(catalogOf(await vet(stringify(manifest))).components).toEqual([
      { kind: 'preset', id: 'p', version: '1.0.0' },
      { kind: 'step', id: 's' },
      { kind: 'step', id: 't', version: '0.1.0' },
    ]);
  });
});

function integrationManifest(overrides: Record<string, unknown> = {}, info: Record<string, unknown> = {}) {
  return {
    schema_version: '1.0',
    integration: { id: 'my-agent', name: 'My Agent', version: '1.0.0', description: 'Integration for My Agent', author: 'Acme', repository: 'https://example.com/my-agent', license: 'MIT', ...info },
    requires: { speckit_version: '>=0.6.0', tools: [{ name: 'my-agent', version: '>=1.0.0', required: true }] },
    provides: { commands: [{ name: 'speckit.specify', file: 'templates/speckit.specify.md' }], scripts: ['update-context.sh'] },
    ...overrides,
  };
}

describe('integrations: integration.yml, in a zip or bare', () => {
  it('accepts a bare integration.yml (its files cannot be checked: it has none)', async () => {
    const verdict = await vet(stringify(integrationManifest()));
    expect(verdict).toMatchObject({ accepted: true, kind: 'integration', format: 'yaml' });
    expect(catalogOf(verdict)).toMatchObject({ id: 'my-agent', version: '1.0.0', name: 'My Agent', author: 'Acme', license: 'MIT', repository: 'https://example.com/my-agent', provides: { commands: 1, scripts: 1 } });
  });

  it('accepts a zipped one whose command files are there, and refuses one whose are not', async () => {
    const text = stringify(integrationManifest());
    expect(await vet(await makeZip({ 'integration.yml': text, 'templates/speckit.specify.md': '# Specify\n' }))).toMatchObject({ accepted: true, kind: 'integration', format: 'zip' });
    expect(violationsOf(await vet(await makeZip({ 'integration.yml': text, 'README.md': 'x' })))).toEqual([
      { path: 'integration.yml#/provides/commands/0/file', message: expect.stringContaining('is not in the package') },
    ]);
  });

  it.each([
    ['no commands or scripts', { provides: {} }, {}, '/provides', 'at least one command or script'],
    ['an id with capitals', {}, { id: 'My-Agent' }, '/integration/id', 'must match'],
    ['a version that is not PEP 440', {}, { version: 'latest' }, '/integration/version', 'PEP 440'],
    ['no author', {}, { author: undefined }, '/integration/author', 'is required'],
    ['no repository', {}, { repository: undefined }, '/integration/repository', 'is required'],
    ['no license', {}, { license: undefined }, '/integration/license', 'is required'],
    ['no requires.speckit_version', { requires: {} }, {}, '/requires/speckit_version', 'is required'],
    ['a command file outside the package', { provides: { commands: [{ name: 'c', file: '../x.md' }] } }, {}, '/provides/commands/0/file', 'relative path'],
    ['an absolute script', { provides: { scripts: ['/bin/sh'] } }, {}, '/provides/scripts/0', 'relative path'],
    ['schema_version as a number', { schema_version: 1 }, {}, '/schema_version', 'quote it'],
  ])('refuses %s', async (_what, overrides, info, pointer, message) => {
    expect(violationsOf(await vet(stringify(integrationManifest(overrides, info))))).toContainEqual({ path: `integration.yml#${pointer}`, message: expect.stringContaining(message) });
  });
});

describe('bare YAML', () => {
  it('vets a bare workflow.yml as a zipped one is vetted', async () => {
    const text = stringify(workflowManifest('bare-flow'));
    const bare = catalogOf(await vet(text));
    expect(bare).toEqual(catalogOf(await vet(await makeZip({ 'workflow.yml': text }))));
    expect(bare).toMatchObject({ id: 'bare-flow', version: '1.0.0', provides: { steps: 1 } });
  });

  it.each([
    ['a workflow without steps', () => stringify({ ...workflowManifest('w'), steps: [] }), 'workflow.yml#/steps', 'at least one step'],
    ['a workflow version that is not X.Y.Z', () => stringify(workflowManifest('w', '1.0')), 'workflow.yml#/workflow/version', 'X.Y.Z'],
    ['a reserved workflow id', () => stringify(workflowManifest('runs')), 'workflow.yml#/workflow/id', 'reserved'],
    ['text that is not UTF-8', () => Buffer.from([0x77, 0x6f, 0xff, 0x3a, 0x0a]), '(archive)', 'not UTF-8'],
    ['YAML that names no kind', () => 'name: x\nversion: 1.0.0\n', '(archive)', 'top-level key'],
    ['YAML that is no mapping', () => '- a\n- b\n', '(archive)', 'not a YAML mapping'],
    ['plain text', () => 'just some text, not an archive at all', '(archive)', 'not a readable zip archive, tar.gz archive or YAML manifest'],
    ['two kinds at once', () => stringify({ workflow: {}, integration: {} }), '(archive)', 'more than one'],
    ['text that is not YAML', () => 'a: [1, 2\n', '(archive)', 'not valid YAML'],
    ['more than 256 KiB', () => `workflow:\n  id: x\n# ${'x'.repeat(300 * 1024)}\n`, '(archive)', 'too large for a bare YAML manifest'],
  ])('refuses %s', async (_what, bytes, path, message) => {
    expect(violationsOf(await vet(bytes()))).toContainEqual({ path, message: expect.stringContaining(message) });
  });
});
