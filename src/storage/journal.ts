import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { mapLimit } from './concurrency.js';
import { highestId, validateRecords } from './records.js';
import { StorageError, type DownloadCount, type ForeignChanges, type StoredRecord, type WriteOptions } from './storage.js';

/**
 * The index as a journal, one concept for both backends (filesystem.ts and s3.ts give it their primitives):
 *
 *     checkpoint <c>     every record as of change c: what start-up reads first (the newest good one)
 *     entry <c+1> …      one change each (publish, batch, delete, counts, approval, snapshot, retired blobs),
 *                        a few hundred bytes whatever the package count; the in-memory index is the fold
 *
 * Order of writes, and why:
 * - A change is decided against the state as of the newest entry (a name taken, the next id), then written as the
 *   next entry, create-only: that write is the commit point. On s3 it is a PutObject with `If-None-Match: *`, which
 *   the store honours, so two replicas never both commit the same sequence number: the loser reads the entry that
 *   won, applies it, decides its change again against that state, and writes the next number. On a filesystem it is
 *   a fsynced temp file hard-linked to its name (create-only) and the directory synced. Only after the write is the
 *   change applied in memory: a write that failed changed nothing, so a retry applies once.
 * - Every `checkpointEvery` entries, the state as of that entry is written as a checkpoint, create-only, by whoever
 *   wrote the entry. A checkpoint only repeats what the entries say: a crash before, during or after it loses
 *   nothing (a partial checkpoint is never visible: fs writes a temp file and links it; s3 writes one object), and
 *   start-up replays the entries after the newest checkpoint instead.
 * - Then old checkpoints go beyond the newest `keepCheckpoints`, and entries no kept checkpoint needs (those at or
 *   before the oldest kept one): a damaged newest checkpoint can always be skipped for an older one, with the
 *   entries that lead from it to now.
 *
 * Start-up reads the newest checkpoint that is whole (a damaged one is named at ERROR and never overwritten or
 * deleted; the next checkpoint gets a higher number), then every entry after it, in order. It goes back to an older
 * checkpoint only when the journal from there leads at least as far as the damaged one did. An entry that is missing
 * or damaged, or a damaged checkpoint that cannot be skipped that way, stops start-up with one message naming the
 * file: nothing is guessed. A replica that fell further behind than the kept entries reach reloads from the newest
 * checkpoint (refresh notices the entry it wants is gone and a newer checkpoint exists; looked for every 30 s).
 *
 * Not supported: a version without the journal writing to the store once this one has (it would not see the
 * journal); a store it wrote is read once as the first checkpoint (fs: its newest index generation; s3: the
 * backend's `legacy`, index.json). Going back to such a version loses every change made since.
 */

/** A blob no record names any more, and since when (ms since the epoch): s3 deletes it after a grace period. */
export interface Retired {
  blob: string;
  at: number;
}

export interface JournalState {
  /** The sequence number of the last change folded in; 0 before any. */
  seq: number;
  records: Map<string, StoredRecord>;
  /** The highest id ever handed out. */
  lastId: number;
  /** Records that failed validation when loaded, kept verbatim: never served, never lost. */
  invalid: unknown[];
  /** Ids of the last count batches applied (see Storage.addDownloads). */
  countBatches: string[];
  retired: Retired[];
}

/** One change. Every field but `version`, `seq` and `lastId` is optional; they apply in the order listed. */
export interface Entry {
  version: 1;
  seq: number;
  /** The highest id handed out, this change included. */
  lastId: number;
  /**
   * Random: tells the writer its own entry from another's making the same change. A write whose answer was lost is
   * retried (the s3 client does) and finds the number taken, by itself.
   */
  nonce?: string;
  /** Names whose records go. */
  remove?: string[];
  /** Records stored whole (new, replaced, or with a new approval). */
  put?: StoredRecord[];
  /** Download counts added, by name (names that are gone are skipped). */
  counts?: Record<string, number>;
  /** The id of the count batch, remembered so that a retried flush is not added twice. */
  batch?: string;
  retire?: Retired[];
  /** Retired blobs deleted from the store. */
  swept?: string[];
}

export type Change = Omit<Entry, 'version' | 'seq' | 'lastId'> & { lastId?: number };

export interface Checkpoint {
  /** 2: the filesystem's index generations before the journal, which are checkpoints already. */
  version: 2 | 3;
  seq: number;
  lastId: number;
  records: StoredRecord[];
  invalidRecords?: unknown[];
  countBatches?: string[];
  retired?: Retired[];
}

