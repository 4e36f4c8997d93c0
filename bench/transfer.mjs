// Big transfers and memory, in one run: `node bench/transfer.mjs` (after `npm run -s build`; it uses dist/).
//
// Alternating A B C A B C on the same bytes (a 100 MiB zip holding one stored member of random bytes), same disk:
//   upload:   ours (POST /upload, multipart as CI sends it, X-Checksum-Sha256, vetted, fsynced, published)
//             / the durability limit: a bare node:http server of a few lines (below) that streams the request body to
//               a new file with sha256 and one fsync / nginx WebDAV PUT (for scale)
//             also printed: a bare local copy (file → sha256 → file → fsync, no HTTP) for scale
//   download: GET /assets/big.zip, ours / nginx `sendfile on` / nginx again (the noise), at least 15 rounds: per-pair
//             ratios, median and min
//   memory:   the server's peak RSS over idle during one 100 MiB upload (VmHWM reset through clear_refs after idle
//             is read), and its peak RSS (absolute, as bench/run.mjs reports) across a 100 MiB upload then 8
//             parallel 100 MiB downloads
//   s3 (with S3=1): download and upload through the server on a throwaway Ceph RGW / the AWS SDK on the same RGW
// S3_ONLY=1 runs the s3 section alone. RUNS (default 5) tunes it; SERVER_NODE_FLAGS (e.g. --max-semi-space-size=2) are passed to the server's node.
// `transferSection(opts)` and `renderTransfer(results)` are exported for bench/run.mjs.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { curlSpeed, curlUpload, freePort, indexStore, mbs, rss, sha256File, startNginx, writeZip } from './lib.mjs';

const MiB = 1024 * 1024;
const BIG = 100 * MiB;
const TOKEN = 'bench-token-0123456789abcdef';
const repo = new URL('../', import.meta.url).pathname;
const run = promisify(execFile);

/**
 * The durability limit, as a child process: a request body streamed to a new file with sha256, one fsync, the
 * file's directory left alone (ours syncs one more directory). Answers 201 with the hex digest.
 */
const BARE_SERVER = `
const { createServer } = require('node:http');
const { createHash, randomUUID } = require('node:crypto');
const { createWriteStream } = require('node:fs');
const { pipeline } = require('node:stream/promises');
const { Transform } = require('node:stream');
const dir = process.argv.at(-1);
createServer(async (req, res) => {
  const hash = createHash('sha256');
  const tee = new Transform({ transform(c, _e, done) { hash.update(c); done(null, c); } });
  await pipeline(req, tee, createWriteStream(dir + '/' + randomUUID(), { flags: 'wx', flush: true }));
  res.writeHead(201).end(hash.digest('hex'));
}).listen(0, '127.0.0.1', function () { process.stdout.write(String(this.address().port) + '\\n'); });
`;

/**
 * Runs the section and returns its raw numbers (bytes per second, bytes of RSS). `work` is a scratch directory on the
 * disk to measure; `runs` the measured rounds after one warm-up.
 */
