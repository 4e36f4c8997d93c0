import { describe, expect, it } from 'vitest';
import { applyEntry, checkpointText, checkpointTextLater, emptyState, type JournalState } from '../../../src/storage/journal.js';
import type { StoredRecord } from '../../../src/storage/storage.js';

function record(i: number): StoredRecord {
  return {
    name: `spec-kit-template-agent${i % 20}-sh-v0.${i}.0.zip`,
    id: i + 1,
    size: 100 + i,
    sha256: i.toString(16).padStart(64, '0'),
    blob: i.toString(16).padStart(64, '0'),
    updatedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    downloadCount: i % 7,
  } as unknown as StoredRecord;
}

function stateOf(count: number): JournalState {
  const state = emptyState();
  state.seq = 41;
  state.lastId = count + 5;
  for (let i = 0; i < count; i++) state.records.set(record(i).name, record(i));
  state.invalid = [{ name: 'broken', why: 'no size' }];
  state.countBatches = ['batch-1', 'batch-2'];
  state.retired = [{ blob: 'f'.repeat(64), at: 1 }];
  return state;
}

describe('a checkpoint serialised in slices', () => {
  it('is byte for byte the checkpoint of the state when it was taken, whatever changes after', async () => {
    const state = stateOf(1234);
    const expected = checkpointText(state);
    const later = checkpointTextLater(state);
    // Changes committed while the slices are being written: a put, a removal, counts, a batch, a retirement.
    applyEntry(state, { version: 1, seq: 42, lastId: 2000, put: [record(5000)], remove: [record(3).name], counts: { [record(7).name]: 9 }, batch: 'batch-3', retire: [{ blob: 'e'.repeat(64), at: 2 }] });
    const text = await later();
    expect(text).toBe(expected);
    expect(JSON.parse(text)).toMatchObject({ version: 3, seq: 41, lastId: 1239, countBatches: ['batch-1', 'batch-2'] });
    expect(JSON.parse(text).records).toHaveLength(1234);
  });

  it('lets the event loop turn between slices, so requests are answered while it is built', async () => {
    const state = stateOf(3000);
    let turns = 0;
    let done = false;
    const tick = (): void => {
      if (done) return;
      turns++;
      setImmediate(tick);
    };
    setImmediate(tick);
    await checkpointTextLater(state)();
    done = true;
    expect(turns).toBeGreaterThanOrEqual(3);
  });

  it('serialises an empty index and one without the optional lists as checkpointText does', async () => {
    const empty = emptyState();
    expect(await checkpointTextLater(empty)()).toBe(checkpointText(empty));
    const plain = stateOf(3);
    plain.invalid = [];
    plain.countBatches = [];
    plain.retired = [];
    expect(await checkpointTextLater(plain)()).toBe(checkpointText(plain));
  });
});
