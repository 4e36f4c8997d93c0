// Release Server beside nginx, on this machine, in one run. `npm run bench` (after a production build).
//
// Starts the real server (node dist/main.js) and nginx (Debian's nginx-light, installed when missing) on loopback
// over the same files, alternates A B A B, and reports medians with min and max:
//   1, 2, 5. bench/transfer.mjs: a 100 MiB upload, ours (multipart, checksummed, vetted, fsynced) / a bare node
//      stream + sha256 + fsync (the durability limit) / nginx WebDAV PUT; its download, ours / nginx `sendfile on`;
//      peak RSS over idle during the upload, and across the upload and 8 parallel downloads
//   0. small requests (/healthz, a 1 KiB download, /latest answered 304): ours / bare Express 5 (bench/stand-ins/),
//      with Express + express-openapi-validator alone beside it, and nginx for scale
//   3. /latest and /packages with 1,000 packages: req/s and p99, identity and gzip, ours / nginx serving the same bytes
//   4. scale: small-package download req/s with 10,000 vs 10 packages stored; start-up to ready with 10,000
//   6. each of the six catalogs (1,000 extensions; 100 presets, workflows, steps, bundles, integrations, all
//      published through /upload): req/s, identity and gzip, ours / nginx serving the same bytes (gzip_static)
//   7. upload of a 40 MiB extension (manifest vetting included) / a template zip of the same size
//   8. s3 backend on a throwaway Ceph RGW (scripts/s3-test-server.sh): 100 MiB download and upload through the server
//      / the AWS SDK on the same RGW directly; /latest with 1,000 packages on s3 / on filesystem; idle S3 requests
//      per second of one replica
// Every package is a zip (the server refuses anything else): the 100 MiB one holds one stored member of random bytes.
//   9. flat at scale (bench/scale.mjs): start-up at 10,000 and 100,000 packages, idle RSS, a small upload and cached
//      reads at 100,000 against 100 packages, index objects per write on s3; on both backends
// It prints a table and writes BENCHMARKS.md. RUNS (default 5) and SECONDS (wrk duration, default 5) tune it.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import yazl from 'yazl';
import { renderScale, scaleSection } from './scale.mjs';
import { renderTransfer, transferSection } from './transfer.mjs';
import { curlSpeed, curlUpload, freePort, indexStore, mbs, rss, sha256File, startNginx, writeZip } from './lib.mjs';

const RUNS = Number(process.env.RUNS ?? 5);
const SECONDS = Number(process.env.SECONDS ?? 5);
const MiB = 1024 * 1024;
const BIG = 100 * MiB;
const TOKEN = 'bench-token-0123456789abcdef';
const repo = new URL('../', import.meta.url).pathname;
const run = promisify(execFile);

ensureTools();
const work = await mkdtemp('/tmp/release-server-bench-');
const servers = [];
process.on('exit', () => servers.forEach((s) => s.kill('SIGKILL')));

try {
  const results = await main();
  const report = render(results);
  console.log(report.table);
  console.log(`\n${renderScale(results.scaleFs)}\n\n${renderScale(results.scaleS3)}`);
  await writeFile(join(repo, 'BENCHMARKS.md'), report.markdown);
  console.log('\nwrote BENCHMARKS.md');
} finally {
  servers.forEach((s) => s.kill('SIGTERM'));
  await rm(work, { recursive: true, force: true });
}

