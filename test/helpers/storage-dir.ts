import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The server's own directory inside storage_path (src/storage/filesystem.ts). */
export const STATE_DIR = '.release-server';

/**
 * What a storage directory holds: the packages its newest index generation records, the blobs (content-addressed
 * bytes), and anything left in the staging area.
 */
export async function storageContents(root: string): Promise<{ packages: string[]; staging: string[] }> {
  const indexDir = join(root, STATE_DIR, 'index');
  const newest = (await readdir(indexDir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort().at(-1);
  const packages = newest ? (JSON.parse(await readFile(join(indexDir, newest), 'utf8')) as { records: { name: string }[] }).records.map((r) => r.name).sort() : [];
  const staging = await readdir(join(root, STATE_DIR, 'tmp')).catch(() => []);
  return { packages, staging };
}

/** Every blob file under the state directory, by sha256. */
export async function storedBlobs(root: string): Promise<string[]> {
  const dir = join(root, STATE_DIR, 'blobs');
  const all: string[] = [];
  for (const fan of await readdir(dir).catch(() => [] as string[])) all.push(...(await readdir(join(dir, fan))));
  return all.sort();
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
