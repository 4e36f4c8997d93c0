// Flat at scale, and fast start-up: `node bench/scale.mjs` (after `npm run -s build`; `BACKEND=s3` for the s3
// backend on a throwaway Ceph RGW, scripts/s3-test-server.sh, or on the one S3_ENDPOINT and AWS_* name).
//
// Against the real server (node dist/main.js), in one run:
//   1. start-up, spawn to the first /readyz 200, with 10,000 and with 100,000 packages stored (RUNS each, median),
//      and the RSS 2 s after ready and idle (15 s after ready, no requests: V8 has given back start-up's garbage);
//   2. the latency of a small upload (a 1 KiB template zip, POST /upload, vetted) with 100 and with 100,000 packages
//      stored, alternating between the two servers, median of UPLOADS each: the ratio 100,000 / 100;
//   3. cached reads with 100 and with 100,000 packages stored: a 1 KiB download, and /latest answered 304 to its
//      ETag (wrk -t2 -c16, SECONDS each, alternating): the ratio of req/s 100,000 / 100;
//   4. on s3: the index objects one upload writes (keys under the prefix other than blobs/ that are new or changed).
// Stores are made directly in the server's own layout (one checkpoint holding every record; records share a few
// hundred blobs), as bench/run.mjs does: the server never adopts files, and hashing 100,000 uploads would take long.
//
// REPO_DIR=<another checkout> measures that checkout's dist/ instead (a before/after on the filesystem backend).
// `scaleSection(opts)` returns the figures and `renderScale(results)` a Markdown table, for bench/run.mjs.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import yazl from 'yazl';
import { freePort } from './lib.mjs';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const TOKEN = 'bench-token-0123456789abcdef';
const REPO = new URL('../', import.meta.url).pathname;
/** The build measured: this checkout's dist/ unless `opts.repo` names another checkout (for a before/after). */
let target = REPO;
/** Distinct blobs the records of a made-up store share. */
const BLOBS = 256;
/** How long a server stands without requests before its idle RSS is read. */
const IDLE_MS = 15_000;

/**
 * Runs the scale benchmark. Options: backend ('filesystem' | 's3'), runs (start-ups per size, default 3), uploads
 * (per server, default 30), seconds (wrk duration, default 3), repo (a checkout whose dist/ is measured; this one by
 * default), counts ({ startup: [10000, 100000], small: 100,
 * large: 100000 }), work (a scratch directory; a new one under /tmp by default), s3 (the S3 environment: S3_ENDPOINT,
 * S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; with backend 's3' and none given, a throwaway RGW is started).
 */