async function main() {
  const results = {};
  // The 100 MiB package of the s3 section (section 8).
  const big = join(work, 'big.zip');
  await run('bash', ['-c', `head -c ${BIG} /dev/urandom > ${work}/random.bin`]);
  await writeZip(big, [['payload.bin', join(work, 'random.bin')]]);
  const bigSize = (await readFile(big)).length;
  const bigSha = await sha256File(big);

  const nginxRoot = join(work, 'nginx-root');
  await mkdir(join(nginxRoot, 'dav'), { recursive: true });
  await writeFile(join(nginxRoot, 'small.zip'), Buffer.alloc(1024, 7));

  // 1, 2 and 5. Upload and download of 100 MiB, and memory (bench/transfer.mjs, its own servers and nginx)
  const transferWork = join(work, 'transfer');
  await mkdir(transferWork);
  results.transfer = await transferSection({ work: transferWork, runs: RUNS, log: () => undefined });
  await rm(transferWork, { recursive: true, force: true });

  const nginx = await startNginx(work, nginxRoot, servers, '/small.zip');
  let server;

  // 3. /latest with 1,000 packages
  const thousand = join(work, 'ours-1000');
  await fillPackages(thousand, 1000, 'spec-kit-template');
  await indexStore(thousand);
  server = await startOurs(thousand);
  results.latest = await cachedBody(`${server.url}/latest`, nginx, 'latest.json', '/latest');
  results.packagesJson = await cachedBody(`${server.url}/packages`, nginx, 'packages.json');
  await stop(server);

  // 3b. The same /latest on a private server (read_access: token, 100 tokens, a Bearer read token) vs public
  const tokensFile = join(work, 'tokens.yaml');
  const readToken = 'bench-read-token-0000000000000099';
  await writeFile(
    tokensFile,
    Array.from({ length: 100 }, (_, i) => {
      const token = `bench-read-token-${String(i).padStart(16, '0')}`;
      return `- name: reader-${i}\n  scopes: [read]\n  sha256: ${createHash('sha256').update(token).digest('hex')}\n`;
    }).join(''),
  );
  const publicServer = await startOurs(thousand);
  const privateServer = await startOurs(thousand, { READ_ACCESS: 'token', TOKENS_FILE: tokensFile });
  results.private = await alternate(
    async () => wrk(`${privateServer.url}/latest`, ['-H', `Authorization: Bearer ${readToken}`]),
    async () => wrk(`${publicServer.url}/latest`),
  );
  await stop(publicServer);
  await stop(privateServer);

  // 4. Scale: small downloads with 10 and with 10,000 packages; start-up with 10,000
  const ten = join(work, 'ours-10');
  const tenThousand = join(work, 'ours-10000');
  await fillPackages(ten, 10, 'pkg');
  await fillPackages(tenThousand, 10000, 'pkg');
  for (const dir of [ten, tenThousand]) await writeFile(join(dir, 'small.zip'), Buffer.alloc(1024, 7));
  for (const dir of [ten, tenThousand]) await indexStore(dir);
  // A first start, unmeasured; the measured starts read the same index.
  await stop(await startOurs(tenThousand));
  const startups = [];
  for (let i = 0; i < RUNS; i++) {
    const started = await startOurs(tenThousand);
    startups.push(started.readyMs);
    await stop(started);
  }
  results.startup = startups;
  const small10 = await startOurs(ten);
  const small10k = await startOurs(tenThousand);
  results.scale = await alternate(
    async () => wrk(`${small10k.url}/assets/small.zip`),
    async () => wrk(`${small10.url}/assets/small.zip`),
  );
  results.nginxSmall = await wrk(`${nginx.url}/small.zip`);
  await stop(small10);
  results.smallRequests = await smallRequests(ten, nginx);
  await stop(small10k);

  // 6. Every catalog, each kind published through /upload (so each package was vetted, each bundle's pins checked)
  server = await startOurs(join(work, 'ours-catalog'));
  await publishExtensions(server.url, 1000);
  await publishAll(server.url, kindPackages(100));
  await mkdir(join(nginxRoot, 'catalogs'), { recursive: true });
  results.catalogs = [];
  for (const section of ['extensions', 'presets', 'workflows', 'steps', 'bundles', 'integrations']) {
    const measured = await cachedBody(`${server.url}/catalogs/${section}.json`, nginx, `catalogs/${section}.json`);
    const entries = Object.keys(JSON.parse(measured.body.toString())[section]).length;
    results.catalogs.push({ section, entries, ...measured });
  }
  await stop(server);

  // 6b. Mirroring: a sync of 1,000 extensions from a loopback source (nginx serving the catalog and the zips), each
  // fetched, sha256-checked, vetted and stored pending; beside publishing the same 1,000 through /upload.
  const mirrorZips = await Promise.all(Array.from({ length: 1000 }, (_, i) => zipOf({ 'extension.yml': extensionManifest(`mirror-ext-${i}`, '1.0.0'), 'commands/greet.md': `# Greet ${i}\n` })));
  await mkdir(join(nginxRoot, 'mirror'), { recursive: true });
  const mirrorEntries = {};
  for (const [i, zip] of mirrorZips.entries()) {
    await writeFile(join(nginxRoot, 'mirror', `ext-${i}.zip`), zip);
    mirrorEntries[`mirror-ext-${i}`] = { name: `Mirror ${i}`, version: '1.0.0', description: 'mirrored by the benchmark', download_url: `${nginx.url}/mirror/ext-${i}.zip`, sha256: createHash('sha256').update(zip).digest('hex') };
  }
  await writeFile(join(nginxRoot, 'mirror', 'catalog.json'), JSON.stringify({ schema_version: '1.0', extensions: mirrorEntries }));
  const mirrorConfig = join(work, 'mirror-config.yaml');
  await writeFile(mirrorConfig, `sources:\n  - name: bench\n    catalogs:\n      extension: ${nginx.url}/mirror/catalog.json\n    max_total_bytes: 1GiB\n`);
  results.sync = [];
  for (let i = 0; i < RUNS; i++) {
    const synced = await startOurs(join(work, `ours-sync-${i}`), { CONFIG_PATH: mirrorConfig });
    const t0 = performance.now();
    const started = await fetch(`${synced.url}/sources/bench/sync`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    if (started.status !== 202) throw new Error(`sync answered ${started.status}`);
    let report;
    for (;;) {
      report = (await (await fetch(`${synced.url}/sources/bench`)).json()).last;
      if (report?.finished_at) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (performance.now() - t0) / 1000;
    if (report.stored !== 1000) throw new Error(`the sync stored ${report.stored} of 1,000: ${JSON.stringify(report.refused.slice(0, 3))}`);
    const peak = (await rss(synced.pid)).peak;
    await stop(synced);
    const uploaded = await startOurs(join(work, `ours-upload-1000-${i}`));
    const u0 = performance.now();
    await publishAll(uploaded.url, mirrorZips.map((zip) => ['extension.zip', zip]));
    const uploadSeconds = (performance.now() - u0) / 1000;
    await stop(uploaded);
    results.sync.push({ perSecond: 1000 / seconds, peak, uploadPerSecond: 1000 / uploadSeconds });
  }

  // 7. A 40 MiB extension against a 40 MiB template: the same four 10 MB stored members of random bytes
  const members = [];
  for (let i = 0; i < 4; i++) {
    const path = join(work, `member-${i}.bin`);
    await run('bash', ['-c', `head -c ${10 * 1000 * 1000} /dev/urandom > ${path}`]);
    members.push([`data/part-${i}.bin`, path]);
  }
  const extensionZip = join(work, 'extension-40.zip');
  const templateZip = join(work, 'template-40.zip');
  await writeZip(extensionZip, members, { 'extension.yml': extensionManifest('bench-large', '1.0.0'), 'commands/greet.md': '# Greet\n' });
  await writeZip(templateZip, members, { 'README.md': 'a template of the same size\n', 'commands/greet.md': '# Greet\n' });
  const extensionSize = (await readFile(extensionZip)).length;
  const templateSize = (await readFile(templateZip)).length;
  results.vettingSizes = { extension: extensionSize, template: templateSize };
  server = await startOurs(join(work, 'ours-vetting'));
  results.vetting = await alternate(
    async () => curlUpload(['-H', `Authorization: Bearer ${TOKEN}`, '-F', `file=@${extensionZip}`, `${server.url}/upload?overwrite=true`], extensionSize, 200, 201),
    async () => curlUpload(['-H', `Authorization: Bearer ${TOKEN}`, '-F', `file=@${templateZip}`, `${server.url}/upload?overwrite=true`], templateSize, 200, 201),
  );
  results.vettingNginx = [];
  for (let i = 0; i < RUNS; i++) results.vettingNginx.push(await curlUpload(['-T', extensionZip, `${nginx.url}/dav/extension-40.zip`], extensionSize, 201, 204));
  await stop(server);
  await stop(nginx);
  results.s3 = await s3Section(big, bigSize, bigSha, thousand);

  // 9. Flat at scale and start-up at 10,000 and 100,000 packages, on both backends (bench/scale.mjs)
  results.scaleFs = await scaleSection({ backend: 'filesystem', runs: RUNS, seconds: SECONDS });
  results.scaleS3 = await scaleSection({ backend: 's3', runs: RUNS, seconds: SECONDS });
  return results;
}

/** Section 8: the s3 backend against the SDK on the same RGW, and against the filesystem backend. */
async function s3Section(big, bigSize, bigSha, thousandDir) {
  const { S3Client, CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } = await import('@aws-sdk/client-s3');
  const { Upload } = await import('@aws-sdk/lib-storage');
  const rgwDir = join(work, 'rgw');
  const script = join(repo, 'scripts/s3-test-server.sh');
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
    const s3Env = (bucket) => ({ ...env, STORAGE_BACKEND: 's3', S3_BUCKET: bucket, S3_PREFIX: 'rs/' });
    await client.send(new CreateBucketCommand({ Bucket: 'bench' }));
    const server = await startOurs(join(work, 'unused-s3'), s3Env('bench'));
    await curlUpload(['-H', `Authorization: Bearer ${TOKEN}`, '-F', `file=@${big}`, `${server.url}/upload`], bigSize, 201);
    // The one blob in the bucket (the journal names it; listing is simpler).
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'bench', Prefix: 'rs/blobs/' }));
    const blob = listed.Contents.find((o) => o.Size === bigSize).Key;
    const sdkDownload = async () => {
      const t0 = performance.now();
      const res = await client.send(new GetObjectCommand({ Bucket: 'bench', Key: blob }));
      let n = 0;
      for await (const chunk of res.Body) n += chunk.length;
      if (n !== bigSize) throw new Error(`SDK read ${n} bytes`);
      return n / ((performance.now() - t0) / 1000);
    };
    const download = await alternate(async () => curlSpeed(`${server.url}/assets/big.zip`), sdkDownload);
    const sdkUpload = async () => {
      const t0 = performance.now();
      // The server's own settings: 8 MiB parts, two in flight.
      await new Upload({ client, params: { Bucket: 'bench', Key: 'direct/big.zip', Body: createReadStream(big) }, partSize: 8 * MiB, queueSize: 2 }).done();
      return bigSize / ((performance.now() - t0) / 1000);
    };
    const upload = await alternate(
      async () => curlUpload(['-H', `Authorization: Bearer ${TOKEN}`, '-H', `X-Checksum-Sha256: ${bigSha}`, '-F', `file=@${big}`, `${server.url}/upload?overwrite=true`], bigSize, 200),
      sdkUpload,
    );
    await stop(server);

    // /latest with 1,000 packages: an index of the same records the filesystem run adopted, all on one blob.
    const fsServer = await startOurs(thousandDir);
    const packages = await (await fetch(`${fsServer.url}/packages?format=json`)).json();
    await client.send(new CreateBucketCommand({ Bucket: 'bench-latest' }));
    await client.send(new PutObjectCommand({ Bucket: 'bench-latest', Key: 'rs/blobs/shared', Body: 'package' }));
    const records = packages.map((p, i) => ({ id: i + 1, name: p.name, size: p.size, sha256: p.sha256, createdAt: p.created_at, updatedAt: p.updated_at, downloadCount: 0, tag: p.tag ?? null, kind: 'template', catalog: null, blob: 'rs/blobs/shared' }));
    // An index.json as the version before the journal wrote it: the server takes it in once, as its first checkpoint.
    await client.send(new PutObjectCommand({ Bucket: 'bench-latest', Key: 'rs/index.json', Body: JSON.stringify({ version: 1, lastId: records.length, records }) }));
    const s3Server = await startOurs(join(work, 'unused-s3-latest'), s3Env('bench-latest'));
    const latest = await alternate(async () => wrk(`${s3Server.url}/latest`), async () => wrk(`${fsServer.url}/latest`));

    // One process per core (WORKERS=2 here) over the same bucket, and over a copy of the filesystem store (one server
    // owns a directory), against one process of each and bare Express.
    const twoWorkers = await startOurs(join(work, 'unused-s3-workers'), { ...s3Env('bench-latest'), WORKERS: '2' });
    const fsWorkersDir = `${thousandDir}-workers`;
    await run('cp', ['-a', thousandDir, fsWorkersDir]);
    const twoFs = await startOurs(fsWorkersDir, { WORKERS: '2' });
    const express = await startStandIn('express.mjs');
    const workers = {
      healthz: await rotate({ two: () => wrk(`${twoWorkers.url}/healthz`), twoFs: () => wrk(`${twoFs.url}/healthz`), one: () => wrk(`${s3Server.url}/healthz`), express: () => wrk(`${express.url}/healthz`) }),
      latest: await rotate({ two: () => wrk(`${twoWorkers.url}/latest`), one: () => wrk(`${s3Server.url}/latest`), twoFs: () => wrk(`${twoFs.url}/latest`), oneFs: () => wrk(`${fsServer.url}/latest`) }),
    };
    await stop(twoWorkers);
    await stop(twoFs);
    await stop(express);

    // Idle: what one replica asks of the store per second when nothing happens (storage operations from /metrics).
    const operations = async () => {
      const text = await (await fetch(`${s3Server.url}/metrics`)).text();
      return [...text.matchAll(/^release_server_storage_operation_duration_seconds_count\{[^}]*backend="s3"[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const before = await operations();
    const idleSeconds = 30;
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idle = ((await operations()) - before) / idleSeconds;
    await stop(s3Server);
    await stop(fsServer);
    return { download, upload, latest, idle, idleSeconds, workers };
  } finally {
    await run('bash', [script, 'stop', rgwDir]).catch(() => undefined);
  }
}

function extensionManifest(id, version) {
  return `schema_version: "1.0"
extension:
  id: ${id}
  name: Bench ${id}
  version: "${version}"
  description: An extension published by the benchmark
  author: Bench
  license: MIT
requires:
  speckit_version: ">=0.1.0"
provides:
  commands:
    - name: speckit.${id}.greet
      file: commands/greet.md
tags: [bench]
`;
}

/** `count` packages of each kind but extensions, as a CI pipeline would publish them: name and bytes. */
function kindPackages(count) {
  const packages = [];
  for (let i = 0; i < count; i++) {
    packages.push(['preset.zip', zipOf({ 'preset.yml': `schema_version: "1.0"\npreset:\n  id: bench-preset-${i}\n  name: Bench preset ${i}\n  version: "1.0.${i}"\n  description: A preset published by the benchmark\n  author: Bench\nrequires:\n  speckit_version: ">=0.1.0"\nprovides:\n  templates:\n    - type: template\n      name: spec-template\n      file: templates/spec-template.md\n`, 'templates/spec-template.md': `# Spec ${i}\n` })]);
    packages.push(['workflow.yml', Promise.resolve(Buffer.from(`schema_version: "1.0"\nworkflow:\n  id: bench-flow-${i}\n  name: Bench flow ${i}\n  version: "1.0.${i}"\n  description: A workflow published by the benchmark\nsteps:\n  - id: plan\n    command: speckit.plan\n`))]);
    packages.push(['step.zip', zipOf({ 'step.yml': `step:\n  type_key: bench-step-${i}\n  name: Bench step ${i}\n  version: "1.0.${i}"\n  description: A step published by the benchmark\n`, '__init__.py': `# step ${i}\n`, 'helpers/util.py': 'VALUE = 1\n' })]);
    packages.push(['bundle.yml', Promise.resolve(Buffer.from(`schema_version: "1.0"\nbundle:\n  id: bench-bundle-${i}\n  name: Bench bundle ${i}\n  version: "1.0.${i}"\n  role: developer\n  description: A bundle published by the benchmark\n  author: Bench\n  license: MIT\nrequires:\n  speckit_version: ">=0.1.0"\nprovides:\n  extensions:\n    - id: bench-ext-${i}\n      version: "1.${i % 10}.0"\n`))]);
    packages.push(['integration.yml', Promise.resolve(Buffer.from(`schema_version: "1.0"\nintegration:\n  id: bench-agent-${i}\n  name: Bench agent ${i}\n  version: "1.0.${i}"\n  description: An integration published by the benchmark\n  author: Bench\n  repository: https://example.com/bench\n  license: MIT\nrequires:\n  speckit_version: ">=0.1.0"\nprovides:\n  scripts:\n    - update-context.sh\n`))]);
  }
  return packages;
}

function zipOf(files) {
  const zip = new yazl.ZipFile();
  for (const [name, text] of Object.entries(files)) zip.addBuffer(Buffer.from(text), name, { mtime: new Date(0) });
  zip.end();
  return new Promise((resolve) => {
    const chunks = [];
    zip.outputStream.on('data', (c) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/** Publishes [name, bytes] pairs, 8 uploads at a time; every one must be stored. */
async function publishAll(url, packages) {
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < packages.length) {
        const [name, bytes] = packages[next++];
        const form = new FormData();
        form.append('file', new Blob([await bytes]), name);
        const res = await fetch(`${url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` } });
        if (res.status !== 201) throw new Error(`publishing ${name} answered ${res.status}: ${await res.text()}`);
      }
    }),
  );
}

