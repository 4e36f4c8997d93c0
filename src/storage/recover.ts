import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { generationName, isFsBlob, STATE_DIR, syncDir, writeGenerationFile } from './filesystem.js';
import { applyEntry, checkpointProblem, checkpointText, entryProblem, type Checkpoint, type Entry } from './journal.js';
import { highestId, recordProblem } from './records.js';
import type { StoredRecord } from './storage.js';

const GENERATION = /^(\d{12})\.json$/;

export interface RecoveryReport {
  /** There was no checkpoint at all: the ids of the lost records are unknown, and may be handed out again. */
  missing: boolean;
  /** The damaged checkpoints and journal entries (and those after a gap), moved to index/damaged/ (never deleted). */
  damaged: string[];
  /** The last good checkpoint the records came from, or null when none was left. */
  base: string | null;
  /** Records taken from the damaged files (complete ones only, with their bytes present). */
  salvaged: string[];
  /** The checkpoint written. */
  written: string;
  records: number;
  lastId: number;
  /** Blob files no record names (kept, listed for the operator): `sha256` of their bytes, `file` their path. */
  orphans: { sha256: string; file: string; size: number }[];
}

/**
 * Recovers a filesystem store whose newest index checkpoint(s) (index/<seq>.json) or journal entries
 * (journal/<seq>.json) are damaged or missing, never losing what can be read:
 * - starts from the newest good checkpoint, and applies the journal entries after it in order, up to the first that
 *   is missing or damaged; the records of every later entry that can be read are salvaged as below;
 * - adds every complete, valid record that can still be read from the damaged files (a truncated file keeps the
 *   records before the cut), when its bytes are present; for a name both have, the later upload wins and the higher
 *   download count is kept;
 * - sets lastId past every id seen anywhere, plus one per file that could not be read whole (a publish hands
 *   out at most one id per change), so no id is ever handed out twice. A publishBatch change may hand out
 *   many; its `lastId` is written before its records, so a damaged one still says how far it went unless it was cut
 *   within its first few dozen bytes;
 * - moves the damaged files (and the entries not applied in order) to index/damaged/ and writes the result as a new
 *   checkpoint (create-only), numbered past every checkpoint and entry.
 * A removal recorded only in a damaged file cannot be seen: such a package comes back (rather than any being
 * lost); remove it again.
 */