export async function scaleSection(opts = {}) {
  const backend = opts.backend ?? 'filesystem';
  const runs = opts.runs ?? 3;
  const uploads = opts.uploads ?? 30;
  const seconds = opts.seconds ?? 3;
  const counts = { startup: [10_000, 100_000], small: 100, large: 100_000, ...opts.counts };
  const work = opts.work ?? (await mkdtemp('/tmp/release-server-scale-'));
  target = opts.repo ?? REPO;
  const servers = [];
  const cleanup = [];
  try {
    let s3 = null;
    if (backend === 's3') {
      s3 = opts.s3 ?? (process.env.S3_ENDPOINT ? pick(process.env, ['S3_ENDPOINT', 'S3_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) : null);
      if (!s3) {
        const rgwDir = join(work, 'rgw');
        const script = join(REPO, 'scripts/s3-test-server.sh');
        const { stdout } = await run('bash', [script, 'start', rgwDir], { timeout: 300_000 });
        s3 = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
        cleanup.push(() => run('bash', [script, 'stop', rgwDir], { timeout: 60_000 }));
      }
    }
    const store = s3 ? await s3Stores(s3) : fsStores(work);
    const start = async (where, extra = {}) => {
      const server = await startServer(store.env(where), extra);
      servers.push(server);
      return server;
    };
    const results = { backend, counts, runs };

    // 1. Start-up and idle RSS.
    results.startup = {};
    results.readyRss = {};
    results.idleRss = {};
    for (const count of counts.startup) {
      const where = await store.make(`startup-${count}`, count);
      // A first start, unmeasured (file cache, and on s3 the first checkpoint written from a legacy index if any).
      await stop(await start(where));
      const times = [];
      for (let i = 0; i < runs; i++) {
        const server = await start(where);
        times.push(server.readyMs);
        if (i === runs - 1) {
          await sleep(2000);
          if (server.child.exitCode !== null || server.child.signalCode !== null) throw new Error(`the server with ${count} packages exited (${server.child.exitCode ?? server.child.signalCode}) while idle`);
          results.readyRss[count] = await rss(server.pid);
          // Idle: V8 gives back what start-up left (the index's text, parse garbage) ~10 s after allocation stops.
          await sleep(IDLE_MS - 2000);
          results.idleRss[count] = await rss(server.pid);
        }
        await stop(server);
      }
      results.startup[count] = times;
    }

    // 2. and 3. The same server shapes at 100 and at 100,000 packages.
    const smallWhere = await store.make(`small-${counts.small}`, counts.small);
    const largeWhere = counts.startup.includes(counts.large) ? `startup-${counts.large}` : await store.make(`large-${counts.large}`, counts.large);
    const small = await start(smallWhere);
    const large = await start(largeWhere);
    const zips = await Promise.all(Array.from({ length: uploads * 2 + 2 }, (_, i) => smallZip(i)));
    // One upload each first, unmeasured: the vetting worker starts on the first.
    await uploadOnce(small.url, 'spec-kit-template-warmup-sh-v0.0.1.zip', zips.at(-1));
    await uploadOnce(large.url, 'spec-kit-template-warmup-sh-v0.0.1.zip', zips.at(-2));
    const writes = s3 ? await store.indexWrites(largeWhere, () => uploadOnce(large.url, 'spec-kit-template-probe-sh-v0.0.2.zip', zips.at(-1))) : null;
    const latency = { small: [], large: [] };
    for (let i = 0; i < uploads; i++) {
      latency.small.push(await uploadOnce(small.url, `spec-kit-template-bench${i}-sh-v1.${i}.0.zip`, zips[2 * i]));
      latency.large.push(await uploadOnce(large.url, `spec-kit-template-bench${i}-sh-v1.${i}.0.zip`, zips[2 * i + 1]));
    }
    results.upload = latency;
    results.indexWrites = writes;

    // Cached reads: what was just uploaded is in the index; no write happens while they are measured.
    const etag = async (url) => {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
      return res.headers.get('etag');
    };
    results.reads = {};
    for (const [label, path, conditional] of [
      ['1 KiB download', '/assets/small.zip', false],
      ['/latest 304', '/latest', true],
    ]) {
      const tags = conditional ? [await etag(small.url + path), await etag(large.url + path)] : [null, null];
      const a = [];
      const b = [];
      for (let i = 0; i < runs; i++) {
        a.push(await wrk(small.url + path, seconds, tags[0]));
        b.push(await wrk(large.url + path, seconds, tags[1]));
      }
      results.reads[label] = { small: a, large: b };
    }
    await stop(small);
    await stop(large);
    return results;
  } finally {
    for (const server of servers) server.child.kill('SIGKILL');
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    if (!opts.work) await rm(work, { recursive: true, force: true });
  }
}

/** The figures as a Markdown table (goal and whether it is met per row). */
export function renderScale(r) {
  const rows = [];
  const add = (what, value, goal, met) => rows.push(`| ${what} | ${value} | ${goal} | ${met === null ? '' : met ? 'yes' : 'no'} |`);
  for (const [count, times] of Object.entries(r.startup)) {
    const m = median(times);
    const goal = Number(count) >= 100_000 ? 2000 : 500;
    add(`start-up to ready, ${Number(count).toLocaleString('en')} packages (${r.backend})`, `${m.toFixed(0)} ms (${Math.min(...times).toFixed(0)}–${Math.max(...times).toFixed(0)})`, `≤ ${goal} ms`, m <= goal);
  }
  for (const [count, bytes] of Object.entries(r.readyRss ?? {})) {
    add(`RSS 2 s after ready, ${Number(count).toLocaleString('en')} packages`, `${(bytes / MiB).toFixed(0)} MiB`, '', null);
  }
  for (const [count, bytes] of Object.entries(r.idleRss)) {
    add(`idle RSS (${IDLE_MS / 1000} s after ready, no requests), ${Number(count).toLocaleString('en')} packages`, `${(bytes / MiB).toFixed(0)} MiB`, Number(count) <= 10_000 ? '≤ 80 MiB' : '', Number(count) <= 10_000 ? bytes / MiB <= 80 : null);
  }
  const up = median(r.upload.large) / median(r.upload.small);
  add(`small upload latency, ${r.counts.large.toLocaleString('en')} / ${r.counts.small} packages`, `${median(r.upload.large).toFixed(1)} ms / ${median(r.upload.small).toFixed(1)} ms = ${up.toFixed(2)}×`, '≤ 1.3×', up <= 1.3);
  for (const [label, { small, large }] of Object.entries(r.reads)) {
    const ratio = median(small.map((x) => x.rps)) / median(large.map((x) => x.rps));
    add(`${label}, ${r.counts.large.toLocaleString('en')} / ${r.counts.small} packages (time per request)`, `${median(large.map((x) => x.rps)).toFixed(0)} req/s / ${median(small.map((x) => x.rps)).toFixed(0)} req/s = ${ratio.toFixed(2)}×`, '≤ 1.3×', ratio <= 1.3);
  }
  if (r.indexWrites) add(`index objects written by one upload, ${r.counts.large.toLocaleString('en')} packages (s3)`, `${r.indexWrites.objects} (${r.indexWrites.keys.join(', ')}; ${r.indexWrites.bytes} bytes)`, 'O(1)', r.indexWrites.objects <= 2);
  return ['| measure | value | goal | met |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** Stores on the filesystem: `<work>/<name>/.release-server/` with one checkpoint and BLOBS blobs. */
function fsStores(work) {
  return {
    env: (name) => ({ STORAGE_PATH: join(work, name) }),
    async make(name, count) {
      const state = join(work, name, '.release-server');
      await rm(join(work, name), { recursive: true, force: true });
      await mkdir(join(state, 'index'), { recursive: true });
      const blobs = [];
      for (let j = 0; j < Math.min(BLOBS, count) + 1; j++) {
        const body = j === 0 ? Buffer.alloc(1024, 7) : Buffer.from(`package ${j}`);
        const sha256 = createHash('sha256').update(body).digest('hex');
        await mkdir(join(state, 'blobs', sha256.slice(0, 2)), { recursive: true });
        await writeFile(join(state, 'blobs', sha256.slice(0, 2), sha256), body);
        blobs.push({ sha256, size: body.length, blob: sha256 });
      }
      await writeFile(join(state, 'index', '000000000001.json'), checkpoint(records(count, blobs)));
      return name;
    },
  };
}

/** Stores on s3: a bucket per store, prefix rs/, one checkpoint and BLOBS blobs. */
async function s3Stores(s3) {
  const { S3Client, CreateBucketCommand, PutObjectCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint: s3.S3_ENDPOINT,
    region: s3.S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.AWS_ACCESS_KEY_ID, secretAccessKey: s3.AWS_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const bucketOf = (name) => `scale-${name}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  const listIndex = async (bucket) => {
    const seen = new Map();
    let token;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'rs/', ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (!o.Key.startsWith('rs/blobs/')) seen.set(o.Key, `${o.ETag}/${o.Size}`);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return seen;
  };
  return {
    env: (name) => ({ ...s3, STORAGE_BACKEND: 's3', S3_BUCKET: bucketOf(name), S3_PREFIX: 'rs/', S3_FORCE_PATH_STYLE: 'true', STORAGE_PATH: '/nonexistent' }),
    async make(name, count) {
      const bucket = bucketOf(name);
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      const blobs = [];
      for (let j = 0; j < Math.min(BLOBS, count) + 1; j++) {
        const body = j === 0 ? Buffer.alloc(1024, 7) : Buffer.from(`package ${j}`);
        const key = `rs/blobs/made-${j}`;
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
        blobs.push({ sha256: createHash('sha256').update(body).digest('hex'), size: body.length, blob: key });
      }
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'rs/checkpoints/000000000001.json', Body: checkpoint(records(count, blobs)), ContentType: 'application/json' }));
      return name;
    },
    /** The index keys (not blobs) that `write` creates or changes, and their bytes. */
    async indexWrites(name, write) {
      const bucket = bucketOf(name);
      const before = await listIndex(bucket);
      await write();
      // A checkpoint, when this write is the one that triggers it, is written in the background: give it a moment.
      await sleep(500);
      const after = await listIndex(bucket);
      const keys = [...after.keys()].filter((k) => before.get(k) !== after.get(k));
      const bytes = keys.reduce((sum, k) => sum + Number(after.get(k).split('/').at(-1)), 0);
      return { objects: keys.length, keys, bytes };
    },
  };
}

/** `count` template records (tags v0.x.y, 20 agents), plus `small.zip` (1 KiB), sharing `blobs`. */
function records(count, blobs) {
  const now = Date.now();
  const out = [];
  const [smallBlob, ...rest] = blobs;
  const at = (i) => new Date(now - (count + 1 - i) * 1000).toISOString();
  for (let i = 0; i < count; i++) {
    const b = rest[i % rest.length] ?? smallBlob;
    const name = `pkg-agent${i % 20}-sh-v0.${Math.floor(i / 20)}.${i % 7}.zip`;
    const tag = /-v(\d+\.\d+\.\d+)\.zip$/.exec(name);
    out.push({ id: i + 1, name, size: b.size, sha256: b.sha256, createdAt: at(i), updatedAt: at(i), downloadCount: 0, tag: `v${tag[1]}`, kind: 'template', catalog: null, blob: b.blob });
  }
  out.push({ id: count + 1, name: 'small.zip', size: smallBlob.size, sha256: smallBlob.sha256, createdAt: at(count), updatedAt: at(count), downloadCount: 0, tag: null, kind: 'template', catalog: null, blob: smallBlob.blob });
  return out;
}

/** Version 2, seq 1: a checkpoint to the journal, and the index generation a build from before it reads too. */
function checkpoint(list) {
  return JSON.stringify({ version: 2, seq: 1, lastId: list.length, records: list });
}

/** A 1 KiB template zip, different each time (`i`). */
function smallZip(i) {
  return new Promise((resolve, reject) => {
    const zip = new yazl.ZipFile();
    zip.addBuffer(Buffer.concat([Buffer.from(`template ${i}\n`), Buffer.alloc(1000, 32)]), 'README.md', { mtime: new Date(0) });
    zip.end();
    const chunks = [];
    zip.outputStream.on('data', (c) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
  });
}

/** One upload, its latency in ms. */
async function uploadOnce(url, name, bytes) {
  const form = new FormData();
  form.append('file', new Blob([bytes]), name);
  const t0 = performance.now();
  const res = await fetch(`${url}/upload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form });
  await res.arrayBuffer();
  const ms = performance.now() - t0;
  if (res.status !== 201) throw new Error(`upload of ${name} to ${url}: ${res.status}`);
  return ms;
}

async function startServer(storeEnv, extra) {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(target, 'dist/main.js')], {
    env: { PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), AUTH_TOKEN: TOKEN, MAX_PACKAGES: '0', MAX_RELEASES: '0', CONFIG_PATH: '/nonexistent', ...storeEnv, ...extra },
    // Logs on, as in production; to /dev/null so the disk does not measure itself.
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    const res = await fetch(`${url}/readyz`).catch(() => null);
    if (res?.status === 200) break;
    if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}`);
    await sleep(5);
  }
  return { url, pid: child.pid, child, readyMs: performance.now() - t0 };
}

/** Stops a server, and resolves once it is gone (also when it was gone already, or ignores SIGTERM for 15 s). */
function stop(server) {
  return new Promise((resolve) => {
    const { child } = server;
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function wrk(url, seconds, etag) {
  if (!existsSync('/usr/bin/wrk')) throw new Error('install wrk first (apt-get install wrk)');
  const { stdout } = await run('wrk', ['-t2', '-c16', `-d${seconds}s`, ...(etag ? ['-H', `If-None-Match: ${etag}`] : []), url]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)[1]);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} error responses`);
  return { rps };
}

async function rss(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
}

function median(xs) {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function pick(object, keys) {
  return Object.fromEntries(keys.filter((k) => object[k] !== undefined).map((k) => [k, object[k]]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await scaleSection({
    backend: process.env.BACKEND === 's3' ? 's3' : 'filesystem',
    ...(process.env.RUNS ? { runs: Number(process.env.RUNS) } : {}),
    ...(process.env.UPLOADS ? { uploads: Number(process.env.UPLOADS) } : {}),
    ...(process.env.SECONDS ? { seconds: Number(process.env.SECONDS) } : {}),
    ...(process.env.REPO_DIR ? { repo: process.env.REPO_DIR } : {}),
  });
  console.log(renderScale(results));
  if (process.env.JSON) console.log(JSON.stringify(results));
}