/** What a backend stores, by sequence number. Texts are JSON; writes are create-only. */
export interface JournalBackend {
  /** How a file or object is named in messages (a path, an s3:// URL). */
  describe(what: 'checkpoint' | 'entry', seq: number): string;
  listCheckpoints(): Promise<number[]>;
  /** Entry numbers after `after`, ascending (those that are there; a gap is what it is). */
  listEntries(after: number): Promise<number[]>;
  /** Null when absent. */
  readCheckpoint(seq: number): Promise<string | null>;
  /** Null when absent. */
  readEntry(seq: number): Promise<string | null>;
  /** Whether the entry is there, without reading it. */
  hasEntry(seq: number): Promise<boolean>;
  /** Resolves false, writing nothing, when the number is taken: another writer committed it first. */
  writeEntry(seq: number, text: string): Promise<boolean>;
  /** Create-only; one that exists already (written by another replica from the same entries) is left as it is. */
  writeCheckpoint(seq: number, text: string): Promise<void>;
  /** Deletes these entries and checkpoints (absent ones are fine): s3 does it in one request per thousand. */
  delete(what: 'checkpoint' | 'entry', seqs: readonly number[]): Promise<void>;
}

export interface JournalOptions {
  /** A checkpoint after this many entries. */
  checkpointEvery: number;
  /** Checkpoints kept (with the entries after the oldest of them). */
  keepCheckpoints: number;
  checkBlob: (blob: string) => boolean;
  log: Logger;
  /** How to recover, for the message that stops start-up. */
  recovery: string;
  /** Entries read at once at start-up (s3: requests in flight). */
  readConcurrency?: number;
  /** A state to start from when there is no checkpoint and no entry (a store written before the journal). */
  legacy?: () => Promise<{ state: JournalState; file: string } | null>;
  /** A test seam: awaited after an entry is written and before the checkpoint that follows it. */
  beforeCheckpoint?: () => Promise<void>;
}

const KEEP_BATCHES = 64;
/** How long a commit goes on losing the race for the next entry before it gives up (503). */
const BUSY_MS = 10_000;
const PROBE_EVERY_MS = 30_000;

export function emptyState(): JournalState {
  return { seq: 0, records: new Map(), lastId: 0, invalid: [], countBatches: [], retired: [] };
}

/** Folds one entry into `state`, in place. */
export function applyEntry(state: JournalState, entry: Entry): void {
  for (const name of entry.remove ?? []) state.records.delete(name);
  for (const record of entry.put ?? []) state.records.set(record.name, record);
  if (entry.counts) {
    for (const [name, delta] of Object.entries(entry.counts)) {
      const current = state.records.get(name);
      if (current) state.records.set(name, { ...current, downloadCount: current.downloadCount + delta });
    }
  }
  if (entry.batch !== undefined) state.countBatches = [...state.countBatches, entry.batch].slice(-KEEP_BATCHES);
  if (entry.retire?.length) state.retired = [...state.retired, ...entry.retire];
  if (entry.swept?.length) {
    const swept = new Set(entry.swept);
    state.retired = state.retired.filter((r) => !swept.has(r.blob));
  }
  state.lastId = Math.max(state.lastId, entry.lastId);
  state.seq = entry.seq;
}

export function checkpointText(state: JournalState): string {
  return JSON.stringify(checkpointOf(state));
}

function checkpointOf(state: JournalState): Checkpoint {
  return {
    version: 3,
    seq: state.seq,
    lastId: state.lastId,
    // lastId before records: a checkpoint cut short still says how far ids went (recover-index reads it).
    records: [...state.records.values()],
    ...(state.invalid.length > 0 ? { invalidRecords: [...state.invalid] } : {}),
    ...(state.countBatches.length > 0 ? { countBatches: [...state.countBatches] } : {}),
    ...(state.retired.length > 0 ? { retired: [...state.retired] } : {}),
  };
}

/** Records serialised between two turns of the event loop: ~5 ms each on this machine. */
const CHECKPOINT_SLICE = 500;

/**
 * The same text as checkpointText, of the checkpoint taken (copied) now, serialised a slice of records at a time with
 * the event loop let go between slices: one JSON.stringify of 100,000 records (40 MB) held every request for
 * 150–500 ms. Records are never changed in place (a change puts a new object), so the copy's records stay as they
 * were while later changes go on.
 */