export async function transferSection({ work, runs = 5, log = console.log, nodeFlags = [] } = {}) {
  const children = [];
  const kill = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.once('exit', kill);
  try {
    const big = join(work, 'big.zip');
    await run('bash', ['-c', `head -c ${BIG} /dev/urandom > ${work}/random.bin`]);
    await writeZip(big, [['payload.bin', join(work, 'random.bin')]]);
    await rm(join(work, 'random.bin'));
    const bigSize = (await stat(big)).size;
    const bigSha = await sha256File(big);

    const oursDir = join(work, 'ours');
    await mkdir(oursDir);
    await link(big, join(oursDir, 'big.zip'));
    await indexStore(oursDir);
    const nginxRoot = join(work, 'nginx-root');
    await mkdir(join(nginxRoot, 'dav'), { recursive: true });
    await link(big, join(nginxRoot, 'big.zip'));
    const bareDir = join(work, 'bare');
    await mkdir(bareDir);

    const nginx = await startNginx(work, nginxRoot, children, '/big.zip');
    const bare = await startBare(bareDir, children);
    const start = () => startOurs(oursDir, children, nodeFlags);
    let ours = await start();

    const uploadOurs = async () => {
      const speed = await curlUpload(['-H', `Authorization: Bearer ${TOKEN}`, '-H', `X-Checksum-Sha256: ${bigSha}`, '-F', `file=@${big}`, `${ours.url}/upload?overwrite=true`], bigSize, 200, 201);
      // The replaced copy is freed after the answer: let that finish outside the timing, as the stand-in's clear() does.
      await drained(join(oursDir, '.release-server', 'trash'));
      return speed;
    };
    const uploadBare = async () => {
      const speed = await curlUpload(['-T', big, `${bare.url}/`], bigSize, 201);
      await clear(bareDir);
      return speed;
    };
    const uploadNginx = () => curlUpload(['-T', big, `${nginx.url}/dav/big.zip`], bigSize, 201, 204);
    const copyLocal = async () => {
      const target = join(work, 'copy.bin');
      const t0 = performance.now();
      const hash = createHash('sha256');
      // Writes of 64 KiB, one per chunk, as ours are (src/storage/file-sink.ts says why larger ones measure this
      // VM's memory rather than its disk).
      const out = await open(target, 'wx');
      try {
        for await (const chunk of createReadStream(big, { highWaterMark: 64 * 1024 })) {
          hash.update(chunk);
          await out.write(chunk);
        }
        await out.sync();
      } finally {
        await out.close();
      }
      hash.digest('hex');
      const seconds = (performance.now() - t0) / 1000;
      await rm(target);
      return bigSize / seconds;
    };

    log(`upload: ${runs} rounds of ours / bare node durable / nginx PUT / local copy…`);
    const upload = await alternate(runs, { ours: uploadOurs, bare: uploadBare, nginx: uploadNginx, copy: copyLocal });

    // A download takes ~50 ms, so it gets more rounds than the rest: with 3, one slow pair decided the median. nginx
    // against itself, in the same rounds, is the noise of this measure on this machine.
    const downloadRuns = Math.max(runs, 15);
    log(`download: ${downloadRuns} rounds of ours / nginx sendfile / nginx again…`);
    const download = await alternate(downloadRuns, {
      ours: () => curlSpeed(`${ours.url}/assets/big.zip`),
      nginx: () => curlSpeed(`${nginx.url}/big.zip`),
      nginxAgain: () => curlSpeed(`${nginx.url}/big.zip`),
    });
    await stop(ours);

    // Memory: fresh servers, settled, then the transfer.
    log('memory…');
    const memory = { uploadOverIdle: [], uploadIdle: [], peakAll: [], idleAll: [] };
    for (let i = 0; i < Math.max(1, Math.min(3, runs)); i++) {
      ours = await start();
      await settle();
      const idle = await rss(ours.pid);
      await resetPeak(ours.pid);
      await uploadOurs();
      const during = await rss(ours.pid);
      memory.uploadIdle.push(idle.now);
      memory.uploadOverIdle.push(during.peak - idle.now);
      await stop(ours);

      ours = await start();
      await settle();
      const idle2 = await rss(ours.pid);
      await uploadOurs();
      await Promise.all(Array.from({ length: 8 }, () => curlSpeed(`${ours.url}/assets/big.zip`)));
      memory.idleAll.push(idle2.now);
      memory.peakAll.push((await rss(ours.pid)).peak);
      await stop(ours);
    }
    await stop(nginx);
    await stop(bare);
    return { bigSize, nodeFlags, upload, download, memory };
  } finally {
    kill();
    process.off('exit', kill);
  }
}

/**
 * The s3 backend on a throwaway Ceph RGW (scripts/s3-test-server.sh): a 100 MiB download and upload through the
 * server against the AWS SDK on the same RGW directly (the server's own part size and queue), alternating.
 */
