import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** What a storage directory shows: the package files, and anything left in the staging area. */
export async function storageContents(root: string): Promise<{ packages: string[]; staging: string[] }> {
  const packages = (await readdir(root)).filter((n) => !n.startsWith('.')).sort();
  const staging = await readdir(join(root, '.tmp')).catch(() => []);
  return { packages, staging };
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
