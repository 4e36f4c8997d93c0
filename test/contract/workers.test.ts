import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { catalogZip, stepZip, templateZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { committedIndex, eventually, STATE_DIR } from '../helpers/storage-dir.js';
import { childPids, expectChangesSeenByEveryWorker, freshGet, workersListening, workersThatServed } from '../helpers/workers.js';
import { upload } from '../helpers/upload.js';
import { sha256 } from '../helpers/zip.js';

/** `/packages` as JSON, on a connection of its own (so that the workers take turns answering). */
async function listed(server: RunningServer): Promise<string[]> {
  const res = await fetch(`${server.url}/packages?format=json`, { headers: { Connection: 'close' } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { name: string }[]).map((p) => p.name).sort();
}

/** The pids of the server's workers, by worker number (from each one's environment in /proc). */
async function workerPids(server: RunningServer): Promise<Map<number, number>> {
  const byNumber = new Map<number, number>();
  for (const child of await childPids(server.process.pid!)) {
    const environ = (await readFile(`/proc/${child}/environ`, 'utf8')).split('\0');
    byNumber.set(Number(environ.find((v) => v.startsWith('RELEASE_SERVER_WORKER='))?.split('=')[1]), child);
  }
  return byNumber;
}

describe('WORKERS=2 on the filesystem backend', () => {
  let server: RunningServer;
  beforeAll(async () => {
    // A refresh interval far beyond the test: only the workers telling each other can make a change seen at once.
    server = await startServer({ env: { WORKERS: '2', INDEX_REFRESH_SECONDS: '3600' } });
    await workersListening(server);
  });
  afterAll(async () => {
    await server.stop();
  });

  it('a change written through one worker is served by every worker at once, and a removal too', async () => {
    await expectChangesSeenByEveryWorker(server);
  });

  it('uploads through both workers at once all land, each with an id of its own, and every worker lists them', async () => {
    // One release (retention keeps the newest five), twelve assets.
    const names = Array.from({ length: 12 }, (_, i) => `spec-kit-template-agent${i}-sh-v1.0.0.zip`);
    const statuses = await Promise.all(names.map((name) => upload(server.url, name, `bytes of ${name}`).then((r) => r.status)));
    expect(statuses).toEqual(Array(12).fill(201));
    expect(workersThatServed(server, '/upload')).toEqual(new Set([1, 2]));
    await eventually(async () => {
      for (let i = 0; i < 4; i++) expect(await listed(server)).toEqual(expect.arrayContaining(names));
    }, 1000);
    // Every upload got an id of its own in the one journal both wrote to.
    const index = await committedIndex(server.storagePath);
    const ids = names.map((name) => index.records.get(name)!.id);
    expect(new Set(ids).size).toBe(12);
    expect(await readdir(join(server.storagePath, STATE_DIR, 'tmp', 'w1'))).toEqual([]);
    expect(await readdir(join(server.storagePath, STATE_DIR, 'tmp', 'w2'))).toEqual([]);
  });

  it('a snapshot made through one worker while the other deletes a version it takes: never a snapshot of a deleted version', async () => {
    const auth = { authorization: `Bearer ${TOKEN}`, Connection: 'close' };
    for (let round = 0; round < 48; round++) {
      const id = `race-${round}`;
      const form = new FormData();
      form.append('file', new Blob([(await catalogZip('extension', { id, version: '1.0.0' })) as BlobPart]), 'e.zip');
      expect((await fetch(`${server.url}/upload`, { method: 'POST', body: form, headers: auth })).status).toBe(201);
      // Both workers know the version before the race (each hears of the other's changes within milliseconds).
      await eventually(async () => {
        for (let i = 0; i < 4; i++) expect((await fetch(`${server.url}/catalogs/extensions/${id}`, { headers: { Connection: 'close' } })).status).toBe(200);
      }, 2000);
      const [made, deleted] = await Promise.all([
        fetch(`${server.url}/catalogs/snapshots`, { method: 'POST', body: JSON.stringify({ name: `race-${round}` }), headers: { ...auth, 'content-type': 'application/json' } }),
        // A delete is quicker than a snapshot: sent a little later each round, it lands at each point of the snapshot.
        new Promise((r) => setTimeout(r, 2 + (round % 5))).then(() => fetch(`${server.url}/assets/extension-${id}-1.0.0.zip`, { method: 'DELETE', headers: auth })),
      ]);
      expect(made.status).toBe(201);
      let frozen: { extensions?: Record<string, unknown> } = {};
      // The worker that did not make it hears of it within milliseconds.
      await eventually(async () => {
        const res = await fetch(`${server.url}/catalogs/snapshots/race-${round}/extensions.json`, { headers: { Connection: 'close' } });
        frozen = (await res.json()) as typeof frozen;
        expect(res.status).toBe(200);
      }, 2000);
      const held = id in frozen.extensions!;
      // Whichever committed second saw the first: the delete was refused, or the snapshot went without the version.
      expect(`${held ? 'held' : 'not held'} ${deleted.status}`).toBe(held ? 'held 409' : 'not held 204');
      if (held) expect((await fetch(`${server.url}/assets/extension-${id}-1.0.0.zip`, { headers: { Connection: 'close' } })).status).toBe(200);
    }
  });

  it('a worker killed in the middle of an upload leaves nothing visible, and its replacement sweeps what it staged', async () => {
    const before = await listed(server);
    const name = 'spec-kit-template-killed-sh-v1.0.0.zip';
    const { hostname, port } = new URL(server.url);
    const socket = connect({ host: hostname, port: Number(port) });
    socket.on('error', () => undefined);
    socket.write(
      `POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000000\r\n\r\n` +
        `--b\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n\r\nPK`,
    );
    socket.write(Buffer.alloc(1024 * 1024));
    // The worker that took the connection is staging the bytes in its own area.
    const tmp = join(server.storagePath, STATE_DIR, 'tmp');
    let staging = 0;
    await eventually(async () => {
      for (const n of [1, 2]) if ((await readdir(join(tmp, `w${n}`))).length > 0) staging = n;
      expect(staging).not.toBe(0);
    }, 5000);
    const other = staging === 1 ? 2 : 1;
    const listening = server.logs().filter((l) => l.message.startsWith('listening on ')).length;
    process.kill((await workerPids(server)).get(staging)!, 'SIGKILL');
    socket.destroy();
    await eventually(() => expect(server.logs().filter((l) => l.message.startsWith('listening on ')).length).toBe(listening + 1), 10_000);
    expect(await readdir(join(tmp, `w${staging}`))).toEqual([]);
    expect(await readdir(join(tmp, `w${other}`))).toEqual([]);
    for (let i = 0; i < 4; i++) expect(await listed(server)).toEqual(before);
    expect([...(await committedIndex(server.storagePath)).records.keys()]).not.toContain(name);
  });

  it('a worker killed while the other keeps writing is replaced, and the replacement opens the store: nothing fails', async () => {
    const names = Array.from({ length: 6 }, (_, i) => `spec-kit-template-load${i}-sh-v1.0.0.zip`);
    for (let i = 0; i < 120; i++) expect((await upload(server.url, names[i % 6]!, `before ${i}`, { overwrite: true })).status).toBeLessThan(300);
    let writing = true;
    // Each with a deadline: a connection the primary handed to the worker as it was killed is never answered (node:
    // cluster's round-robin keeps it open), which a client sees as a request that hangs.
    const writers = names.map(async (name) => {
      for (let i = 0; writing; i++) {
        const form = new FormData();
        form.append('file', new Blob([(await templateZip(`during ${name} ${i}`)) as BlobPart]), name);
        await fetch(`${server.url}/upload?overwrite=true`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) })
          .then((res) => res.arrayBuffer())
          .catch(() => undefined);
      }
    });
    const from = server.stdout.length;
    for (let round = 0; round < 2; round++) {
      const listening = server.logs().filter((l) => l.message.startsWith('listening on ')).length;
      process.kill((await workerPids(server)).get(2)!, 'SIGKILL');
      await eventually(() => expect(server.logs().filter((l) => l.message.startsWith('listening on ')).length).toBe(listening + 1), 15_000);
    }
    writing = false;
    await Promise.all(writers);
    const problems = server.logs().slice(from).filter((l) => l.level === 'FATAL' || String(l.message).startsWith('could not take in'));
    expect(problems.map((l) => `${l.worker} ${l.level} ${l.message}`)).toEqual([]);
    expect(server.process.exitCode).toBeNull();
  });

  it('stops every worker on SIGTERM; one process started on the directory afterwards serves what the workers stored', async () => {
    const stored = await listed(server);
    expect(stored.length).toBeGreaterThanOrEqual(12);
    expect(await server.stop()).toBe(0);
    server = await startServer({ storagePath: server.storagePath });
    expect(await listed(server)).toEqual(stored);
    expect(await readdir(join(server.storagePath, STATE_DIR, 'tmp'))).toEqual([]);
  });
});

