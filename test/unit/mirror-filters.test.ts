import { describe, expect, it } from 'vitest';
import { allowFilter, compileGlob, denyFilter, runFilters, sourceFilters, type EntryFilter, type FilterableEntry } from '../../src/mirror/filters.js';

const entry = (id: string): FilterableEntry => ({ kind: 'extension', id, version: '1.0.0' });
const ids = (list: FilterableEntry[]) => list.map((e) => e.id);

describe('id globs', () => {
  it('takes * and ? as the only wildcards, everything else literally, ignoring case', () => {
    expect(compileGlob('speckit-*')('speckit-jira')).toBe(true);
    expect(compileGlob('speckit-*')('speckit-')).toBe(true);
    expect(compileGlob('speckit-*')('my-speckit-jira')).toBe(false);
    expect(compileGlob('v?')('v1')).toBe(true);
    expect(compileGlob('v?')('v10')).toBe(false);
    expect(compileGlob('a.b')('axb')).toBe(false);
    expect(compileGlob('Evil*')('evil-tool')).toBe(true);
    for (const bad of ['[a-z]*', '{a,b}', '!evil', 'a/b', '', 'a b']) expect(() => compileGlob(bad), bad).toThrow('is not an id glob');
  });
});

describe('the filter pipeline', () => {
  const entries = ['adrkit', 'aide', 'evil-tool', 'speckit-jira', 'speckit-evil'].map(entry);

  it('deny wins over allow, and each refusal names its filter and reason', () => {
    const { accepted, refused } = runFilters(entries, sourceFilters({ allow: ['speckit-*', 'adrkit', 'evil-*'], deny: ['*evil*'] }));
    expect(ids(accepted)).toEqual(['adrkit', 'speckit-jira']);
    expect(refused.map((r) => [r.entry.id, r.filter, r.reason])).toEqual([
      ['aide', 'allow', 'aide matches no allow glob ("speckit-*", "adrkit", "evil-*")'],
      ['evil-tool', 'deny', 'evil-tool matches the deny glob "*evil*"'],
      ['speckit-evil', 'deny', 'speckit-evil matches the deny glob "*evil*"'],
    ]);
  });

  it('allows everything by default (allow ["*"]) and nothing with an empty allow list', () => {
    expect(ids(runFilters(entries, sourceFilters({ allow: ['*'], deny: [] })).accepted)).toEqual(ids(entries));
    const none = runFilters(entries, [allowFilter([])]);
    expect(none.accepted).toEqual([]);
    expect(none.refused[0]!.reason).toBe('adrkit matches no allow glob (nothing)');
    expect(ids(runFilters(entries, [denyFilter([])]).accepted)).toEqual(ids(entries));
  });

  it('runs filters in order, the first refusal standing, and a filter that throws refuses rather than passes', () => {
    const calls: string[] = [];
    const spy = (name: string, refuse: string | null): EntryFilter => ({ name, check: (e) => (calls.push(`${name}:${e.id}`), refuse) });
    const broken: EntryFilter = { name: 'policy', check: () => { throw new Error('policy file unreadable'); } };
    const result = runFilters([entry('one')], [spy('first', null), broken, spy('never', null)]);
    expect(result.accepted).toEqual([]);
    expect(result.refused).toEqual([{ entry: entry('one'), filter: 'policy', reason: 'the policy filter failed: policy file unreadable' }]);
    expect(calls).toEqual(['first:one']);
    const second = runFilters([entry('two')], [spy('a', 'no'), spy('b', null)]);
    expect(second.refused[0]!.filter).toBe('a');
    expect(calls).toEqual(['first:one', 'a:two']);
  });
});
