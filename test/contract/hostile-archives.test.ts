import { deflateRawSync } from 'node:zlib';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogZip, extensionManifest, rawZip, type RawEntry } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { eventually, storageContents } from '../helpers/storage-dir.js';
import { makeZip } from '../helpers/zip.js';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ env: { MAX_PACKAGES: '0', MAX_UPLOAD_BYTES: '64MiB' } });
});
afterAll(async () => {
  await server.stop();
});

const MiB = 1024 * 1024;
const manifest = stringify(extensionManifest('hostile-ext'));
const command = { name: 'commands/greet.md', data: '# Greet\n' };
/** A valid extension's entries, to which each case adds its one hostile part. */
const extension = (...extra: RawEntry[]): Buffer => rawZip([{ name: 'extension.yml', data: manifest }, command, ...extra]);

interface Violation {
  path: string;
  message: string;
}

/** Uploads, expects 422 problem+json listing violations, and checks that nothing was stored anywhere. */
async function refused(zip: Buffer): Promise<Violation[]> {
  const before = (await storageContents(server.storagePath)).packages;
  const listedBefore = await (await fetch(`${server.url}/packages?format=json`)).json();
  const form = new FormData();
  form.append('file', new Blob([zip as BlobPart]), 'hostile.zip');
  const res = await fetch(`${server.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` } });
  const problem = (await res.json()) as { type: string; status: number; errors: Violation[] };
  expect(res.status, JSON.stringify(problem)).toBe(422);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(problem.type).toBe('urn:release-server:problem:invalid-package');
  expect(problem.errors.length).toBeGreaterThan(0);
  expect(await (await fetch(`${server.url}/packages?format=json`)).json()).toEqual(listedBefore);
  await eventually(async () => {
    const after = await storageContents(server.storagePath);
    expect(after.packages).toEqual(before);
    expect(after.staging).toEqual([]);
  });
  return problem.errors;
}