describe('the same bytes uploaded again, and versions renamed, with one process and with workers', () => {
  let server: RunningServer | null = null;
  afterEach(async () => {
    await server?.stop();
    server = null;
  });

  for (const workers of ['1', '2']) {
    it(`WORKERS=${workers}: a step file URL keeps answering while the same bytes are uploaded again with overwrite=true`, async () => {
      const s = (server = await startServer({ env: { WORKERS: workers } }));
      if (workers === '2') await workersListening(s);
      const zip = await stepZip('rt-step', { dir: 'rt-step' });
      expect((await upload(s.url, 'step.zip', zip)).status).toBe(201);
      const url = `${s.url}/files/${sha256(zip)}/__init__.py`;
      const statuses = new Map<number, number>();
      const until = Date.now() + 3000;
      await Promise.all([
        ...Array.from({ length: 3 }, async () => {
          while (Date.now() < until) expect((await upload(s.url, 'step.zip', zip, { overwrite: true })).status).toBe(200);
        }),
        ...Array.from({ length: 6 }, async () => {
          while (Date.now() < until) {
            const res = await fetch(url, { headers: { Connection: 'close' } });
            await res.arrayBuffer();
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          }
        }),
      ]);
      expect([...statuses.keys()]).toEqual([200]);
    });
  }

  it('WORKERS=2: an overwrite that commits after another worker deleted the template makes a new record, never the deleted one again', async () => {
    const s = (server = await startServer({ env: { WORKERS: '2', INDEX_REFRESH_SECONDS: '3600' } }));
    await workersListening(s);
    const name = 'spec-kit-template-rt-race-sh-v3.0.0.zip';
    const send = async (method: string, path: string, text?: string) => {
      const init: RequestInit = { method, headers: { authorization: `Bearer ${TOKEN}`, Connection: 'close' } };
      if (text !== undefined) {
        const form = new FormData();
        form.append('file', new Blob([(await templateZip(text)) as BlobPart]), name);
        init.body = form;
      }
      const res = await fetch(`${s.url}${path}`, init);
      await res.arrayBuffer();
      return res.status;
    };
    const assetId = async (): Promise<number | null> => {
      const res = await fetch(`${s.url}/releases/tags/v3.0.0`, { headers: { Connection: 'close' } });
      if (res.status !== 200) return null;
      return ((await res.json()) as { assets: { name: string; id: number }[] }).assets.find((a) => a.name === name)?.id ?? null;
    };
    const deleted = new Set<number>();
    let raced = 0;
    for (let round = 0; round < 80 && raced < 3; round++) {
      expect(await send('POST', '/upload?overwrite=true', `base ${round}`)).toBeLessThan(300);
      await eventually(async () => expect(await freshGet(`${s.url}/assets/${name}`)).toBe(200), 1000);
      const before = (await assetId())!;
      const [[removed, again], overwrite] = await Promise.all([
        (async () => {
          await new Promise((r) => setTimeout(r, Math.random() * 20));
          return [await send('DELETE', `/assets/${name}`), await send('POST', '/upload', `again ${round}`)];
        })(),
        (async () => {
          await new Promise((r) => setTimeout(r, Math.random() * 20));
          return send('POST', '/upload?overwrite=true', `over ${round}`);
        })(),
      ]);
      if (removed === 204) deleted.add(before);
      // The overwrite committed after the delete (the upload after the delete found the name taken again).
      if (removed === 204 && again === 409 && overwrite === 200) raced += 1;
      const now = await assetId();
      if (now !== null) expect(deleted.has(now)).toBe(false);
      await send('DELETE', `/assets/${name}`);
    }
    expect(raced).toBeGreaterThan(0);
  });

  it('WORKERS=2: downloads of 1.0 counted by both workers go on under 1.0.0 once it is stored over 1.0', async () => {
    const s = (server = await startServer({ env: { WORKERS: '2', INDEX_REFRESH_SECONDS: '3600' } }));
    await workersListening(s);
    const publish = async (version: string, query = '') => {
      const form = new FormData();
      form.append('file', new Blob([(await catalogZip('extension', { id: 'rt-count', version, info: { description: version } })) as BlobPart]), 'e.zip');
      return fetch(`${s.url}/upload${query}`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}`, Connection: 'close' } });
    };
    expect((await publish('1.0')).status).toBe(201);
    await eventually(async () => expect(await freshGet(`${s.url}/assets/extension-rt-count-1.0.zip`)).toBe(200), 1000);
    for (let i = 0; i < 19; i++) expect(await freshGet(`${s.url}/assets/extension-rt-count-1.0.zip`)).toBe(200);
    expect(workersThatServed(s, '/assets/extension-rt-count-1.0.zip')).toEqual(new Set([1, 2]));
    // At once, before either worker has stored its counts (every 2 s).
    expect((await publish('1.0.0', '?overwrite=true')).status).toBe(200);
    await eventually(async () => {
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${s.url}/packages?format=json`, { headers: { Connection: 'close' } });
        const mine = ((await res.json()) as { name: string; download_count: number }[]).filter((p) => p.name.startsWith('extension-rt-count-'));
        expect(mine.map((p) => [p.name, p.download_count])).toEqual([['extension-rt-count-1.0.0.zip', 20]]);
      }
    }, 8000);
  });

  it('WORKERS=2: a version stored again as 1.0.0 over 1.0 keeps its id on every worker: a snapshot of it is served by each, and none deletes it', async () => {
    const s = (server = await startServer({ env: { WORKERS: '2', INDEX_REFRESH_SECONDS: '3600' } }));
    await workersListening(s);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const publish = async (zip: Buffer, query = '') => {
      const form = new FormData();
      form.append('file', new Blob([zip as BlobPart]), 'e.zip');
      return fetch(`${s.url}/upload${query}`, { method: 'POST', body: form, headers: { ...auth, Connection: 'close' } });
    };
    expect((await publish(await catalogZip('extension', { id: 'rt-ext', version: '1.0' }))).status).toBe(201);
    // The other worker takes the first change in on its own, before the rename's change (the new name put, the old removed).
    await new Promise((r) => setTimeout(r, 300));
    expect((await publish(await catalogZip('extension', { id: 'rt-ext', version: '1.0.0', info: { description: 'again' } }), '?overwrite=true')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect((await fetch(`${s.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"rt"}', headers: { ...auth, 'content-type': 'application/json' } })).status).toBe(201);
    await eventually(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const res = await fetch(`${s.url}/catalogs/snapshots/rt/extensions.json`, { headers: { Connection: 'close' } });
        seen.add(`${res.status} ${Object.keys(((await res.json()) as { extensions?: object }).extensions ?? {}).join(',')}`);
      }
      expect([...seen]).toEqual(['200 rt-ext']);
    }, 2000);
    const deletes = new Set<number>();
    for (let i = 0; i < 6; i++) deletes.add((await fetch(`${s.url}/assets/extension-rt-ext-1.0.0.zip`, { method: 'DELETE', headers: { ...auth, Connection: 'close' } })).status);
    expect([...deletes]).toEqual([409]);
  });
});
