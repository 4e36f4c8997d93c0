import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { eventually, storageContents } from '../helpers/storage-dir.js';
import { templateZip } from '../helpers/packages.js';
import { streamUpload, upload } from '../helpers/upload.js';
import { sha256 } from '../helpers/zip.js';

const MiB = 1024 * 1024;

interface Listed {
  name: string;
  sha256: string;
  size: number;
  created_at: string;
  updated_at: string;
  download_count: number;
}

/** The packages as stored; download_url is left out, since each run listens on another port. */
async function list(server: RunningServer): Promise<Listed[]> {
  const packages = (await (await fetch(`${server.url}/packages?format=json`)).json()) as (Listed & { download_url?: string })[];
  return packages.map(({ download_url: _, ...rest }) => rest);
}

async function ids(server: RunningServer): Promise<Record<string, number>> {
  const release = (await (await fetch(`${server.url}/latest`)).json()) as { assets: { name: string; id: number }[] };
  return Object.fromEntries(release.assets.map((a) => [a.name, a.id]));
}

/** Peak and current resident memory of a process, from /proc (Linux). */
async function memory(pid: number): Promise<{ peak: number; now: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { peak: kib('VmHWM'), now: kib('VmRSS') };
}

describe('interrupted uploads', () => {
  it('a client that disconnects mid-upload leaves nothing behind', async () => {
    const server = await startServer();
    try {
      await upload(server.url, 'kept.zip', 'kept');
      const result = await streamUpload(server.url, 'half.zip', 20 * MiB, { abortAfter: 8 * MiB });
      expect(result).toBe('aborted');
      await eventually(async () => {
        expect(await storageContents(server.storagePath)).toEqual({ packages: ['kept.zip'], staging: [] });
      });
      expect((await fetch(`${server.url}/assets/half.zip`)).status).toBe(404);
      expect((await list(server)).map((p) => p.name)).toEqual(['kept.zip']);
      // and the server goes on serving
      expect((await upload(server.url, 'after.zip', 'after')).status).toBe(201);
    } finally {
      await server.stop();
    }
  });

  it('kill -9 mid-upload, then a restart on the same storage: no partial file, staging swept, the rest intact', async () => {
    const first = await startServer();
    await upload(first.url, 'before.zip', 'stored before the crash');
    await (await fetch(`${first.url}/assets/before.zip`)).arrayBuffer();
    await first.stop('SIGTERM');
    const second = await startServer({ storagePath: first.storagePath });
    const before = await list(second);
    const idsBefore = await ids(second);

    let killed = false;
    const uploading = streamUpload(second.url, 'crash.zip', 64 * MiB, {
      onProgress: (sent) => {
        if (sent >= 16 * MiB && !killed) {
          killed = true;
          second.process.kill('SIGKILL');
        }
      },
    }).catch(() => 'connection lost');
    expect(await second.exited).toBe('SIGKILL');
    await uploading;
    const leftover = await storageContents(second.storagePath);
    expect(leftover.packages).toEqual(['before.zip']);
    expect(leftover.staging.length).toBeGreaterThan(0); // the partial upload, invisible, until the restart sweeps it

    const third = await startServer({ storagePath: first.storagePath });
    try {
      expect(await storageContents(third.storagePath)).toEqual({ packages: ['before.zip'], staging: [] });
      expect(await list(third)).toEqual(before);
      expect(await ids(third)).toEqual(idsBefore);
      expect((await fetch(`${third.url}/assets/crash.zip`)).status).toBe(404);
      expect(Buffer.from(await (await fetch(`${third.url}/assets/before.zip`)).arrayBuffer()).equals(await templateZip('stored before the crash'))).toBe(true);
    } finally {
      await third.stop();
    }
  });
});

describe('restarts', () => {
  it('keep sha256, times, ids and download counts without re-hashing', async () => {
    const first = await startServer();
    await upload(first.url, 'a.zip', 'alpha');
    await upload(first.url, 'b.zip', 'beta');
    for (let i = 0; i < 3; i++) await (await fetch(`${first.url}/assets/a.zip`)).arrayBuffer();
    const listed = await list(first);
    const firstIds = await ids(first);
    expect(listed.find((p) => p.name === 'a.zip')!.download_count).toBe(3);
    expect(await first.stop()).toBe(0);

    const second = await startServer({ storagePath: first.storagePath });
    try {
      expect(await list(second)).toEqual(listed);
      expect(await ids(second)).toEqual(firstIds);
      expect(second.logs().some((l) => l.message === 'storage reconciled with the files on disk')).toBe(false);
      // ids are never reused, even after a deletion
      await fetch(`${second.url}/assets/b.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
      await upload(second.url, 'c.zip', 'gamma');
      const newIds = await ids(second);
      expect(newIds['c.zip']).toBeGreaterThan(Math.max(...Object.values(firstIds)));
    } finally {
      await second.stop();
    }
  });

  it('never adopt files placed in the directory by hand, and never re-hash a stored package', async () => {
    const first = await startServer();
    await upload(first.url, 'kept.zip', 'original bytes');
    const listed = await list(first);
    await first.stop();
    await writeFile(join(first.storagePath, 'spec-kit-template-claude-sh-v9.9.9.zip'), 'placed by hand');
    await writeFile(join(first.storagePath, 'kept.zip'), 'a foreign file of the same name');

    const second = await startServer({ storagePath: first.storagePath });
    try {
      expect(await list(second)).toEqual(listed);
      expect((await fetch(`${second.url}/assets/spec-kit-template-claude-sh-v9.9.9.zip`)).status).toBe(404);
      expect(Buffer.from(await (await fetch(`${second.url}/assets/kept.zip`)).arrayBuffer()).equals(await templateZip('original bytes'))).toBe(true);
      expect(second.logs().find((l) => l.level === 'WARN' && String(l.message).startsWith('ignoring 2 entries'))).toMatchObject({ files: ['kept.zip', 'spec-kit-template-claude-sh-v9.9.9.zip'] });
      expect(sha256('placed by hand')).not.toBe(listed[0]!.sha256);
    } finally {
      await second.stop();
    }
  });
});

describe('memory', () => {
  it('streams a 100 MiB upload and download without holding them in memory', async () => {
    const server = await startServer({ env: { MAX_UPLOAD_BYTES: '200MiB' } });
    try {
      await (await fetch(`${server.url}/latest`)).text();
      // The baseline includes what the first upload loads and sets up (multipart parser, vetting), not only idle.
      expect((await upload(server.url, 'warm-up.zip', 'warm up')).status).toBe(201);
      const pid = server.process.pid!;
      const baseline = (await memory(pid)).now;
      const result = await streamUpload(server.url, 'big.zip', 100 * MiB, { fill: 0x42 });
      expect(result).not.toBe('aborted');
      expect((result as { status: number }).status).toBe(201);
      const stored = JSON.parse((result as { body: string }).body) as { size: number };
      expect(stored.size).toBeGreaterThan(100 * MiB);
      const res = await fetch(`${server.url}/assets/big.zip`);
      let received = 0;
      for await (const chunk of res.body!) received += (chunk as Uint8Array).length;
      expect(received).toBe(stored.size);
      const { peak } = await memory(pid);
      // Well under the 100 MiB that buffering would add.
      expect(peak - baseline).toBeLessThan(50 * MiB);
    } finally {
      await server.stop();
    }
  });
});
