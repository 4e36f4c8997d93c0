import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { applyEntry, checkpointProblem, emptyState, type JournalState } from '../../src/storage/journal.js';

/** The server's own directory inside storage_path (src/storage/filesystem.ts). */
export const STATE_DIR = '.release-server';

/**
 * What a storage directory's index says, read as a restart reads it: the newest checkpoint (index/<seq>.json), then
 * every journal entry after it (journal/<seq>.json). An empty state when there is none.
 */
export async function committedIndex(root: string): Promise<JournalState> {
  const indexDir = join(root, STATE_DIR, 'index');
  const journalDir = join(root, STATE_DIR, 'journal');
  const newest = (await readdir(indexDir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort().at(-1);
  const state = emptyState();
  if (newest) {
    const parsed = checkpointProblem(await readFile(join(indexDir, newest), 'utf8'), Number(newest.slice(0, 12)));
    if ('problem' in parsed) throw new Error(`${newest}: ${parsed.problem}`);
    const { checkpoint } = parsed;
    Object.assign(state, { seq: checkpoint.seq, lastId: checkpoint.lastId, records: new Map(checkpoint.records.map((r) => [r.name, r])), countBatches: checkpoint.countBatches ?? [] });
  }
  for (const name of (await readdir(journalDir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort()) {
    const entry = JSON.parse(await readFile(join(journalDir, name), 'utf8'));
    if (entry.seq > state.seq) applyEntry(state, entry);
  }
  return state;
}

/** The newest journal entry's file (the last change committed), or null. */
export async function newestEntry(root: string): Promise<string | null> {
  const dir = join(root, STATE_DIR, 'journal');
  const newest = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort().at(-1);
  return newest ? join(dir, newest) : null;
}

/**
 * What a storage directory holds: the packages its index records, and anything left in the staging area.
 */
export async function storageContents(root: string): Promise<{ packages: string[]; staging: string[] }> {
  const packages = [...(await committedIndex(root)).records.keys()].sort();
  const staging = await readdir(join(root, STATE_DIR, 'tmp')).catch(() => []);
  return { packages, staging };
}

/** Every blob file under the state directory, by the sha256 of its bytes (a blob's name starts with it). */
export async function storedBlobs(root: string): Promise<string[]> {
  const dir = join(root, STATE_DIR, 'blobs');
  const all: string[] = [];
  for (const fan of await readdir(dir).catch(() => [] as string[])) all.push(...(await readdir(join(dir, fan))).map((name) => name.slice(0, 64)));
  return all.sort();
}

/** The file holding the bytes of the package `name`, as the committed index names it. */
export async function blobFileOf(root: string, name: string): Promise<string> {
  const record = (await committedIndex(root)).records.get(name);
  if (!record) throw new Error(`no package named ${name} in ${root}`);
  return join(root, STATE_DIR, 'blobs', record.blob.slice(0, 2), record.blob);
}

/** Polls until `check` passes or the time is up; for effects that follow a response (a closed socket's cleanup). */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
