import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../helpers/server.js';
import { rawZip } from '../helpers/packages.js';
import { storageContents } from '../helpers/storage-dir.js';
import { upload } from '../helpers/upload.js';
import { sha256 } from '../helpers/zip.js';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ env: { MAX_PACKAGES: '0' } });
});
afterAll(async () => {
  await server.stop();
});

/** Eight different payloads of a size that takes a moment to stream, so the uploads overlap. */
const payloads = Array.from({ length: 8 }, (_, i) => rawZip([{ name: 'payload.bin', data: Buffer.alloc(2 * 1024 * 1024, 0x41 + i) }]));

describe('uploads of one name at once', () => {
  it('without overwrite: exactly one 201 and seven 409', async () => {
    const responses = await Promise.all(payloads.map((p) => upload(server.url, 'race.zip', p)));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    const winner = await responses.find((r) => r.status === 201)!.json();
    const stored = Buffer.from(await (await fetch(`${server.url}/assets/race.zip`)).arrayBuffer());
    expect(sha256(stored)).toBe(winner.sha256);
    expect(payloads.some((p) => p.equals(stored))).toBe(true);
    expect((await storageContents(server.storagePath)).staging).toEqual([]);
  });

  it('with overwrite: the stored bytes are exactly one of the uploads, and its sha256 matches', async () => {
    const responses = await Promise.all(payloads.map((p) => upload(server.url, 'race-overwrite.zip', p, { overwrite: true })));
    expect(responses.map((r) => r.status).filter((s) => s === 201)).toHaveLength(1);
    expect(responses.every((r) => r.status === 200 || r.status === 201)).toBe(true);
    const stored = Buffer.from(await (await fetch(`${server.url}/assets/race-overwrite.zip`)).arrayBuffer());
    const index = payloads.findIndex((p) => p.equals(stored));
    expect(index).toBeGreaterThanOrEqual(0);
    const listed = ((await (await fetch(`${server.url}/packages?format=json`)).json()) as { name: string; sha256: string; size: number }[]).find((p) => p.name === 'race-overwrite.zip')!;
    expect(listed.sha256).toBe(sha256(stored));
    expect(listed.size).toBe(stored.length);
  });
});

describe('retention (max_packages)', () => {
  it('deletes the oldest uploads beyond the limit, logging each', async () => {
    const limited = await startServer({ env: { MAX_PACKAGES: '3' } });
    try {
      for (const n of [1, 2, 3, 4, 5]) expect((await upload(limited.url, `pkg-${n}.zip`, `p${n}`)).status).toBe(201);
      const names = ((await (await fetch(`${limited.url}/packages?format=json`)).json()) as { name: string }[]).map((p) => p.name);
      expect(names).toEqual(['pkg-5.zip', 'pkg-4.zip', 'pkg-3.zip']);
      expect((await storageContents(limited.storagePath)).packages).toEqual(['pkg-3.zip', 'pkg-4.zip', 'pkg-5.zip']);
      expect((await fetch(`${limited.url}/assets/pkg-1.zip`)).status).toBe(404);
      const deletions = limited.logs().filter((l) => l.level === 'WARN' && / deleted by retention \(max_packages 3\)$/.test(l.message)).map((l) => l.name);
      expect(deletions).toEqual(['pkg-1.zip', 'pkg-2.zip']);
      // An overwrite makes a package the newest again.
      expect((await upload(limited.url, 'pkg-3.zip', 'p3 again', { overwrite: true })).status).toBe(200);
      expect((await upload(limited.url, 'pkg-6.zip', 'p6')).status).toBe(201);
      const after = ((await (await fetch(`${limited.url}/packages?format=json`)).json()) as { name: string }[]).map((p) => p.name);
      expect(after).toEqual(['pkg-6.zip', 'pkg-3.zip', 'pkg-5.zip']);
    } finally {
      await limited.stop();
    }
  });

  it('never deletes the package just uploaded, even with a limit of one', async () => {
    const single = await startServer({ env: { MAX_PACKAGES: '1' } });
    try {
      for (const n of [1, 2, 3]) {
        expect((await upload(single.url, `only-${n}.zip`, `o${n}`)).status).toBe(201);
        expect((await fetch(`${single.url}/assets/only-${n}.zip`)).status).toBe(200);
      }
      expect((await storageContents(single.storagePath)).packages).toEqual(['only-3.zip']);
    } finally {
      await single.stop();
    }
  });

  it('holds under concurrent uploads', async () => {
    const limited = await startServer({ env: { MAX_PACKAGES: '3' } });
    try {
      const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => upload(limited.url, `burst-${i}.zip`, rawZip([{ name: 'burst.bin', data: Buffer.alloc(256 * 1024, i) }]))));
      expect(responses.every((r) => r.status === 201)).toBe(true);
      const listed = (await (await fetch(`${limited.url}/packages?format=json`)).json()) as { name: string }[];
      expect(listed).toHaveLength(3);
      expect((await storageContents(limited.storagePath)).packages).toHaveLength(3);
      // The three kept are the three that finished last.
      const completions = limited.logs().filter((l) => l.message === 'package stored').map((l) => l.name);
      expect(listed.map((p) => p.name).sort()).toEqual(completions.slice(-3).sort());
    } finally {
      await limited.stop();
    }
  });

  it('keeps everything with max_packages 0', async () => {
    for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) expect((await upload(server.url, `many-${n}.zip`, `m${n}`)).status).toBe(201);
    const listed = (await (await fetch(`${server.url}/packages?format=json`)).json()) as { name: string }[];
    expect(listed.filter((p) => p.name.startsWith('many-'))).toHaveLength(12);
  });
});