/** Publishes `count` small extensions, 8 uploads at a time. */
function publishExtensions(url, count) {
  const zips = Array.from({ length: count }, (_, i) => ['extension.zip', zipOf({ 'extension.yml': extensionManifest(`bench-ext-${i}`, `1.${i % 10}.0`), 'commands/greet.md': `# Greet ${i}\n` })]);
  return publishAll(url, zips);
}

/**
 * Small requests, with request and response validation, authorization, metrics and request logs all on, against
 * bare Express (the reference), Express with the contract's validator alone (what the validator leaves), and nginx
 * for scale: /healthz, a 1 KiB download, and /latest answered 304 from its ETag.
 */
async function smallRequests(store, nginx) {
  const ours = await startOurs(store);
  const express = await startStandIn('express.mjs');
  const validator = await startStandIn('express-validator.mjs');
  const etag = (await fetch(`${ours.url}/latest`)).headers.get('etag');
  const notModified = ['-H', `If-None-Match: ${etag}`];
  if ((await fetch(`${ours.url}/latest`, { headers: { 'If-None-Match': etag } })).status !== 304) throw new Error('/latest did not answer 304 to its own ETag');
  const result = {
    healthz: await rotate({ ours: () => wrk(`${ours.url}/healthz`), express: () => wrk(`${express.url}/healthz`), validator: () => wrk(`${validator.url}/healthz`) }),
    small: await rotate({ ours: () => wrk(`${ours.url}/assets/small.zip`), express: () => wrk(`${express.url}/assets/small.zip`), nginx: () => wrk(`${nginx.url}/small.zip`) }),
    latest304: await rotate({ ours: () => wrk(`${ours.url}/latest`, notModified), express: () => wrk(`${express.url}/latest`) }),
  };
  for (const server of [ours, express, validator]) await stop(server);
  return result;
}

