// Does vetting keep the event loop free? `npm run -s build && node bench/vetting-event-loop.mjs`
//
// Starts the real server (node dist/main.js; DIST=/other/dist to measure another build) on loopback, uploads each
// hostile package below while probing GET /healthz every 10 ms, and reports how long the upload took and how long
// the slowest probe waited. A probe that waits as long as the upload means vetting ran on the event loop.
// LIMIT_S (default 30) bounds each upload: past it the client gives up (the server may still be busy).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { stringify } from 'yaml';

const MiB = 1024 * 1024;
const TOKEN = 'bench-token-0123456789abcdef';
const DIST = resolve(process.env.DIST ?? new URL('../dist', import.meta.url).pathname);
const LIMIT_MS = Number(process.env.LIMIT_S ?? 30) * 1000;

/** A zip of deflated members, headers written by hand. */
function zip(entries) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const [name, text] of entries) {
    const data = Buffer.from(text);
    const body = deflateRawSync(data);
    const n = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc32(data), 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(n.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, body);
    centrals.push(central, n);
    offset += 30 + n.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

const manifest = (id, more = '') =>
  stringify({
    schema_version: '1.0',
    extension: { id, name: id, version: '1.0.0', description: 'bench' },
    requires: { speckit_version: '>=0.1.0' },
    provides: { commands: [{ name: `speckit.${id}.greet`, file: 'commands/greet.md' }] },
  }) + more;
const keys = (n) => Array.from({ length: n }, (_, i) => `k${i}: 1`).join('\n');

const cases = [
  ['95,000-key extension.yml', zip([['extension.yml', manifest('keys', keys(95_000))], ['commands/greet.md', '# Greet\n']])],
  ['2,400 keys (4,900 nodes: at the bound)', zip([['extension.yml', manifest('keys-bound', keys(2_400))], ['commands/greet.md', '# Greet\n']])],
  ['template inflating to 512 MiB', zip([['README.md', Buffer.alloc(512 * MiB)]])],
];

const storage = await mkdtemp(join(tmpdir(), 'rs-bench-vet-'));
const server = spawn(process.execPath, [join(DIST, 'main.js')], {
  env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', STORAGE_PATH: storage, AUTH_TOKEN: TOKEN, MAX_PACKAGES: '0', MAX_UPLOAD_BYTES: '64MiB', CONFIG_PATH: '/nonexistent.yaml', LOG_LEVEL: 'info' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
try {
  const port = await new Promise((resolvePort, reject) => {
    let buffer = '';
    server.stdout.on('data', (c) => {
      buffer += c;
      const m = /"port":(\d+)/.exec(buffer);
      if (m) resolvePort(Number(m[1]));
    });
    server.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  while ((await fetch(`${url}/readyz`).catch(() => null))?.status !== 200) await new Promise((r) => setTimeout(r, 50));
  console.log(`server: ${DIST}`);
  console.log('| upload | status | upload time | probes | slowest /healthz |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const [label, bytes] of cases) {
    const form = new FormData();
    form.append('file', new Blob([bytes]), 'bench.zip');
    const started = performance.now();
    let done = false;
    const upload = fetch(`${url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(LIMIT_MS) })
      .then(async (res) => `${res.status}`)
      .catch(() => `no answer in ${LIMIT_MS / 1000} s`)
      .finally(() => (done = true));
    const probes = [];
    while (!done) {
      const t = performance.now();
      const ok = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(LIMIT_MS) }).then((r) => r.ok, () => false);
      probes.push(ok ? performance.now() - t : Infinity);
      await new Promise((r) => setTimeout(r, 10));
    }
    const status = await upload;
    const elapsed = performance.now() - started;
    const slowest = Math.max(...probes);
    console.log(`| ${label} (${(bytes.length / 1024).toFixed(0)} KiB zip) | ${status} | ${(elapsed / 1000).toFixed(2)} s | ${probes.length} | ${Number.isFinite(slowest) ? `${slowest.toFixed(0)} ms` : 'none answered'} |`);
    if (status.startsWith('no answer')) break;
  }
} finally {
  server.kill('SIGKILL');
  await rm(storage, { recursive: true, force: true });
}
