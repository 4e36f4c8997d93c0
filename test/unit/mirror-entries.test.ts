import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { normaliseCatalog, CatalogFormatError, MAX_STEP_FILES } from '../../src/mirror/entries.js';
import type { CatalogKind } from '../../src/domain/kinds.js';

const upstream = (path: string): unknown | null => {
  try {
    return JSON.parse(readFileSync(`/tmp/upstream/${path}`, 'utf8'));
  } catch {
    return null;
  }
};

describe('normaliseCatalog', () => {
  it('reads upstream\'s public extension catalog as it is: ids from keys, download_url, sha256 only where given', () => {
    const document = upstream('extensions/catalog.community.json') as { extensions: Record<string, Record<string, unknown>> } | null;
    if (!document) return; // upstream's checkout is not on every machine
    const { entries, refused } = normaliseCatalog('extension', document);
    expect(entries.length + refused.length).toBe(Object.keys(document.extensions).length);
    const first = Object.keys(document.extensions)[0]!;
    expect(entries.find((e) => e.id === first)).toMatchObject({ kind: 'extension', id: first, version: document.extensions[first]!.version, download: { type: 'url' } });
    const withSha = entries.filter((e) => e.sha256 !== undefined).length;
    expect(withSha).toBe(Object.values(document.extensions).filter((e) => 'sha256' in e).length);
    expect(entries.filter((e) => e.download.type === 'none').length).toBeGreaterThanOrEqual(1);
  });

  it('takes the extension shape: bundled and URL-less entries download nothing, sha256 kept as declared', () => {
    const { entries, refused } = normaliseCatalog('extension', {
      schema_version: '1.0',
      extensions: {
        a: { id: 'a', version: '1.0.0', download_url: ' https://x.example/a.zip ', sha256: 'SHA256:AB' },
        b: { version: '2.0.0', bundled: true },
        c: { version: '0.1.0' },
        d: { version: '1.0.0', download_url: 'https://x.example/d.zip', sha256: '' },
      },
    });
    expect(refused).toEqual([]);
    expect(entries.map((e) => [e.id, e.version, e.download, e.sha256])).toEqual([
      ['a', '1.0.0', { type: 'url', url: 'https://x.example/a.zip' }, 'SHA256:AB'],
      ['b', '2.0.0', { type: 'none', reason: 'bundled with the CLI, which installs it from its own assets' }, undefined],
      ['c', '0.1.0', { type: 'none', reason: 'the entry has no download_url' }, undefined],
      ['d', '1.0.0', { type: 'url', url: 'https://x.example/d.zip' }, ''],
    ]);
    expect(entries[0]!.fields).toMatchObject({ id: 'a', sha256: 'SHA256:AB' });
  });

  it('refuses entries it cannot mirror, each with its reason, and keeps the rest', () => {
    const { entries, refused } = normaliseCatalog('preset', {
      schema_version: '1.0',
      presets: {
        ok: { version: '1.0.0', download_url: 'https://x.example/ok.zip' },
        'no-version': { download_url: 'https://x.example/n.zip' },
        other: { id: 'different', version: '1.0.0' },
        '../evil': { version: '1.0.0', download_url: 'https://x.example/e.zip' },
        notobj: 'nope',
        badsha: { version: '1.0.0', download_url: 'https://x.example/b.zip', sha256: 12 },
      },
    });
    expect(entries.map((e) => e.id)).toEqual(['ok']);
    expect(refused.map((r) => [r.entry.id, r.filter, r.reason])).toEqual([
      ['no-version', 'catalog', 'the entry has no version'],
      ['other', 'catalog', 'the entry\'s id "different" differs from its key "other"'],
      ['../evil', 'catalog', 'the id "../evil" is not a plain id (letters, digits, ".", "_", "-")'],
      ['notobj', 'catalog', 'the entry is not an object'],
      ['badsha', 'catalog', 'sha256 must be a string'],
    ]);
  });

  it('takes workflows as an object or a list of objects with id', () => {
    const asList = normaliseCatalog('workflow', { workflows: [{ id: 'flow', version: '1.1.0', url: 'https://x.example/workflow.yml', sha256: 'a'.repeat(64) }, { version: '1.0.0' }, { id: 'flow', version: '2.0.0', url: 'https://x.example/2.yml' }] });
    expect(asList.entries.map((e) => [e.id, e.download, e.sha256])).toEqual([['flow', { type: 'url', url: 'https://x.example/workflow.yml' }, 'a'.repeat(64)]]);
    expect(asList.refused.map((r) => r.reason)).toEqual(['the entry has no id', 'the id flow appears more than once in the catalog']);
    const asObject = normaliseCatalog('workflow', { workflows: { flow: { version: '1.1.0', url: 'https://x.example/flow.zip' } } });
    expect(asObject.entries[0]).toMatchObject({ id: 'flow', download: { type: 'url', url: 'https://x.example/flow.zip' } });
    expect(normaliseCatalog('workflow', {}).entries).toEqual([]);
  });

  it('reads a step as the CLI does: step_yml_url wins, init_url given or derived, extra_files as a mapping; no sha256', () => {
    const { entries, refused } = normaliseCatalog('step', {
      steps: [
        { id: 'derived', version: '1.0.0', url: 'https://x.example/s/step.yml', sha256: 'ignored' },
        {
          id: 'explicit',
          version: '1.0.0',
          url: 'https://x.example/ignored/step.yml',
          step_yml_url: 'https://x.example/e/step.yml',
          init_url: 'https://x.example/e/init.py',
          extra_files: { 'lib/util.py': 'https://x.example/e/util.py', 'STEP.YML': 'https://x.example/ignored', '__init__.py': 'https://x.example/ignored' },
        },
        { id: 'warned', version: '1.0.0', url: 'https://x.example/w/step.yml', extra_files: ['lib.py'] },
        { id: 'underivable', version: '1.0.0', url: 'https://x.example/u/main.yaml' },
        { id: 'escape', version: '1.0.0', url: 'https://x.example/x/step.yml', extra_files: { '../../etc/cron.d/x': 'https://x.example/x' } },
        { id: 'nourl', version: '1.0.0' },
        { id: 'blank-init', version: '1.0.0', url: 'https://x.example/b/step.yml', init_url: ' ' },
      ],
    });
    expect(entries.map((e) => [e.id, e.download, e.sha256, e.warnings])).toEqual([
      ['derived', { type: 'step-files', files: [{ path: 'step.yml', url: 'https://x.example/s/step.yml' }, { path: '__init__.py', url: 'https://x.example/s/__init__.py' }] }, undefined, []],
      [
        'explicit',
        {
          type: 'step-files',
          files: [
            { path: 'step.yml', url: 'https://x.example/e/step.yml' },
            { path: '__init__.py', url: 'https://x.example/e/init.py' },
            { path: 'lib/util.py', url: 'https://x.example/e/util.py' },
          ],
        },
        undefined,
        [],
      ],
      ['warned', { type: 'step-files', files: [{ path: 'step.yml', url: 'https://x.example/w/step.yml' }, { path: '__init__.py', url: 'https://x.example/w/__init__.py' }] }, undefined, ['extra_files is not a mapping: the CLI ignores it, so no extra files are mirrored']],
    ]);
    expect(refused.map((r) => [r.entry.id, r.reason])).toEqual([
      ['underivable', 'no init_url, and none can be derived from https://x.example/u/main.yaml (it does not end in step.yml)'],
      ['escape', 'extra_files path "../../etc/cron.d/x" is not a relative file path inside the step'],
      ['nourl', 'the entry has no step_yml_url or url'],
      ['blank-init', 'init_url must be a non-empty string'],
    ]);
  });

  it(`refuses a step with more than ${MAX_STEP_FILES} files`, () => {
    const extra = Object.fromEntries(Array.from({ length: MAX_STEP_FILES - 1 }, (_, i) => [`f${i}.py`, `https://x.example/${i}`]));
    const { refused } = normaliseCatalog('step', { steps: { big: { version: '1.0.0', url: 'https://x.example/step.yml', extra_files: extra } } });
    expect(refused[0]!.reason).toBe(`the step has ${MAX_STEP_FILES + 1} files, more than the CLI's ${MAX_STEP_FILES}`);
    const fits = normaliseCatalog('step', { steps: { big: { version: '1.0.0', url: 'https://x.example/step.yml', extra_files: Object.fromEntries(Object.entries(extra).slice(1)) } } });
    expect(fits.refused).toEqual([]);
  });

  it('reads integrations as search-only and bundles with download_url and a prefixed sha256', () => {
    expect(normaliseCatalog('integration', { schema_version: '1.0', integrations: { x: { version: '1.0.0' } } }).entries[0]!.download).toEqual({ type: 'none', reason: 'integration entries are search and info only' });
    expect(normaliseCatalog('bundle', { bundles: { b: { id: 'b', version: '0.5.1', download_url: 'https://x.example/b.zip', sha256: 'sha256:' + 'f'.repeat(64) } } }).entries[0]).toMatchObject({ download: { type: 'url', url: 'https://x.example/b.zip' }, sha256: 'sha256:' + 'f'.repeat(64) });
  });

  it.each<[CatalogKind, unknown, string]>([
    ['extension', [], 'the extension catalog is not a JSON object'],
    ['extension', { extensions: {} }, 'the extension catalog has no schema_version'],
    ['preset', { schema_version: '1.0' }, 'the preset catalog has no "presets" key'],
    ['integration', { integrations: {} }, 'the integration catalog has no schema_version'],
    ['bundle', { schema_version: '1.0' }, 'the bundle catalog has no "bundles" key'],
    ['extension', { schema_version: '1.0', extensions: [] }, '"extensions" in the extension catalog must be an object'],
    ['step', { steps: 'x' }, '"steps" in the step catalog must be an object or a list'],
  ])('refuses a %s catalog that the CLI would not read (%j)', (kind, document, message) => {
    expect(() => normaliseCatalog(kind, document)).toThrow(new CatalogFormatError(message));
  });
});