/**
 * A body ours keeps built (cached), against nginx serving the same bytes from a file (and, for gzip, the same
 * bytes gzipped beside it, `gzip_static on`): req/s and p99, identity and gzip, alternating.
 */
async function cachedBody(url, nginx, file, nginxPath = `/${file}`) {
  const body = Buffer.from(await (await fetch(url, { headers: { 'Accept-Encoding': 'identity' } })).arrayBuffer());
  await writeFile(join(nginx.root, file), body);
  await writeFile(join(nginx.root, `${file}.gz`), gzipSync(body, { level: 9 }));
  const gzip = ['-H', 'Accept-Encoding: gzip'];
  const ours = await fetch(url, { headers: { 'Accept-Encoding': 'gzip' } });
  const theirs = await fetch(`${nginx.url}${nginxPath}`, { headers: { 'Accept-Encoding': 'gzip' } });
  const encodings = [ours, theirs].map((r) => r.headers.get('content-encoding'));
  if (body.length >= 1024 && encodings.some((e) => e !== 'gzip')) throw new Error(`${url}: gzip not served by both (${encodings.join(', ')})`);
  return {
    body,
    bytes: body.length,
    identity: await alternate(() => wrk(url), () => wrk(`${nginx.url}${nginxPath}`)),
    gzip: await alternate(() => wrk(url, gzip), () => wrk(`${nginx.url}${nginxPath}`, gzip)),
  };
}

