// Helpers the bench scripts share (run.mjs, transfer.mjs, scale.mjs): ports, curl timings, memory, zips, a store.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import yazl from 'yazl';

const run = promisify(execFile);
const MiB = 1024 * 1024;

export function freePort() {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Bytes per second of one curl download. */
export async function curlSpeed(url) {
  const { stdout } = await run('curl', ['-sS', '--fail', '-o', '/dev/null', '-w', '%{speed_download}', url]);
  return Number(stdout);
}

/** Bytes per second of one curl upload of `bytes` (its arguments say how), refused unless it answers one of `okStatuses`. */
export async function curlUpload(args, bytes, ...okStatuses) {
  const { stdout } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', ...args]);
  const [status, seconds] = stdout.split(' ');
  if (!okStatuses.includes(Number(status))) throw new Error(`upload answered ${status}`);
  return bytes / Number(seconds);
}

/** A process's peak (VmHWM) and current (VmRSS) resident memory, in bytes. */
export async function rss(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)[1]) * 1024;
  return { peak: kib('VmHWM'), now: kib('VmRSS') };
}

export function mbs(x) {
  return `${(x / 1e6).toFixed(0)} MB/s`;
}

export async function sha256File(path) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) hash.update(chunk);
  return hash.digest('hex');
}

/** A zip of `files` ([name, source path], stored) and `texts` ({ name: text }), with fixed times. */
export async function writeZip(path, files, texts = {}) {
  const zip = new yazl.ZipFile();
  for (const [name, text] of Object.entries(texts)) zip.addBuffer(Buffer.from(text), name, { mtime: new Date(0) });
  for (const [name, source] of files) zip.addFile(source, name, { compress: false, mtime: new Date(0) });
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(path));
}

/**
 * Stores the package files in `dir` the way the server does (it never adopts files placed by hand): each hashed and
 * hard-linked to `.release-server/blobs/<2 hex>/<sha256>`, and one index generation recording them all. The files
 * stay where they are (nginx serves them; the server ignores them).
 */
export async function indexStore(dir) {
  const state = join(dir, '.release-server');
  await mkdir(join(state, 'index'), { recursive: true });
  const names = (await readdir(dir)).filter((n) => n.endsWith('.zip')).sort();
  const records = [];
  const now = Date.now();
  for (const [i, name] of names.entries()) {
    const sha256 = await sha256File(join(dir, name));
    await mkdir(join(state, 'blobs', sha256.slice(0, 2)), { recursive: true });
    await link(join(dir, name), join(state, 'blobs', sha256.slice(0, 2), sha256)).catch((err) => {
      if (err.code !== 'EEXIST') throw err;
    });
    const at = new Date(now - (names.length - i) * 1000).toISOString();
    const tag = /-v(\d+\.\d+\.\d+)\.zip$/.exec(name);
    const { size } = await stat(join(dir, name));
    records.push({ id: i + 1, name, size, sha256, createdAt: at, updatedAt: at, downloadCount: 0, tag: tag ? `v${tag[1]}` : null, kind: 'template', catalog: null, blob: sha256 });
  }
  await writeFile(join(state, 'index', '000000000001.json'), JSON.stringify({ version: 2, seq: 1, lastId: records.length, records }));
}

/**
 * nginx as the reference: one worker, `sendfile on`, access log off, `gzip_static` (a `.gz` beside a file serves a
 * client that takes gzip), the bench's JSON paths typed as JSON, and WebDAV PUT under /dav/. Ready once `probe`
 * (a file under `root`) answers; its process is added to `children` for the caller to stop.
 */
export async function startNginx(work, root, children, probe) {
  const port = await freePort();
  const prefix = join(work, 'nginx');
  await mkdir(join(prefix, 'body'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  await writeFile(
    conf,
    `daemon off;
worker_processes 1;
${process.getuid() === 0 ? 'user root;' : ''}
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log;
events { worker_connections 1024; }
http {
  access_log /dev/null;
  sendfile on;
  gzip_static on;
  tcp_nopush on;
  client_body_temp_path ${prefix}/body;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location = /latest { default_type application/json; alias ${root}/latest.json; }
    location = /packages.json { default_type application/json; }
    location /catalogs/ { default_type application/json; alias ${root}/catalogs/; }
    location /dav/ { dav_methods PUT; create_full_put_path on; client_max_body_size 0; }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', prefix, '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`${url}${probe}`, { method: 'HEAD' }).catch(() => null))?.status === 200) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  return { url, root, pid: child.pid, child, kill: (s) => child.kill(s) };
}
