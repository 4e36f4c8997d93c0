import { gzipSync } from 'node:zlib';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogFiles, extensionManifest, rawZip, workflowManifest } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { tarBytes } from '../helpers/tar.js';

/**
 * Red-team cases for the kinds that landed with issue 20: packages the server took that the spec-kit CLI refuses
 * (checked against upstream's `_download_security.py` and PyYAML's `safe_load`), each now a 422 naming why.
 */
let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ env: { MAX_VERSIONS_PER_PACKAGE: '0' } });
});
afterAll(async () => {
  await server.stop();
});

interface Problem {
  status: number;
  detail: string;
  errors?: { path: string; message: string }[];
}

async function upload(bytes: Buffer | string, name: string): Promise<{ status: number; body: Problem & Record<string, unknown> }> {
  const form = new FormData();
  form.append('file', new Blob([Buffer.from(bytes) as BlobPart]), name);
  const res = await fetch(`${server.url}/upload?overwrite=true`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as Problem & Record<string, unknown> };
}

async function refused(bytes: Buffer | string, name: string): Promise<string> {
  const { status, body } = await upload(bytes, name);
  expect(status, JSON.stringify(body)).toBe(422);
  return JSON.stringify(body.errors ?? body.detail);
}

const extension = (...extra: { name: string; data: string }[]): Buffer =>
  rawZip([{ name: 'extension.yml', data: stringify(extensionManifest('redteam-names')) }, { name: 'commands/greet.md', data: '# Greet\n' }, ...extra]);

describe('format confusion', () => {
  it('refuses a tar.gz that also ends like a zip: the CLI (zipfile.is_zipfile and tarfile both say yes) refuses it as neither', async () => {
    const files = catalogFiles('workflow', 'redteam-poly');
    // A stored (level 0) gzip keeps a member's bytes as they are: an end-of-central-directory record near the end.
    const endRecord = Buffer.concat([Buffer.from('PK\u0005\u0006', 'latin1'), Buffer.alloc(18)]);
    const entries = [...Object.entries(files).map(([name, data]) => ({ name, data })), { name: 'notes.bin', data: endRecord }];
    const plain = gzipSync(tarBytes(entries.slice(0, -1)), { level: 0 });
    expect((await upload(plain, 'flow.tar.gz')).status).toBeLessThan(300);
    const polyglot = gzipSync(tarBytes(entries), { level: 0 });
    expect(polyglot.subarray(-2000).includes(endRecord)).toBe(true);
    expect(await refused(polyglot, 'flow.tar.gz')).toMatch(/zip/);
  });
});

describe('names the CLI refuses to extract', () => {
  it('a Windows device name before a space and an extension ("con .txt": the CLI strips the stem)', async () => {
    expect(await refused(extension({ name: 'docs/con .txt', data: 'x' }), 'ext.zip')).toMatch(/reserved Windows device name/);
    expect(await refused(extension({ name: 'docs/NUL  .md', data: 'x' }), 'ext.zip')).toMatch(/reserved Windows device name/);
  });

  it('"ß" and "ẞ", which Python casefolds alike ("ss") though upper-then-lower case does not', async () => {
    expect(await refused(extension({ name: 'docs/ß.md', data: 'a' }, { name: 'docs/ẞ.md', data: 'b' }), 'ext.zip')).toMatch(/collides/);
    expect(await refused(extension({ name: 'docs/ss.md', data: 'a' }, { name: 'docs/ẞ.md', data: 'b' }), 'ext.zip')).toMatch(/collides/);
  });
});

describe('manifests PyYAML safe_load cannot read', () => {
  const flow = (description: string) =>
    stringify(workflowManifest('redteam-tags')).replace(/description: .*/, `description: ${description}`);

  it('refuses explicit YAML tags (!!python/object, a local !tag, !!binary, !!set): safe_load raises or yields no string', async () => {
    expect((await upload(flow('plain text'), 'workflow.yml')).status).toBeLessThan(300);
    for (const tagged of ['!!python/object/apply:os.system ["id"]', '!!python/name:os.system', '!foo y', '!!binary aGVsbG8=', '!!set {a, b}']) {
      expect(await refused(flow(tagged), 'workflow.yml'), tagged).toMatch(/tag/);
    }
  });

  it('still takes !!str, which safe_load reads as the string it is', async () => {
    expect((await upload(flow('!!str 1.0'), 'workflow.yml')).status).toBeLessThan(300);
  });
});

describe('manifest fields PyYAML (YAML 1.1) reads as no string', () => {
  const flow = (id: string, field: string) => `schema_version: "1.0"\nworkflow:\n  id: ${id}\n  name: Flow\n  version: 1.0.0\n  description: d\n  ${field}\nsteps:\n  - id: plan\n    command: speckit.plan\n`;

  it('refuses `id: on` (true to the CLI, whose workflow id must be a string) and `author: yes`, a date, 0b11', async () => {
    expect(await refused(flow('on', 'author: Acme'), 'workflow.yml')).toMatch(/workflow\/id.*quote it/);
    expect(await refused(flow('redteam-yaml11', 'author: yes'), 'workflow.yml')).toMatch(/workflow\/author.*boolean/);
    expect(await refused(flow('redteam-yaml11', 'author: 2024-01-01'), 'workflow.yml')).toMatch(/a date/);
    expect(await refused(flow('redteam-yaml11', 'author: 0b11'), 'workflow.yml')).toMatch(/number 3/);
  });

  it('takes what both read as text (`Y`, quoted "on") and leaves fields outside the catalog block alone', async () => {
    expect((await upload(flow('redteam-yaml11', 'author: "on"'), 'workflow.yml')).status).toBeLessThan(300);
    expect((await upload(flow('redteam-yaml11b', 'author: Y'), 'workflow.yml')).status).toBeLessThan(300);
    const input = flow('redteam-yaml11c', 'author: Acme').replace('steps:', 'inputs:\n  strict:\n    type: boolean\n    default: yes\nsteps:');
    expect((await upload(input, 'workflow.yml')).status).toBeLessThan(300);
  });
});