/** Each contender in turn, RUNS times after a warm-up of each, so drift hits all alike. */
async function rotate(contenders) {
  const results = Object.fromEntries(Object.keys(contenders).map((name) => [name, []]));
  for (const measure of Object.values(contenders)) await measure();
  for (let i = 0; i < RUNS; i++) for (const [name, measure] of Object.entries(contenders)) results[name].push(await measure());
  return results;
}

/** A stand-in from bench/stand-ins/, started on a free port. */
async function startStandIn(file) {
  const port = await freePort();
  const child = spawn(process.execPath, [join(repo, 'bench/stand-ins', file)], { env: { PATH: process.env.PATH, PORT: String(port), NODE_ENV: 'production' }, stdio: ['ignore', 'ignore', 'inherit'] });
  servers.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if ((await fetch(`${url}/healthz`).catch(() => null))?.status === 200) break;
    if (child.exitCode !== null) throw new Error(`${file} exited ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { url, pid: child.pid, child, kill: (s) => child.kill(s) };
}

/** A then B, RUNS times, so drift on a shared machine hits both alike. */
async function alternate(a, b) {
  const ours = [];
  const theirs = [];
  await a(); // warm-up: page cache, JIT, connections
  await b();
  for (let i = 0; i < RUNS; i++) {
    ours.push(await a());
    theirs.push(await b());
  }
  return { ours, theirs };
}

async function startOurs(storage, extraEnv = {}) {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(repo, 'dist/main.js')], {
    env: { PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), STORAGE_PATH: storage, AUTH_TOKEN: TOKEN, MAX_PACKAGES: '0', MAX_UPLOAD_BYTES: '1GiB', CONFIG_PATH: '/nonexistent', ...extraEnv },
    // Logs on, as in production; written to /dev/null so the disk does not measure itself.
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  servers.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    const res = await fetch(`${url}/readyz`).catch(() => null);
    if (res?.status === 200) break;
    if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return { url, pid: child.pid, child, kill: (s) => child.kill(s), readyMs: performance.now() - t0 };
}

async function stop(server) {
  server.kill('SIGTERM');
  await new Promise((r) => (server.child.exitCode !== null ? r() : server.child.once('exit', r)));
}

/** wrk, 2 threads, 16 connections: requests per second and p99 latency in ms. */
async function wrk(url, extra = []) {
  const { stdout } = await run('wrk', ['-t2', '-c16', `-d${SECONDS}s`, '--latency', ...extra, url]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)[1]);
  const [, value, unit] = /99%\s+([\d.]+)(us|ms|s)/.exec(stdout);
  const p99 = Number(value) * { us: 0.001, ms: 1, s: 1000 }[unit];
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} error responses`);
  return { rps, p99 };
}