export async function recoverIndex(root: string): Promise<RecoveryReport | null> {
  const stateDir = join(root, STATE_DIR);
  const indexDir = join(stateDir, 'index');
  const seqs = (await readdir(indexDir))
    .map((n) => GENERATION.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => b - a);
  const journalDir = join(stateDir, 'journal');
  const entrySeqs = (await readdir(journalDir).catch(() => [] as string[]))
    .map((n) => GENERATION.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  const damaged: { seq: number; text: string }[] = [];
  let base: Checkpoint | null = null;
  for (const seq of seqs) {
    const text = await readFile(join(indexDir, generationName(seq)), 'utf8');
    const parsed = checkpointProblem(text, seq);
    if ('checkpoint' in parsed) {
      base = parsed.checkpoint;
      break;
    }
    damaged.push({ seq, text });
  }
  // No generation at all, but blobs: the index was removed. Start over empty (the blobs are kept and listed).
  const missing = seqs.length === 0 && (await readdir(join(stateDir, 'blobs')).catch(() => [] as string[])).length > 0;
  // The journal after the base, in order, up to the first entry that is missing or damaged.
  const baseSeq = base?.seq ?? 0;
  const applied: Entry[] = [];
  const unapplied: { seq: number; text: string }[] = [];
  for (const seq of entrySeqs.filter((s) => s > baseSeq)) {
    const text = await readFile(join(journalDir, generationName(seq)), 'utf8');
    const parsed = entryProblem(text, seq);
    if (unapplied.length === 0 && 'entry' in parsed && seq === baseSeq + applied.length + 1) applied.push(parsed.entry);
    else unapplied.push({ seq, text });
  }
  // Entries that lead past every damaged checkpoint make it whole again: open() recovers that way by itself.
  const newestSeq = Math.max(0, ...seqs, ...entrySeqs);
  if (unapplied.length === 0 && !missing && (damaged.length === 0 || baseSeq + applied.length >= Math.max(...damaged.map((d) => d.seq)))) return null;

  const blobExists = (blob: string) => isFsBlob(blob) && existsSync(join(stateDir, 'blobs', blob.slice(0, 2), blob));
  const records = new Map<string, StoredRecord>((base?.records ?? []).map((r) => [r.name, r]));
  const invalid: unknown[] = [...(base?.invalidRecords ?? [])];
  for (const record of base?.records ?? []) if (recordProblem(record, isFsBlob)) invalid.push(record);
  for (const r of invalid) records.delete((r as { name?: string }).name ?? '');
  let lastId = Math.max(base?.lastId ?? 0, highestId(base?.records ?? []), highestId(invalid));
  {
    const state = { seq: baseSeq, records, lastId, invalid, countBatches: base?.countBatches ?? [], retired: base?.retired ?? [] };
    for (const entry of applied) applyEntry(state, entry);
    lastId = state.lastId;
    if (base) base.countBatches = state.countBatches;
  }
  const salvaged: string[] = [];
  // Oldest damaged first, so that the newest salvaged record of a name wins.
  const sources = [...damaged.map((d) => ({ ...d, list: 'records' })), ...unapplied.map((u) => ({ ...u, list: 'put' }))].sort((a, b) => a.seq - b.seq);
  for (const { text, list } of sources) {
    const found = salvageRecords(text, list);
    lastId = Math.max(lastId, highestId(found), ...[...text.matchAll(/"(?:lastId|id)":(\d+)/g)].map((m) => Number(m[1])));
    for (const candidate of found) {
      if (recordProblem(candidate, blobExists)) continue;
      const record = candidate as StoredRecord;
      const current = records.get(record.name);
      if (current && Date.parse(current.updatedAt) > Date.parse(record.updatedAt)) continue;
      records.set(record.name, { ...record, downloadCount: Math.max(record.downloadCount, current?.downloadCount ?? 0) });
      salvaged.push(record.name);
    }
  }
  lastId += damaged.length + unapplied.length;
  // Two names for one id cannot be served: the later keeps it, the other is kept aside.
  const byId = new Map<number, StoredRecord>();
  for (const record of [...records.values()].sort((a, b) => Date.parse(b.updatedAt) - Date.parse(a.updatedAt))) {
    if (byId.has(record.id)) {
      records.delete(record.name);
      invalid.push(record);
    } else byId.set(record.id, record);
  }

  const damagedDir = join(indexDir, 'damaged');
  await mkdir(damagedDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  for (const { seq } of damaged) await rename(join(indexDir, generationName(seq)), join(damagedDir, `${generationName(seq)}.${stamp}`));
  for (const { seq } of unapplied) await rename(join(journalDir, generationName(seq)), join(damagedDir, `journal-${generationName(seq)}.${stamp}`));
  await syncDir(damagedDir);

  const seq = newestSeq + 1;
  const index: Checkpoint = { version: 3, seq, lastId, records: [...records.values()], ...(invalid.length > 0 ? { invalidRecords: invalid } : {}), countBatches: base?.countBatches ?? [], ...(base?.retired?.length ? { retired: base.retired } : {}) };
  const tmpDir = join(stateDir, 'tmp');
  await mkdir(tmpDir, { recursive: true });
  await writeGenerationFile(tmpDir, indexDir, checkpointText({ seq, records, lastId, invalid, countBatches: index.countBatches ?? [], retired: index.retired ?? [] }), seq);

  const named = new Set([...records.values(), ...(invalid as { blob?: string }[])].map((r) => r?.blob));
  const orphans: RecoveryReport['orphans'] = [];
  for (const fan of await readdir(join(stateDir, 'blobs')).catch(() => [] as string[])) {
    for (const blob of await readdir(join(stateDir, 'blobs', fan)).catch(() => [] as string[])) {
      const file = join(stateDir, 'blobs', fan, blob);
      // A blob's name starts with the sha256 of its bytes (filesystem.ts, blobName).
      if (!named.has(blob)) orphans.push({ sha256: blob.slice(0, 64), file, size: (await stat(file)).size });
    }
  }
  return {
    missing,
    damaged: [...damaged.map((d) => join(damagedDir, `${generationName(d.seq)}.${stamp}`)), ...unapplied.map((d) => join(damagedDir, `journal-${generationName(d.seq)}.${stamp}`))],
    base: base ? join(indexDir, generationName(base.seq)) : null,
    salvaged: [...new Set(salvaged)],
    written: join(indexDir, generationName(seq)),
    records: records.size,
    lastId,
    orphans,
  };
}

/**
 * The complete JSON objects of the `records` list of a damaged index, as far as they can be read: a truncated file
 * keeps every record before the cut. A scanner that knows strings and nesting, not a parser: it never trusts more
 * than one object at a time.
 */
export function salvageRecords(text: string, list = 'records'): unknown[] {
  const open = `"${list}":[`;
  const start = text.indexOf(open);
  if (start < 0) return [];
  const found: unknown[] = [];
  let depth = 0;
  let inString = false;
  let objectStart = -1;
  for (let i = start + open.length; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i += 1;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth === 0) objectStart = i;
      depth += 1;
    } else if (c === '}') {
      depth -= 1;
      if (depth === 0 && objectStart >= 0) {
        try {
          found.push(JSON.parse(text.slice(objectStart, i + 1)));
        } catch {
          // not a record
        }
        objectStart = -1;
      }
      if (depth < 0) break;
    } else if (c === ']' && depth === 0) break;
  }
  return found;
}
