import { describe, expect, it } from 'vitest';
import { isSafeName, unsafeNameReason } from '../../src/domain/names.js';

describe('unsafeNameReason', () => {
  it.each(['spec-kit-template-claude-sh-v0.2.0.zip', 'a', 'пакет.zip', 'name with spaces.zip', 'x..y.zip', `${'a'.repeat(255)}`])('accepts %s', (name) => {
    expect(unsafeNameReason(name)).toBeNull();
  });

  it.each([
    ['', 'empty'],
    ['a/b.zip', 'path separator'],
    ['a\\b.zip', 'path separator'],
    ['..', 'starts with a dot'],
    ['.', 'starts with a dot'],
    ['.env', 'starts with a dot'],
    ['tab\tname', 'control character'],
    ['nul\u0000name', 'control character'],
    ['del\u007fname', 'control character'],
    ['new\nline', 'control character'],
    ['csi\u009bname', 'control character'],
    ['osc\u009dname', 'control character'],
    ['report\u202Efdp.zip', 'bidirectional'],
    ['isolate\u2066x\u2069.zip', 'bidirectional'],
    ['mark\u200F.zip', 'bidirectional'],
    ['arabic\u061Cmark.zip', 'bidirectional'],
    [`${'a'.repeat(256)}`, 'longer than 255 bytes'],
    [`${'é'.repeat(128)}`, 'longer than 255 bytes'],
  ])('refuses %j (%s)', (name, reason) => {
    expect(unsafeNameReason(name)).toContain(reason);
    expect(isSafeName(name)).toBe(false);
  });
});