async function fillPackages(dir, count, prefix) {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    await writeFile(join(dir, `${prefix}-agent${i % 20}-sh-v0.${Math.floor(i / 20)}.${i % 7}.zip`), `package ${i}`);
  }
}

function ensureTools() {
  const missing = [['nginx', 'nginx-light'], ['wrk', 'wrk'], ['curl', 'curl']].filter(([cmd]) => !['/usr/sbin/', '/usr/bin/'].some((d) => existsSync(d + cmd)));
  if (missing.length === 0) return;
  if (process.getuid() !== 0) throw new Error(`install ${missing.map(([, p]) => p).join(' ')} first`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing.map(([, p]) => p)], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

function median(xs) {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}
function spread(xs, f) {
  return `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}
function reqs(x) {
  return `${x.toFixed(0)} req/s`;
}
function ms(x) {
  return `${x.toFixed(1)} ms`;
}

function render(r) {
  const rows = [];
  const ratio = (a, b) => median(a) / median(b);
  const add = (name, ours, reference, value, goal, met) => rows.push({ name, ours, reference, value, goal, met });
  const rps = (xs) => xs.map((x) => x.rps);
  const small = [
    ['/healthz', r.smallRequests.healthz],
    ['1 KiB download (/assets/small.zip)', r.smallRequests.small],
    ['/latest answered 304', r.smallRequests.latest304],
  ];
  for (const [name, m] of small) {
    const x = median(rps(m.ours)) / median(rps(m.express));
    add(`small request: ${name}`, spread(rps(m.ours), reqs), `bare Express ${spread(rps(m.express), reqs)}`, `${x.toFixed(2)}×`, '≥ 0.8×', x >= 0.8);
  }
  const v = r.smallRequests.healthz;
  const vx = median(rps(v.validator)) / median(rps(v.express));
  add('small request: /healthz, Express + express-openapi-validator alone', spread(rps(v.validator), reqs), `bare Express ${spread(rps(v.express), reqs)}`, `${vx.toFixed(2)}×`, '(the ceiling it leaves)', null);
  add('small request: 1 KiB download, nginx for scale', '', `nginx ${spread(rps(r.smallRequests.small.nginx), reqs)}`, '', '', null);
  const t = r.transfer;
  const pairs = (a, b) => a.map((x, i) => x / b[i]);
  const range = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}×`;
  const up = pairs(t.upload.ours, t.upload.bare);
  add('upload 100 MiB (multipart, vetted, fsynced)', spread(t.upload.ours, mbs), `bare node stream + sha256 + fsync ${spread(t.upload.bare, mbs)}; nginx PUT ${spread(t.upload.nginx, mbs)}`, `${median(up).toFixed(2)}× (pairs ${range(up)})`, '≥ 0.8×', median(up) >= 0.8);
  const down = pairs(t.download.ours, t.download.nginx);
  add('download 100 MiB', spread(t.download.ours, mbs), `nginx sendfile ${spread(t.download.nginx, mbs)}`, `${median(down).toFixed(2)}× (pairs ${range(down)})`, '≥ 0.95×, no pair < 0.8×', median(down) >= 0.95 && Math.min(...down) >= 0.8);
  const noise = pairs(t.download.nginxAgain, t.download.nginx);
  add('download 100 MiB, nginx / nginx (the noise)', '', `nginx sendfile again, the same rounds`, `${median(noise).toFixed(2)}× (pairs ${range(noise)})`, '', null);
  const overIdle = median(t.memory.uploadOverIdle) / MiB;
  add('peak RSS over idle during a 100 MiB upload', `+${overIdle.toFixed(0)} MiB`, '', `+${overIdle.toFixed(0)} MiB`, '≤ +32 MiB', overIdle <= 32);
  const cachedRows = (name, m) => {
    for (const encoding of ['identity', 'gzip']) {
      const { ours, theirs } = m[encoding];
      const x = median(rps(ours)) / median(rps(theirs));
      add(`${name} (${(m.bytes / 1024).toFixed(0)} KiB), ${encoding}`, spread(rps(ours), reqs), `nginx static ${spread(rps(theirs), reqs)}`, `${x.toFixed(2)}×`, '≥ 0.8×', x >= 0.8);
      const p99 = median(ours.map((y) => y.p99)) / median(theirs.map((y) => y.p99));
      add(`${name}, ${encoding}, p99`, spread(ours.map((y) => y.p99), ms), `nginx ${spread(theirs.map((y) => y.p99), ms)}`, `${p99.toFixed(1)}×`, '≤ 2×', p99 <= 2);
    }
  };
  cachedRows('/latest, 1,000 packages', r.latest);
  cachedRows('/packages, 1,000 packages', r.packagesJson);
  const privateRps = r.private.ours.map((x) => x.rps);
  const publicRps = r.private.theirs.map((x) => x.rps);
  const pv = median(privateRps) / median(publicRps);
  add('/latest private (100 tokens, Bearer) vs public', spread(privateRps, reqs), `public ${spread(publicRps, reqs)}`, `${pv.toFixed(2)}×`, '≥ 0.9×', pv >= 0.9);
  const at10k = r.scale.ours.map((x) => x.rps);
  const at10 = r.scale.theirs.map((x) => x.rps);
  const sc = median(at10k) / median(at10);
  add('small download, 10,000 vs 10 packages', spread(at10k, reqs), `10 packages ${spread(at10, reqs)}`, `${sc.toFixed(2)}×`, '≥ 0.9×', sc >= 0.9);
  add('small download, nginx for scale', '', reqs(r.nginxSmall.rps), '', '', null);
  const st = median(r.startup);
  add('start-up to ready, 10,000 packages', spread(r.startup, ms), '', ms(st), '≤ 500 ms', st <= 500);
  const idle = median(t.memory.idleAll) / MiB;
  const peak = median(t.memory.peakAll) / MiB;
  add('idle RSS (one 100 MiB package stored)', `${idle.toFixed(0)} MiB`, '', `${idle.toFixed(0)} MiB`, '≤ 80 MiB', idle <= 80);
  add('peak RSS, 100 MiB upload + 8×100 MiB downloads', `${peak.toFixed(0)} MiB`, '', `${peak.toFixed(0)} MiB`, '≤ 110 MiB', peak <= 110);

  const syncRate = r.sync.map((x) => x.perSecond);
  const uploadRate = r.sync.map((x) => x.uploadPerSecond);
  const syncRatio = median(syncRate) / median(uploadRate);
  const entries = (v) => `${v.toFixed(0)} entries/s`;
  add('sync of 1,000 extensions from a loopback source', spread(syncRate, entries), `the same 1,000 via /upload ${spread(uploadRate, entries)}`, `${syncRatio.toFixed(2)}×`, '', null);
  add('peak RSS during that sync', spread(r.sync.map((x) => x.peak), (v) => `${(v / MiB).toFixed(0)} MiB`), '', '', '', null);
  for (const c of r.catalogs) cachedRows(`/catalogs/${c.section}.json, ${c.entries.toLocaleString('en')} entries`, c);
  const vt = ratio(r.vetting.ours, r.vetting.theirs);
  add('upload 40 MiB extension (vetted) vs template', spread(r.vetting.ours, mbs), `template ${spread(r.vetting.theirs, mbs)}`, `${vt.toFixed(2)}×`, '≥ 0.8×', vt >= 0.8);
  const vn = median(r.vetting.ours) / median(r.vettingNginx);
  add('upload 40 MiB extension vs nginx PUT', '', `nginx WebDAV PUT ${spread(r.vettingNginx, mbs)}`, `${vn.toFixed(2)}×`, '', null);

  const s3dl = ratio(r.s3.download.ours, r.s3.download.theirs);
  add('s3: download 100 MiB', spread(r.s3.download.ours, mbs), `SDK GetObject on the same RGW ${spread(r.s3.download.theirs, mbs)}`, `${s3dl.toFixed(2)}×`, '≥ 0.9×', s3dl >= 0.9);
  const s3ul = ratio(r.s3.upload.ours, r.s3.upload.theirs);
  add('s3: upload 100 MiB', spread(r.s3.upload.ours, mbs), `SDK lib-storage Upload ${spread(r.s3.upload.theirs, mbs)}`, `${s3ul.toFixed(2)}×`, '≥ 0.9×', s3ul >= 0.9);
  const s3lt = median(r.s3.latest.ours.map((x) => x.rps)) / median(r.s3.latest.theirs.map((x) => x.rps));
  add('s3: /latest, 1,000 packages', spread(r.s3.latest.ours.map((x) => x.rps), reqs), `filesystem backend ${spread(r.s3.latest.theirs.map((x) => x.rps), reqs)}`, `${s3lt.toFixed(2)}×`, '≈ 1× (from memory)', s3lt >= 0.9);
  const w = r.s3.workers;
  const wx = median(rps(w.healthz.two)) / median(rps(w.healthz.express));
  add('WORKERS=2 (s3): /healthz', spread(rps(w.healthz.two), reqs), `bare Express ${spread(rps(w.healthz.express), reqs)}; one process ${spread(rps(w.healthz.one), reqs)}`, `${wx.toFixed(2)}×`, '≥ 0.8×', wx >= 0.8);
  const wl = median(rps(w.latest.two)) / median(rps(w.latest.one));
  add('WORKERS=2 (s3): /latest, 1,000 packages', spread(rps(w.latest.two), reqs), `one process ${spread(rps(w.latest.one), reqs)}`, `${wl.toFixed(2)}×`, '', null);
  const wfx = median(rps(w.healthz.twoFs)) / median(rps(w.healthz.express));
  add('WORKERS=2 (filesystem): /healthz', spread(rps(w.healthz.twoFs), reqs), `bare Express ${spread(rps(w.healthz.express), reqs)}`, `${wfx.toFixed(2)}×`, '≥ 0.8×', wfx >= 0.8);
  const wfl = median(rps(w.latest.twoFs)) / median(rps(w.latest.oneFs));
  add('WORKERS=2 (filesystem): /latest, 1,000 packages', spread(rps(w.latest.twoFs), reqs), `one process ${spread(rps(w.latest.oneFs), reqs)}`, `${wfl.toFixed(2)}×`, '', null);
  add('s3: idle requests per second, one replica', `${r.s3.idle.toFixed(2)} /s over ${r.s3.idleSeconds} s`, '', `${r.s3.idle.toFixed(2)} /s`, '≤ a couple', r.s3.idle <= 2);

  const head = ['figure', 'ours: median (min–max)', 'reference', 'result', 'goal', 'met'];
  const body = rows.map((x) => [x.name, x.ours, x.reference, x.value, x.goal, x.met === null ? '' : x.met ? 'yes' : 'NO']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  const table = [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
  const nginxVersion = execFileSync('bash', ['-c', 'nginx -v 2>&1'], { encoding: 'utf8' }).trim();
  const markdown = `# Benchmarks

Release Server beside nginx on the same machine, in the same run, over the same files on the same disk,
alternating A B A B (${RUNS} runs each after a warm-up), medians with min–max. Written by \`npm run bench\`.

- date: ${new Date().toISOString()}
- machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB memory
- node ${process.version}; ${nginxVersion.trim()} (one worker process, \`sendfile on\`, access log off); wrk ${SECONDS} s, 2 threads, 16 connections
- ours: \`node dist/main.js\`, NODE_ENV=production, logs on (to /dev/null), response validation on

| ${head.join(' | ')} |
| ${head.map(() => '---').join(' | ')} |
${body.map((b) => `| ${b.join(' | ')} |`).join('\n')}

## Transfers and memory (\`bench/transfer.mjs\`)

\`\`\`
${renderTransfer(r.transfer)}
\`\`\`

## Flat at scale, and start-up (\`bench/scale.mjs\`)

Filesystem:

${renderScale(r.scaleFs)}

s3 (a throwaway Ceph RGW):

${renderScale(r.scaleS3)}

## Commands

- transfers and memory (\`bench/transfer.mjs\`, its header says more): curl uploads of one 100 MiB zip, in turn to ours
  (\`-F file=@big.zip\` with \`X-Checksum-Sha256\`, vetted and fsynced), to a bare node:http server that streams the body to
  a file with sha256 and one fsync (the durability limit), and to nginx (WebDAV PUT, for scale), a \`sync\` before each;
  curl downloads of it from ours, from nginx (\`sendfile on\`) and from nginx again, at least 15 rounds, ratios per
  pair (nginx against itself is the noise of that measure here); VmHWM over idle during an upload,
  and across an upload and 8 parallel downloads
- small requests: the same wrk on \`/healthz\`, \`/assets/small.zip\` (1 KiB) and \`/latest\` with \`If-None-Match\` (304), ours
  with request and response validation, authorization, metrics and request logs all on; the reference is bare Express 5
  with one JSON route (\`bench/stand-ins/express.mjs\`), and \`bench/stand-ins/express-validator.mjs\` is Express with
  express-openapi-validator on our contract alone, patched as ours is (what the validator leaves of Express); nginx on the 1 KiB file for scale
- cached bodies (\`/latest\`, \`/packages\` at 1,000 packages, each catalog): \`wrk -t2 -c16 -d${SECONDS}s --latency URL\`,
  identity and with \`-H 'Accept-Encoding: gzip'\`; nginx serves the bytes ours answered, as a static file, with the
  same bytes gzipped beside it (\`gzip_static on\`)
- private \`/latest\`: the same wrk with \`-H 'Authorization: Bearer …'\` against a server with \`READ_ACCESS=token\` and 100 tokens, alternating with a public one
- scale: the same wrk on \`/assets/small.zip\` (1 KiB) with 10,000 and with 10 packages stored
- start-up: spawn to the first 200 from \`/readyz\`, records already written by an earlier start (no re-hashing)
- catalogs: 1,000 extensions and 100 each of presets, workflows (bare YAML), steps, bundles (pinning stored extensions)
  and integrations, published through \`POST /upload\` (each vetted), then the same wrk on each \`/catalogs/{kind}.json\`;
  nginx serves the bytes ours answered, as a static file
- vetting: \`curl -F file=@… '/upload?overwrite=true'\` of a ${(r.vettingSizes.extension / MiB).toFixed(1)} MiB extension (extension.yml, one command, four
  10 MB stored members of random bytes) alternating with a ${(r.vettingSizes.template / MiB).toFixed(1)} MiB template holding the same members.
  Templates are vetted too (the archive rules, every member inflated and CRC-checked); the extension adds its
  manifest checks and the stricter catalog limits. nginx PUT of the extension's bytes is shown for scale.
- s3: a throwaway Ceph RGW (\`scripts/s3-test-server.sh\`) on the same machine; ours with \`STORAGE_BACKEND=s3\`.
  Download: curl of \`/assets/big.zip\` alternating with the SDK's GetObject of the same object, streamed and counted.
  Upload: curl \`-F file=@big.zip '/upload?overwrite=true'\` (vetting included) alternating with lib-storage's Upload of
  the same file with the server's settings (8 MiB parts, two in flight). \`/latest\`: the same wrk on an s3 server
  whose index holds the records of the 1,000 packages of section 3, alternating with the filesystem server over them.
  Workers: the same wrk on \`/healthz\` and \`/latest\` of a server with \`WORKERS=2\` over that bucket, and of one
  over a copy of the filesystem store of 1,000 packages, in turn with one process of each and with bare Express
  (\`bench/stand-ins/express.mjs\`).
  Idle: storage operations (each one S3 request) counted by \`/metrics\` over ${r.s3.idleSeconds} s with no traffic.
`;
  return { table, markdown };
}