export async function transferS3Section({ work, runs = 5, log = console.log, nodeFlags = [] } = {}) {
  const { S3Client, CreateBucketCommand, GetObjectCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const { Upload } = await import('@aws-sdk/lib-storage');
  const children = [];
  const big = join(work, 's3-big.zip');
  await run('bash', ['-c', `head -c ${BIG} /dev/urandom > ${work}/s3-random.bin`]);
  await writeZip(big, [['payload.bin', join(work, 's3-random.bin')]]);
  await rm(join(work, 's3-random.bin'));
  const bigSize = (await stat(big)).size;
  const bigSha = await sha256File(big);
  const rgwDir = join(work, 'rgw');
  const script = join(repo, 'scripts/s3-test-server.sh');
  log('s3: starting a Ceph RGW…');
  const { stdout } = await run('bash', [script, 'start', rgwDir], { timeout: 300_000 });
  const env = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
  try {
    const client = new S3Client({
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await client.send(new CreateBucketCommand({ Bucket: 'bench' }));
    const server = await startOurs(join(work, 'unused-s3'), children, nodeFlags, { ...env, STORAGE_BACKEND: 's3', S3_BUCKET: 'bench', S3_PREFIX: 'rs/' });
    try {
      await curlUpload(['-H', `Authorization: Bearer ${TOKEN}`, '-F', `file=@${big}`, `${server.url}/upload`], bigSize, 201);
      // The one object of that size in the bucket is the package's blob (whatever the index's layout).
      const listed = await client.send(new ListObjectsV2Command({ Bucket: 'bench', Prefix: 'rs/' }));
      const key = listed.Contents.find((o) => o.Size === bigSize)?.Key;
      if (!key) throw new Error('the upload is not in the bucket');
      const sdkDownload = async () => {
        const t0 = performance.now();
        const res = await client.send(new GetObjectCommand({ Bucket: 'bench', Key: key }));
        let n = 0;
        for await (const chunk of res.Body) n += chunk.length;
        if (n !== bigSize) throw new Error(`SDK read ${n} bytes`);
        return n / ((performance.now() - t0) / 1000);
      };
      log(`s3 download: ${runs} rounds of ours / SDK…`);
      const download = await alternate(runs, { ours: () => curlSpeed(`${server.url}/assets/s3-big.zip`), sdk: sdkDownload });
      const sdkUpload = async () => {
        const t0 = performance.now();
        await new Upload({ client, params: { Bucket: 'bench', Key: 'direct/s3-big.zip', Body: createReadStream(big) }, partSize: 8 * MiB, queueSize: 2 }).done();
        return bigSize / ((performance.now() - t0) / 1000);
      };
      log(`s3 upload: ${runs} rounds of ours / SDK…`);
      const upload = await alternate(runs, {
        ours: () => curlUpload(['-H', `Authorization: Bearer ${TOKEN}`, '-H', `X-Checksum-Sha256: ${bigSha}`, '-F', `file=@${big}`, `${server.url}/upload?overwrite=true`], bigSize, 200),
        sdk: sdkUpload,
      });
      return { download, upload };
    } finally {
      await stop(server);
    }
  } finally {
    await run('bash', [script, 'stop', rgwDir]).catch(() => undefined);
  }
}

export function renderTransferS3(r) {
  const pairs = (a, b) => a.map((x, i) => x / b[i]);
  return [
    `s3 download 100 MiB ours ${spread(r.download.ours, mbs)} | SDK ${spread(r.download.sdk, mbs)}`,
    `  ours / SDK: ${ratioLine(pairs(r.download.ours, r.download.sdk))}   (goal ≥ 0.90×)`,
    `s3 upload 100 MiB   ours ${spread(r.upload.ours, mbs)} | SDK ${spread(r.upload.sdk, mbs)}`,
    `  ours / SDK: ${ratioLine(pairs(r.upload.ours, r.upload.sdk))}   (goal ≥ 0.90×)`,
  ].join('\n');
}

/** The section as text lines: medians with ranges, ratios, and per-pair download ratios. */
export function renderTransfer(r) {
  const lines = [];
  const up = r.upload;
  const pairs = (a, b) => a.map((x, i) => x / b[i]);
  lines.push(`upload 100 MiB   ours ${spread(up.ours, mbs)} | bare node durable ${spread(up.bare, mbs)} | nginx PUT ${spread(up.nginx, mbs)} | local copy+sha256+fsync ${spread(up.copy, mbs)}`);
  lines.push(`  ours / bare node durable: ${ratioLine(pairs(up.ours, up.bare))}   (goal ≥ 0.80×)`);
  lines.push(`  ours / nginx PUT:         ${ratioLine(pairs(up.ours, up.nginx))}`);
  lines.push(`  ours / local copy:        ${ratioLine(pairs(up.ours, up.copy))}`);
  const down = r.download;
  lines.push(`download 100 MiB ours ${spread(down.ours, mbs)} | nginx sendfile ${spread(down.nginx, mbs)}`);
  lines.push(`  ours / nginx: ${ratioLine(pairs(down.ours, down.nginx))}   (goal: median ≥ 0.95×, min ≥ 0.80×)`);
  lines.push(`  nginx / nginx, the same rounds (this measure's noise): ${ratioLine(pairs(down.nginxAgain, down.nginx))}`);
  const m = r.memory;
  if (r.nodeFlags.length > 0) lines.push(`(the server ran as: node ${r.nodeFlags.join(' ')} dist/main.js)`);
  lines.push(`peak RSS during a 100 MiB upload, over idle: ${spread(m.uploadOverIdle, mib)} (idle ${spread(m.uploadIdle, mib)})   (goal ≤ +32 MiB)`);
  lines.push(`peak RSS, 100 MiB upload + 8 parallel 100 MiB downloads: ${spread(m.peakAll, mib)} (idle ${spread(m.idleAll, mib)})   (goal ≤ 110 MiB)`);
  return lines.join('\n');
}

function ratioLine(ratios) {
  return `median ${median(ratios).toFixed(2)}×, min ${Math.min(...ratios).toFixed(2)}×, max ${Math.max(...ratios).toFixed(2)}× [${ratios.map((x) => x.toFixed(2)).join(' ')}]`;
}

/**
 * Each of `fns` in turn, `runs` rounds after one unmeasured warm-up round, so drift hits all alike. Each starts
 * after a sync(1), outside its timing: nginx's PUT does not fsync, and the writeback of its 100 MiB would otherwise
 * land on whichever transfer comes next.
 */
async function alternate(runs, fns) {
  const out = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  for (const fn of Object.values(fns)) await fn();
  for (let i = 0; i < runs; i++) {
    for (const [k, fn] of Object.entries(fns)) {
      await run('sync');
      out[k].push(await fn());
    }
  }
  return out;
}

/** Waits (2 s at most) until `dir` is empty or gone. */
async function drained(dir) {
  for (let i = 0; i < 200; i++) {
    if ((await readdir(dir).catch(() => [])).length === 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function clear(dir) {
  for (const name of await readdir(dir)) await rm(join(dir, name), { force: true });
}

/** Lets start-up garbage be collected and the heap settle before idle RSS is read. */
const settle = () => new Promise((r) => setTimeout(r, 1500));

async function startOurs(storage, children, nodeFlags = [], extraEnv = {}) {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeFlags, join(repo, 'dist/main.js')], {
    env: { PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), STORAGE_PATH: storage, AUTH_TOKEN: TOKEN, MAX_PACKAGES: '0', MAX_UPLOAD_BYTES: '1GiB', CONFIG_PATH: '/nonexistent', ...extraEnv },
    // Logs on, as in production; to /dev/null so the disk does not measure itself.
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    const res = await fetch(`${url}/readyz`).catch(() => null);
    if (res?.status === 200) break;
    if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return { url, pid: child.pid, child, readyMs: performance.now() - t0 };
}

async function startBare(dir, children) {
  const child = spawn(process.execPath, ['-e', BARE_SERVER, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`bare server exited ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, pid: child.pid, child };
}

async function stop(server) {
  server.child.kill('SIGTERM');
  await new Promise((r) => (server.child.exitCode !== null ? r() : server.child.once('exit', r)));
}

/** Resets VmHWM to the current RSS (Linux: "5" to clear_refs), so the next peak is the transfer's own. */
async function resetPeak(pid) {
  const handle = await open(`/proc/${pid}/clear_refs`, 'w');
  try {
    await handle.write('5');
  } finally {
    await handle.close();
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function spread(xs, f) {
  return `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}
function mib(x) {
  return `${(x / MiB).toFixed(1)} MiB`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const cmd of ['nginx', 'curl']) {
    if (!['/usr/sbin/', '/usr/bin/'].some((d) => existsSync(d + cmd))) throw new Error(`${cmd} is missing (apt-get install -y nginx-light curl)`);
  }
  const work = await mkdtemp('/tmp/release-server-transfer-');
  try {
    const nodeFlags = (process.env.SERVER_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    // S3_ONLY=1: the s3 section alone (its SDK reference is still measured in the same run, alternating).
    const s3Only = process.env.S3_ONLY === '1';
    const results = s3Only ? {} : await transferSection({ work, runs: Number(process.env.RUNS ?? 5), log: (m) => console.error(m), nodeFlags });
    if (!s3Only) console.log(renderTransfer(results));
    if (process.env.S3 === '1' || s3Only) {
      results.s3 = await transferS3Section({ work, runs: Number(process.env.RUNS ?? 5), log: (m) => console.error(m), nodeFlags });
      console.log(renderTransferS3(results.s3));
    }
    if (process.env.JSON) await writeFile(process.env.JSON, JSON.stringify(results, null, 2));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