export function checkpointTextLater(state: JournalState): () => Promise<string> {
  const checkpoint = checkpointOf(state);
  return async () => {
    const { records } = checkpoint;
    const parts: string[] = [];
    for (let i = 0; i < records.length; i += CHECKPOINT_SLICE) {
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      parts.push(JSON.stringify(records.slice(i, i + CHECKPOINT_SLICE)).slice(1, -1));
    }
    const [head, tail] = splitOnce(JSON.stringify({ ...checkpoint, records: [] }), '"records":[]');
    return `${head}"records":[${parts.join(',')}]${tail}`;
  };
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return [text.slice(0, at), text.slice(at + separator.length)];
}

/** Why a checkpoint cannot be used, or the checkpoint; records are checked one by one later. */
export function checkpointProblem(text: string, seq: number): { problem: string } | { checkpoint: Checkpoint } {
  let value: Checkpoint;
  try {
    value = JSON.parse(text) as Checkpoint;
  } catch (err) {
    return { problem: `not valid JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'not a JSON object' };
  if (value.version !== 2 && value.version !== 3) return { problem: `unknown version ${JSON.stringify(value.version)}` };
  if (value.seq !== seq) return { problem: `its seq ${JSON.stringify(value.seq)} is not its name's ${seq}` };
  if (!Number.isSafeInteger(value.lastId) || value.lastId < 0) return { problem: 'lastId is not a non-negative integer' };
  if (!Array.isArray(value.records)) return { problem: 'records is not a list' };
  if (value.invalidRecords !== undefined && !Array.isArray(value.invalidRecords)) return { problem: 'invalidRecords is not a list' };
  if (value.countBatches !== undefined && !(Array.isArray(value.countBatches) && value.countBatches.every((b) => typeof b === 'string'))) {
    return { problem: 'countBatches is not a list of text' };
  }
  if (value.retired !== undefined && !retiredList(value.retired)) return { problem: 'retired is not a list of blobs and times' };
  return { checkpoint: value };
}

/** Why an entry cannot be applied, or the entry. */
export function entryProblem(text: string, seq: number): { problem: string } | { entry: Entry } {
  let value: Entry;
  try {
    value = JSON.parse(text) as Entry;
  } catch (err) {
    return { problem: `not valid JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'not a JSON object' };
  if (value.version !== 1) return { problem: `unknown version ${JSON.stringify(value.version)}` };
  if (value.seq !== seq) return { problem: `its seq ${JSON.stringify(value.seq)} is not its name's ${seq}` };
  if (!Number.isSafeInteger(value.lastId) || value.lastId < 0) return { problem: 'lastId is not a non-negative integer' };
  if (value.remove !== undefined && !(Array.isArray(value.remove) && value.remove.every((n) => typeof n === 'string'))) return { problem: 'remove is not a list of names' };
  if (value.put !== undefined && !(Array.isArray(value.put) && value.put.every((r) => typeof r === 'object' && r !== null && typeof (r as { name?: unknown }).name === 'string'))) {
    return { problem: 'put is not a list of records' };
  }
  if (value.counts !== undefined && !(typeof value.counts === 'object' && value.counts !== null && Object.values(value.counts).every((n) => Number.isSafeInteger(n)))) {
    return { problem: 'counts is not a map of integers' };
  }
  if (value.batch !== undefined && typeof value.batch !== 'string') return { problem: 'batch is not text' };
  if (value.retire !== undefined && !retiredList(value.retire)) return { problem: 'retire is not a list of blobs and times' };
  if (value.swept !== undefined && !(Array.isArray(value.swept) && value.swept.every((b) => typeof b === 'string'))) return { problem: 'swept is not a list of blobs' };
  return { entry: value };
}

function retiredList(value: unknown): boolean {
  return Array.isArray(value) && value.every((r) => typeof (r as Retired | null)?.blob === 'string' && typeof (r as Retired).at === 'number');
}

/** A checkpoint as state: each record checked, a bad one logged by name and kept aside. */
export function stateOf(checkpoint: Pick<Checkpoint, 'seq' | 'lastId' | 'records' | 'invalidRecords' | 'countBatches' | 'retired'>, checkBlob: (blob: string) => boolean, log: Logger, file: string): JournalState {
  const { records, invalid } = validateRecords(checkpoint.records, checkBlob, log, file);
  const kept = [...(checkpoint.invalidRecords ?? []), ...invalid];
  return {
    seq: checkpoint.seq,
    records: new Map(records.map((r) => [r.name, r])),
    lastId: Math.max(checkpoint.lastId, highestId(checkpoint.records), highestId(kept)),
    invalid: kept,
    countBatches: checkpoint.countBatches ?? [],
    retired: checkpoint.retired ?? [],
  };
}

/**
 * A published record as its commit stores it. Its identity is decided here, against the store's newest state, not by
 * the caller, whose view may be older (another process may have removed the record it saw): a record that takes the
 * place of `previous` (its name's record, or the one it `replaces`) keeps that one's id, first upload time and
 * download count; one that replaces nothing is new, with the next id, and its upload time as its first.
 */
export function placed<R extends StoredRecord>(input: R, previous: StoredRecord | undefined, nextId: () => number, blob: string): R {
  return previous
    ? { ...input, id: previous.id, createdAt: previous.createdAt, downloadCount: previous.downloadCount, blob }
    : { ...input, id: nextId(), createdAt: input.updatedAt, downloadCount: 0, blob };
}

/**
 * The entry that adds `counts`, each to the record with its id under the name that record has now (records that are
 * gone are left out), and remembers `batch`; null when no record is left to count.
 */
export function countsChange(state: JournalState, counts: readonly DownloadCount[], batch: string | undefined): Change | null {
  const present: Record<string, number> = {};
  let names: Map<number, string> | null = null;
  for (const { id, name, count } of counts) {
    let current: string | undefined = state.records.get(name)?.id === id ? name : undefined;
    // Renamed since (1.0 stored again as 1.0.0 keeps its id), or gone: looked up by id, which is rare enough to scan for.
    if (current === undefined) current = (names ??= new Map([...state.records.values()].map((r) => [r.id, r.name]))).get(id);
    if (current !== undefined) present[current] = (present[current] ?? 0) + count;
  }
  return Object.keys(present).length === 0 ? null : { counts: present, ...(batch !== undefined ? { batch } : {}) };
}

/**
 * The journal over one backend. `state` is the fold of every entry read or written so far; it changes only in
 * `open`, `catchUp` and `commit`, one at a time (callers serialise them).
 */
export class Journal {
  state: JournalState = emptyState();
  /**
   * The names whose records entries from the store (other writers' changes, not this process's commits) put, removed
   * or counted since takeForeign() last ran; `all` after a reload from a checkpoint, which may change any.
   */
  private foreign: Set<string> | 'all' = new Set();
  /**
   * The records those entries put, and those they removed as they were (counts alone change no rule a caller
   * decides on); 'all' after a reload.
   */
  private foreignWrites: StoredRecord[] | 'all' = [];
  /** When catchUp last listed the checkpoints (ms since the epoch). */
  private lastProbe = 0;
  /** Checkpoints found damaged at open: never deleted by pruning (nor overwritten: numbers only grow). */
  private readonly damaged = new Set<number>();
  private compacting: Promise<void> = Promise.resolve();

  constructor(
    private readonly backend: JournalBackend,
    private readonly options: JournalOptions,
  ) {}

  /**
   * Reads the newest good checkpoint and the entries after it. A store with neither is a new one, or one written
   * before the journal (`legacy`): its first checkpoint is written.
   */
  async open(): Promise<void> {
    const { backend, options } = this;
    let checkpoints = (await backend.listCheckpoints()).sort((a, b) => a - b);
    if (checkpoints.length === 0) {
      // A store that never had a checkpoint: a new one, or one written before the journal. One with entries but no
      // checkpoint lost its index (entries alone may not reach back to the first change): nothing is guessed.
      if ((await backend.listEntries(0)).length > 0 && (checkpoints = await backend.listCheckpoints()).length === 0) {
        throw new StorageError('damaged', `the package index has journal entries (${backend.describe('entry', (await backend.listEntries(0))[0] ?? 1)}) but no checkpoint to start from; nothing was changed. ${options.recovery}`);
      }
    }
    if (checkpoints.length === 0) {
      const legacy = await options.legacy?.();
      this.state = legacy?.state ?? emptyState();
      // The first checkpoint, create-only: every store has one from now on (another replica may have written it).
      await backend.writeCheckpoint(this.state.seq, checkpointText(this.state));
      if (legacy) options.log.info({ from: legacy.file, to: backend.describe('checkpoint', this.state.seq) }, 'the package index was taken into the journal as its first checkpoint');
      await this.replay({ atOpen: true });
      return;
    }
    let state: JournalState | null = null;
    let damaged: { seq: number; file: string; problem: string } | null = null;
    for (let i = checkpoints.length - 1; i >= 0; i -= 1) {
      const seq = checkpoints[i]!;
      const file = backend.describe('checkpoint', seq);
      const text = await backend.readCheckpoint(seq);
      const parsed = text === null ? { problem: 'it vanished while being read' } : checkpointProblem(text, seq);
      if ('checkpoint' in parsed) {
        state = stateOf(parsed.checkpoint, options.checkBlob, options.log, file);
        break;
      }
      damaged ??= { seq, file, problem: parsed.problem };
      this.damaged.add(seq);
      // Never overwritten or deleted: the next checkpoint gets a higher number; the operator sees it named.
      options.log.error({ file, problem: parsed.problem }, `the package index checkpoint ${file} is damaged (${parsed.problem}); trying the one before it with the journal after it (the damaged file is left as it is)`);
    }
    const refuse = (why: string) =>
      new StorageError('damaged', `the package index checkpoint ${damaged!.file} is damaged (${damaged!.problem}) and ${why}; nothing was changed. ${options.recovery}`);
    if (!state) throw refuse('no older checkpoint is left to start from');
    this.state = state;
    try {
      await this.replay({ atOpen: true });
    } catch (err) {
      if (damaged && err instanceof StorageError) throw refuse(`the journal from the one before it cannot be read (${err.message})`);
      throw err;
    }
    // Recovered only when the journal leads at least as far as the damaged checkpoint went: nothing of it is lost.
    if (damaged && this.state.seq < damaged.seq) throw refuse(`the journal does not lead past it from the one before (it ends at ${this.state.seq})`);
  }

  /**
   * Reads and applies the entries written after the state held here (by another replica). Resolves true when
   * something changed. One small request when nothing did (the next entry, absent).
   */
  async catchUp(): Promise<boolean> {
    return this.replay({ atOpen: false });
  }

  private async replay({ atOpen }: { atOpen: boolean }): Promise<boolean> {
    const { backend, options } = this;
    let changed = false;
    if (!atOpen) {
      // The common case, cheaply: one read of the next number.
      const text = await backend.readEntry(this.state.seq + 1);
      if (text === null) {
        // Nothing new, unless this process fell so far behind that the entry it wants was compacted away (entries
        // go only once three checkpoints are past them): looked at every half minute, not at every poll.
        if (Date.now() - this.lastProbe < PROBE_EVERY_MS) return false;
        this.lastProbe = Date.now();
        const newer = await this.newerCheckpoint();
        if (newer === null) return false;
        await this.reloadFrom(newer);
        changed = true;
      } else {
        this.applyText(text, this.state.seq + 1);
        changed = true;
      }
    }
    const seqs = (await backend.listEntries(this.state.seq)).filter((s) => s > this.state.seq).sort((a, b) => a - b);
    if (seqs.length === 0) return changed;
    // Read in parallel (s3: one request each), applied in order; a gap before the last one is damage.
    const texts = await mapLimit(seqs, options.readConcurrency ?? 1, (seq) => backend.readEntry(seq));
    for (let i = 0; i < seqs.length; i += 1) {
      const seq = seqs[i]!;
      if (seq !== this.state.seq + 1) {
        throw new StorageError('damaged', `the package index journal is missing ${backend.describe('entry', this.state.seq + 1)} (the next is ${backend.describe('entry', seq)}); nothing was changed. ${options.recovery}`);
      }
      const text = texts[i];
      if (text === null || text === undefined) {
        // Compacted away meanwhile by another replica: start again from the checkpoint that holds it.
        const newer = await this.newerCheckpoint();
        if (newer === null) throw new StorageError('damaged', `the package index journal entry ${backend.describe('entry', seq)} vanished while being read; nothing was changed. ${options.recovery}`);
        await this.reloadFrom(newer);
        await this.replay({ atOpen: true });
        return true;
      }
      this.applyText(text, seq);
      changed = true;
    }
    return changed;
  }

  private applyText(text: string, seq: number): void {
    const parsed = entryProblem(text, seq);
    if ('problem' in parsed) {
      throw new StorageError('damaged', `the package index journal entry ${this.backend.describe('entry', seq)} is damaged (${parsed.problem}); nothing was changed. ${this.options.recovery}`);
    }
    // Records arriving in entries are checked as a checkpoint's are: a bad one is kept aside, never served.
    const entry = parsed.entry;
    if (entry.put) {
      const { records, invalid } = validateRecords(entry.put, this.options.checkBlob, this.options.log, this.backend.describe('entry', seq));
      if (invalid.length > 0) {
        this.state.invalid = [...this.state.invalid, ...invalid];
        entry.put = records;
        const names = new Set(invalid.map((r) => (r as { name?: unknown } | null)?.name));
        entry.remove = [...(entry.remove ?? []), ...[...names].filter((n): n is string => typeof n === 'string')];
      }
    }
    if (this.foreignWrites !== 'all') {
      for (const name of entry.remove ?? []) {
        const removed = this.state.records.get(name);
        if (removed) this.foreignWrites.push(removed);
      }
      this.foreignWrites.push(...(entry.put ?? []));
    }
    applyEntry(this.state, entry);
    if (this.foreign !== 'all') {
      for (const name of [...(entry.remove ?? []), ...(entry.put ?? []).map((r) => r.name), ...Object.keys(entry.counts ?? {})]) this.foreign.add(name);
    }
  }

  /**
   * What other writers changed since the last call (see `foreign`), as refresh() hands it on: copies of the records
   * they put (the service may change what it is handed) and the names they removed; every record after a reload.
   * Null when they changed nothing.
   */
  takeForeign(): ForeignChanges | null {
    const taken = this.foreign;
    this.foreign = new Set();
    this.foreignWrites = [];
    if (taken === 'all') return { whole: true, records: [...this.state.records.values()].map((r) => ({ ...r })) };
    if (taken.size === 0) return null;
    // Only what changed: a copy of every record per change another writer made cost O(packages) each time.
    const records: StoredRecord[] = [];
    const removed: string[] = [];
    for (const name of taken) {
      const record = this.state.records.get(name);
      if (record) records.push({ ...record });
      else removed.push(name);
    }
    return { whole: false, records, removed };
  }

  /** The newest checkpoint beyond the state held here, or null. */
  private async newerCheckpoint(): Promise<number | null> {
    const newest = (await this.backend.listCheckpoints()).sort((a, b) => a - b).at(-1);
    return newest !== undefined && newest > this.state.seq ? newest : null;
  }

  private async reloadFrom(seq: number): Promise<void> {
    const file = this.backend.describe('checkpoint', seq);
    const text = await this.backend.readCheckpoint(seq);
    const parsed = text === null ? { problem: 'it vanished while being read' } : checkpointProblem(text, seq);
    if ('problem' in parsed) throw new StorageError('damaged', `the package index checkpoint ${file} is damaged (${parsed.problem}); nothing was changed. ${this.options.recovery}`);
    this.state = stateOf(parsed.checkpoint, this.options.checkBlob, this.options.log, file);
    this.foreign = 'all';
    this.foreignWrites = 'all';
  }

  /**
   * Decides a change against the newest state and commits it as the next entry. `decide` may throw to give up (a
   * conflict it found); it must not change the state it is given. When another writer took the number first, the
   * entries it wrote are applied and `decide` runs again. Resolves with what `decide` returned the last time, or
   * with undefined and nothing written when it returned null. With `current`, rejects with StorageError('stale')
   * once other writers' records came in that takeForeign() has not handed on (storage.ts, WriteOptions).
   */
  async commit<T>(decide: (state: JournalState) => { change: Change; result: T } | null, { current }: Pick<WriteOptions, 'current'> = {}): Promise<T> {
    // Many writers on few cores can lose the race many times running (one with commits queued wins again and
    // again): a lost race is retried for a while, and only 20 losses over BUSY_MS is "busy".
    const since = Date.now();
    for (let attempt = 1; ; attempt += 1) {
      this.assertCurrent(current);
      const decided = decide(this.state);
      if (decided === null) return undefined as T;
      const seq = this.state.seq + 1;
      const { lastId, ...change } = decided.change;
      // lastId before the records: an entry cut short still says how far ids went (recover-index reads it).
      const entry: Entry = { version: 1, seq, lastId: Math.max(this.state.lastId, lastId ?? 0), nonce: randomBytes(8).toString('hex'), ...change };
      const text = JSON.stringify(entry);
      if (!(await this.current())) {
        await this.overtaken();
        continue;
      }
      if ((await this.backend.writeEntry(seq, text)) || (await this.backend.readEntry(seq)) === text) {
        applyEntry(this.state, entry);
        if (seq % this.options.checkpointEvery === 0) this.compact();
        return decided.result;
      }
      if (attempt >= 20 && Date.now() - since >= BUSY_MS) throw new StorageError('unavailable', `the package index journal is busy: ${attempt} attempts over ${Math.round((Date.now() - since) / 1000)} s lost the race for the next entry`);
      // The winner's entry may not be readable yet (its write still in flight): wait a little longer each time. A
      // loser that read new entries waits a random moment too, so that losers do not meet again at the same number.
      const waitMs = (await this.catchUp()) ? Math.random() * Math.min(attempt, 20) : 5 * Math.min(attempt, 20);
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }

  /** Throws StorageError('stale') when `current` is asked for and other writers' records that matter to it are not handed on yet. */
  assertCurrent(current: WriteOptions['current']): void {
    if (!current) return;
    const writes = this.foreignWrites;
    if (writes === 'all' ? true : current === true ? writes.length > 0 : writes.some(current)) {
      throw new StorageError('stale', 'another process changed the package index after this one last took its changes in');
    }
  }

  /**
   * Whether the state held here is not older than the journal reaches back. A writer that missed more changes than
   * the journal keeps would otherwise find the next number free (its entry pruned), write a change nobody reads
   * under it, and reuse ids. Pruning drops old checkpoints first, then entries in ascending order: when the next
   * entry is gone, so are this one and the checkpoint of this number. So: its entry is there, or (a state read from
   * a checkpoint, such as a new store's first, which has no entry) that checkpoint is. A writer merely behind passes,
   * and its write then loses the race as usual. One existence check per commit (a HEAD on s3: ~5-15 ms on RGW here);
   * a writer stalled between this check and its write for longer than the journal keeps (two checkpoints' worth of
   * other writers' changes) is not caught.
   */
  private async current(): Promise<boolean> {
    const { seq } = this.state;
    if (await this.backend.hasEntry(seq)) return true;
    return (await this.backend.listCheckpoints()).includes(seq);
  }

  /** The state held here is older than the journal reaches back: start again from the newest checkpoint. */
  private async overtaken(): Promise<void> {
    const newer = await this.newerCheckpoint();
    if (newer === null) throw new StorageError('damaged', `the package index journal entry ${this.backend.describe('entry', this.state.seq)} vanished, and no checkpoint follows it; nothing was changed. ${this.options.recovery}`);
    this.options.log.warn({ from: this.state.seq, to: newer }, 'this process had fallen behind what the package index journal keeps; it read the newest checkpoint again before writing');
    await this.reloadFrom(newer);
    await this.replay({ atOpen: true });
  }

  /** Resolves when the checkpoint being written (if any) is done; for tests and an orderly shutdown. */
  settled(): Promise<void> {
    return this.compacting;
  }

  /**
   * Writes the state as a checkpoint, in the background: taken now (the state as of this entry exactly), then
   * serialised in slices and written while later changes go on. A failure is logged; the next checkpoint tries
   * again, and the entries are the truth meanwhile.
   */
  private compact(): void {
    const seq = this.state.seq;
    const text = checkpointTextLater(this.state);
    this.compacting = this.compacting.then(async () => {
      try {
        await this.options.beforeCheckpoint?.();
        await this.backend.writeCheckpoint(seq, await text());
        await this.prune();
      } catch (err) {
        this.options.log.warn({ err, checkpoint: this.backend.describe('checkpoint', seq) }, 'could not write an index checkpoint; the journal still holds every change');
      }
    });
  }

  /**
   * Drops checkpoints beyond the newest `keepCheckpoints`, and the entries none of those needs. The checkpoints are
   * listed, not remembered: other writers wrote some of them, and one left behind would outlive its entries.
   */
  private async prune(): Promise<void> {
    const good = (await this.backend.listCheckpoints()).sort((a, b) => a - b).filter((seq) => !this.damaged.has(seq));
    const keep = good.slice(-this.options.keepCheckpoints);
    const drop = good.slice(0, -this.options.keepCheckpoints);
    const oldestKept = keep[0];
    if (oldestKept === undefined) return;
    // Checkpoints before entries (see current()).
    await this.backend.delete('checkpoint', drop);
    await this.backend.delete('entry', (await this.backend.listEntries(0)).filter((seq) => seq <= oldestKept));
  }
}
