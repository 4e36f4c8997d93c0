import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Journal, type JournalBackend } from '../../../src/storage/journal.js';
import type { StoredRecord } from '../../../src/storage/storage.js';

/** A store in memory, create-only as the real ones are; `loseAnswers` writes an entry and then answers "taken". */
function memoryStore(options: { loseAnswers?: number } = {}) {
  const entries = new Map<number, string>();
  const checkpoints = new Map<number, string>();
  let lose = options.loseAnswers ?? 0;
  const backend: JournalBackend = {
    describe: (what, seq) => `${what} ${seq}`,
    listCheckpoints: async () => [...checkpoints.keys()].sort((a, b) => a - b),
    listEntries: async (after) => [...entries.keys()].filter((s) => s > after).sort((a, b) => a - b),
    readCheckpoint: async (seq) => checkpoints.get(seq) ?? null,
    readEntry: async (seq) => entries.get(seq) ?? null,
    hasEntry: async (seq) => entries.has(seq),
    writeEntry: async (seq, text) => {
      if (entries.has(seq)) return false;
      entries.set(seq, text);
      // As a PUT whose answer was lost and which the client sent again: If-None-Match finds it there.
      if (lose > 0) return (lose -= 1) < 0;
      return true;
    },
    writeCheckpoint: async (seq, text) => void (checkpoints.has(seq) || checkpoints.set(seq, text)),
    delete: async (what, seqs) => void seqs.forEach((seq) => (what === 'entry' ? entries : checkpoints).delete(seq)),
  };
  return { backend, entries };
}

const journal = (backend: JournalBackend) =>
  new Journal(backend, { checkpointEvery: 1000, keepCheckpoints: 3, checkBlob: () => true, log: pino({ level: 'silent' }), recovery: '' });

const record = (name: string, id: number): StoredRecord =>
  ({ id, name, size: 1, sha256: 'a'.repeat(64), createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', downloadCount: 0, tag: null, kind: 'template', catalog: null, blob: 'b'.repeat(64) }) as StoredRecord;

describe('the journal', () => {
  it('takes an entry it wrote, whose answer was lost, as its own commit: not as another writer\'s, and not as a conflict', async () => {
    const { backend, entries } = memoryStore({ loseAnswers: 1 });
    const a = journal(backend);
    await a.open();
    // As a publish with ifAbsent decides: a name taken is a conflict.
    const put = (state: { lastId: number; records: Map<string, StoredRecord> }) => {
      if (state.records.has('x.zip')) throw new Error('x.zip exists');
      return { change: { put: [record('x.zip', state.lastId + 1)], lastId: state.lastId + 1 }, result: 'stored' };
    };
    await expect(a.commit(put, { current: true })).resolves.toBe('stored');
    expect(entries.size).toBe(1);
    expect(a.state.records.get('x.zip')?.id).toBe(1);
    // Nothing another writer did: nothing to hand on, and a current write goes through.
    expect(a.takeForeign()).toBeNull();
    expect(() => a.assertCurrent(true)).not.toThrow();
    // Another writer's entry of the same change is another's.
    const b = journal(backend);
    await b.open();
    expect(b.state.records.get('x.zip')?.id).toBe(1);
  });
});
