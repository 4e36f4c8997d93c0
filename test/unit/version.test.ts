import { describe, expect, it } from 'vitest';
import { highestTag, tagOfName } from '../../src/domain/version.js';

describe('tagOfName', () => {
  it.each([
    ['spec-kit-template-claude-sh-v0.2.0.zip', 'v0.2.0'],
    ['spec-kit-template-claude-sh-0.2.0.zip', 'v0.2.0'],
    ['spec-kit-template-claude-sh-v1.0.0-rc.1.zip', 'v1.0.0-rc.1'],
    ['tool_v2.10.3.tar.gz', 'v2.10.3'],
    ['v3.1.4.zip', 'v3.1.4'],
    ['spec-kit-template-claude-sh.zip', null],
    ['spec-kit-template-claude-sh-v0.2.zip', null],
    ['release-v0.2.0-final-notes.txt', 'v0.2.0-final-notes'],
    ['notes-v0.2.0_draft.txt', null],
    ['pkgv1.2.3.zip', null],
  ])('%s → %s', (name, tag) => {
    expect(tagOfName(name)).toBe(tag);
  });
});

describe('highestTag', () => {
  it('orders by semver, pre-releases below their release', () => {
    expect(highestTag(['v0.9.0', 'v0.10.0', 'v0.2.0'])).toBe('v0.10.0');
    expect(highestTag(['v1.0.0-rc.2', 'v1.0.0', 'v1.0.0-rc.10'])).toBe('v1.0.0');
    expect(highestTag(['v1.0.0-rc.2', 'v1.0.0-rc.10'])).toBe('v1.0.0-rc.10');
  });

  it('is null when no name carries a version', () => {
    expect(highestTag([null, null])).toBeNull();
    expect(highestTag([])).toBeNull();
  });
});
