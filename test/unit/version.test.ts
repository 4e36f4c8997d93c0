import { describe, expect, it } from 'vitest';
import { latestOrder, releasesNewestFirst } from '../../src/domain/releases.js';
import { normalizeTag, tagOfName } from '../../src/domain/version.js';
import type { PackageRecord } from '../../src/storage/storage.js';

describe('tagOfName', () => {
  it.each([
    ['spec-kit-template-claude-sh-v0.2.0.zip', 'v0.2.0'],
    ['spec-kit-template-claude-sh-0.2.0.zip', 'v0.2.0'],
    ['spec-kit-template-claude-sh-v1.0.0-rc.1.zip', 'v1.0.0-rc.1'],
    ['tool_v2.10.3.tar.gz', 'v2.10.3'],
    ['v3.1.4.zip', 'v3.1.4'],
    ['release-v0.2.0-final-notes.txt', 'v0.2.0-final-notes'],
    ['notes-v0.2.0_draft.txt', null],
    ['spec-kit-template-claude-sh.zip', null],
    ['spec-kit-template-claude-sh-v0.2.zip', null],
    ['pkgv1.2.3.zip', null],
  ])('%s → %s', (name, tag) => {
    expect(tagOfName(name)).toBe(tag);
  });
});

describe('normalizeTag', () => {
  it('adds the v, and refuses what is not semver', () => {
    expect(normalizeTag('1.2.3')).toBe('v1.2.3');
    expect(normalizeTag('v1.2.3-rc.1')).toBe('v1.2.3-rc.1');
    expect(normalizeTag('01.2.3')).toBeNull();
    expect(normalizeTag('latest')).toBeNull();
  });
});

let nextId = 1;
const rec = (name: string, tag: string | null, updatedAt: string): PackageRecord => ({
  id: nextId++,
  name,
  size: 1,
  kind: 'template',
  catalog: null,
  sha256: '0'.repeat(64),
  createdAt: updatedAt,
  updatedAt,
  downloadCount: 0,
  tag,
  blob: '',
});

describe('release ordering', () => {
  const records = [
    rec('a-v0.2.0.zip', 'v0.2.0', '2026-01-01T00:00:01Z'),
    rec('b-v0.10.0.zip', 'v0.10.0', '2026-01-01T00:00:02Z'),
    rec('c-v0.1.1.zip', 'v0.1.1', '2026-01-01T00:00:05Z'), // a hotfix uploaded last
    rec('d-v1.0.0-rc.1.zip', 'v1.0.0-rc.1', '2026-01-01T00:00:03Z'),
    rec('untagged-old.zip', null, '2026-01-01T00:00:00Z'),
    rec('untagged-new.zip', null, '2026-01-01T00:00:09Z'),
    rec('e-v0.10.0.zip', 'v0.10.0', '2026-01-01T00:00:04Z'),
  ];

  it('groups by tag, highest version first, a pre-release above lower releases', () => {
    expect(releasesNewestFirst(records).map((g) => [g.tag, g.records.map((r) => r.name)])).toEqual([
      ['v1.0.0-rc.1', ['d-v1.0.0-rc.1.zip']],
      ['v0.10.0', ['e-v0.10.0.zip', 'b-v0.10.0.zip']],
      ['v0.2.0', ['a-v0.2.0.zip']],
      ['v0.1.1', ['c-v0.1.1.zip']],
    ]);
  });

  it('puts releases before pre-releases before untagged packages for the CLI, never by upload time alone', () => {
    expect(latestOrder(records).map((r) => r.name)).toEqual([
      'e-v0.10.0.zip',
      'b-v0.10.0.zip',
      'a-v0.2.0.zip',
      'c-v0.1.1.zip',
      'd-v1.0.0-rc.1.zip',
      'untagged-new.zip',
      'untagged-old.zip',
    ]);
  });
});