describe('archives spec-kit would refuse to extract: 422, nothing stored', () => {
  it.each([
    ['a parent reference', '../evil.txt', 'climbs out'],
    ['a parent reference inside the path', 'a/../../b.txt', 'climbs out'],
    ['a parent reference with backslashes', '..\\evil.txt', 'climbs out'],
    ['an absolute path', '/etc/passwd', 'absolute'],
    ['a drive letter', 'C:/x.txt', 'drive letter'],
    ['a colon', 'notes:stream.txt', '":"'],
    ['a "." component', './extension.yml', '"." component'],
    ['an empty component', 'a//b.txt', 'empty component'],
    ['a reserved device name', 'con.txt', 'reserved Windows device name'],
    ['a reserved device name as a directory', 'Aux/readme.md', 'reserved Windows device name'],
    ['a component ending in a space', 'dir /x.txt', 'ends in a space or a dot'],
    ['a component ending in a dot', 'dir./x.txt', 'ends in a space or a dot'],
    ['a control character', 'bad\u0007name.txt', 'control character'],
    ['a component over 255 bytes', `${'a'.repeat(256)}.txt`, 'longer than 255 bytes'],
    ['a path over 4096 bytes', `${'abcdefgh/'.repeat(460)}x.txt`, 'longer than 4096 bytes'],
  ])('%s (%s)', async (_what, name, reason) => {
    const errors = await refused(extension({ name, data: 'x' }));
    expect(errors).toContainEqual({ path: name, message: expect.stringContaining(reason) });
  });

  it('names equal after case-folding, and a file that is also a directory', async () => {
    const errors = await refused(extension({ name: 'README.md', data: 'a' }, { name: 'readme.md', data: 'b' }, { name: 'docs', data: 'file' }, { name: 'docs/x.md', data: 'c' }));
    expect(errors).toContainEqual({ path: 'readme.md', message: expect.stringContaining('collides with "README.md"') });
    expect(errors).toContainEqual({ path: 'docs', message: 'is a file and also a directory' });
  });

  it('the same names in a template are refused too', async () => {
    const errors = await refused(rawZip([{ name: 'README.md', data: 'template' }, { name: '../../etc/cron.d/x', data: 'x' }]));
    expect(errors).toContainEqual({ path: '../../etc/cron.d/x', message: expect.stringContaining('climbs out') });
  });

  it('a symlink entry', async () => {
    const errors = await refused(extension({ name: 'link', data: '/etc/passwd', mode: 0o120777 }));
    expect(errors).toContainEqual({ path: 'link', message: expect.stringContaining('symbolic links') });
  });

  it('ZIP64: an entry with the ZIP64 extra field, and an archive with a ZIP64 end record', async () => {
    const extra = Buffer.alloc(4 + 16);
    extra.writeUInt16LE(0x0001, 0);
    extra.writeUInt16LE(16, 2);
    extra.writeBigUInt64LE(3n, 4);
    extra.writeBigUInt64LE(3n, 12);
    const entryErrors = await refused(extension({ name: 'big.bin', data: 'abc', versionNeeded: 45, extra }));
    expect(entryErrors).toContainEqual({ path: 'big.bin', message: expect.stringContaining('ZIP64') });
    const archiveErrors = await refused(rawZip([{ name: 'extension.yml', data: manifest }, command], { zip64Locator: true }));
    expect(archiveErrors).toEqual([{ path: '(archive)', message: expect.stringContaining('ZIP64') }]);
  });

  it('a compression method other than stored or deflated', async () => {
    const errors = await refused(extension({ name: 'data.bz2', data: 'BZh91AY&SY', method: 12 }));
    expect(errors).toContainEqual({ path: 'data.bz2', message: expect.stringContaining('compression method 12') });
  });

  it('513 entries (512 are fine)', async () => {
    const many = Array.from({ length: 511 }, (_, i) => ({ name: `docs/${i}.md`, data: `${i}` }));
    const errors = await refused(extension(...many));
    expect(errors).toEqual([{ path: '(archive)', message: expect.stringContaining('513 entries') }]);
    const form = new FormData();
    form.append('file', new Blob([extension(...many.slice(0, 510)) as BlobPart]), 'ok.zip');
    const res = await fetch(`${server.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(201);
    await fetch(`${server.url}/assets/extension-hostile-ext-1.0.0.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
  });

  it('an 11 MiB member, and more than 50 MiB inflated in total', async () => {
    const big = await refused(extension({ name: 'big.bin', data: Buffer.alloc(11 * MiB), method: 8 }));
    expect(big).toContainEqual({ path: 'big.bin', message: expect.stringContaining(`at most ${10 * MiB}`) });
    const members = Array.from({ length: 6 }, (_, i) => ({ name: `part-${i}.bin`, data: Buffer.alloc(9 * MiB, i), method: 8 }));
    const total = await refused(extension(...members));
    expect(total).toContainEqual({ path: '(archive)', message: expect.stringContaining(`more than ${50 * MiB} bytes`) });
  });

  it('a bomb whose headers understate its size is caught by counting real inflated bytes', async () => {
    const bomb = deflateRawSync(Buffer.alloc(200 * MiB));
    expect(bomb.length).toBeLessThan(MiB);
    const errors = await refused(extension({ name: 'bomb.bin', data: Buffer.alloc(200 * MiB), method: 8, declaredSize: 1000 }));
    expect(errors).toContainEqual({ path: 'bomb.bin', message: 'declares 1000 bytes but inflates to more' });
  });

  it('a declared size that disagrees with the real one, and a corrupt member', async () => {
    const short = await refused(extension({ name: 'short.txt', data: 'twelve bytes', declaredSize: 20 }));
    expect(short).toContainEqual({ path: 'short.txt', message: 'declares 20 bytes but inflates to 12' });
    const zip = extension({ name: 'flipped.txt', data: 'some text to corrupt' });
    zip[zip.indexOf("some text") + 3]! ^= 0xff;
    expect(await refused(zip)).toContainEqual({ path: 'flipped.txt', message: expect.stringContaining('CRC-32') });
  });

  it('a file that is not a zip, and a truncated zip', async () => {
    expect(await refused(Buffer.from('%PDF-1.7 definitely not a zip archive, only text pretending'))).toEqual([{ path: '(archive)', message: expect.stringContaining('not a readable zip archive') }]);
    const whole = await catalogZip('extension');
    expect(await refused(whole.subarray(0, whole.length - 30))).toEqual([{ path: '(archive)', message: expect.stringContaining('not a readable zip archive') }]);
  });
});

describe('manifests spec-kit would refuse, or that a vetted catalog must: 422, nothing stored', () => {
  it('an id of the wrong shape', async () => {
    const errors = await refused(await catalogZip('extension', { id: 'Acme_Hello' }));
    expect(errors).toContainEqual({ path: 'extension.yml#/extension/id', message: expect.stringContaining('must match') });
  });

  it('a version that is not a string, and one that is not PEP 440', async () => {
    expect(await refused(await catalogZip('extension', { version: 1.5 }))).toContainEqual({ path: 'extension.yml#/extension/version', message: expect.stringContaining('must be a string, not the number 1.5') });
    expect(await refused(await catalogZip('preset', { version: 'one point oh' }))).toContainEqual({ path: 'preset.yml#/preset/version', message: expect.stringContaining('not a PEP 440 version') });
    expect(await refused(await catalogZip('workflow', { version: '1.0' }))).toContainEqual({ path: 'workflow.yml#/workflow/version', message: expect.stringContaining('X.Y.Z') });
  });

  it.each([
    ['extension', 'plan', 'core spec-kit command'],
    ['extension', 'git', 'reserved'],
    ['extension', 'agent-context', 'reserved'],
    ['preset', 'lean', 'reserved'],
    ['workflow', 'runs', 'reserved'],
  ] as const)('a %s with the core or bundled id %s', async (kind, id, reason) => {
    const files: Record<string, string | null> = kind === 'extension' ? { 'commands/greet.md': null, [`commands/${id}.md`]: 'x' } : {};
    const zip = await catalogZip(kind, { id, files, manifest: kind === 'extension' ? { provides: { commands: [{ name: `speckit.${id}.greet`, file: `commands/${id}.md` }] } } : {} });
    expect(await refused(zip)).toContainEqual({ path: `${kind}.yml#/${kind}/id`, message: expect.stringContaining(reason) });
  });

  it('a command file that is missing', async () => {
    const errors = await refused(await catalogZip('extension', { files: { 'commands/greet.md': null } }));
    expect(errors).toContainEqual({ path: 'extension.yml#/provides/commands/0/file', message: '"commands/greet.md" is not in the package' });
  });

  it('a preset template file that is missing, inside a top-level directory', async () => {
    const errors = await refused(await catalogZip('preset', { dir: 'acme-preset', files: { 'templates/spec-template.md': null } }));
    expect(errors).toContainEqual({ path: 'acme-preset/preset.yml#/provides/templates/0/file', message: '"templates/spec-template.md" is not in the package' });
  });

  it('a command name of the wrong shape, and one that names another extension', async () => {
    const wrong = await refused(await catalogZip('extension', { manifest: { provides: { commands: [{ name: 'acme.greet', file: 'commands/greet.md' }] } } }));
    expect(wrong).toContainEqual({ path: 'extension.yml#/provides/commands/0/name', message: expect.stringContaining('must look like speckit.acme-hello.<command>') });
    const other = await refused(await catalogZip('extension', { manifest: { provides: { commands: [{ name: 'speckit.someone-else.greet', file: 'commands/greet.md' }] } } }));
    expect(other).toContainEqual({ path: 'extension.yml#/provides/commands/0/name', message: expect.stringContaining('must name this extension') });
  });

  it('a __MACOSX/ folder beside the top directory hides the manifest from the CLI', async () => {
    const zip = await makeZip({
      'acme-hello/extension.yml': manifest.replaceAll('hostile-ext', 'acme-hello'),
      'acme-hello/commands/greet.md': '# Greet',
      '__MACOSX/acme-hello/._extension.yml': 'resource fork',
    });
    const errors = await refused(zip);
    expect(errors).toEqual([{ path: 'acme-hello/extension.yml', message: expect.stringContaining('only top-level directory') }]);
  });

  it('YAML that does not parse, a missing required key, and two manifests', async () => {
    expect(await refused(rawZip([{ name: 'extension.yml', data: 'extension: [unclosed' }]))).toContainEqual({ path: 'extension.yml', message: expect.stringContaining('not valid YAML') });
    expect(await refused(await catalogZip('extension', { manifest: { requires: undefined } }))).toContainEqual({ path: 'extension.yml#/requires', message: 'is required' });
    const both = rawZip([{ name: 'extension.yml', data: manifest }, command, { name: 'preset.yml', data: 'schema_version: "1.0"' }]);
    expect(await refused(both)).toEqual([{ path: 'extension.yml, preset.yml', message: expect.stringContaining('one manifest') }]);
  });

  it('lists every violation of one package, not only the first', async () => {
    const zip = await catalogZip('extension', {
      id: 'many-faults',
      info: { effect: 'everything' },
      files: { 'commands/greet.md': null },
      manifest: { requires: { speckit_version: 'not a specifier' } },
    });
    const paths = (await refused(zip)).map((e) => e.path).sort();
    expect(paths).toEqual(['extension.yml#/extension/effect', 'extension.yml#/provides/commands/0/file', 'extension.yml#/requires/speckit_version']);
  });
});
