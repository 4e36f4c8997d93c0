// What does checking every JSON response against the contract cost? Starts the production build twice over the
// same storage (VALIDATE_RESPONSES=true / false), alternating A B A B, and prints medians and the ratio.
//   npm run bench:validation            (PACKAGES=1000 RUNS=5 REQUESTS=4000 CONNECTIONS=16 to change)
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PACKAGES = Number(process.env.PACKAGES ?? 1000);
const RUNS = Number(process.env.RUNS ?? 5);
const REQUESTS = Number(process.env.REQUESTS ?? 4000);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 16);
const MAIN = new URL('../dist/main.js', import.meta.url).pathname;

const storage = await mkdtemp(join(tmpdir(), 'rs-bench-'));
for (let i = 0; i < PACKAGES; i++) {
  await writeFile(join(storage, `spec-kit-template-agent${i % 20}-sh-v0.${Math.floor(i / 20)}.${i % 7}.zip`), `package ${i}`);
}

function start(validate) {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', STORAGE_PATH: storage, AUTH_TOKEN: 'bench-token-0123456789', MAX_PACKAGES: '0', LOG_LEVEL: 'warn', VALIDATE_RESPONSES: String(validate), CONFIG_PATH: '/nonexistent' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    // With LOG_LEVEL=warn the listening line is not printed: poll the port from /proc instead.
    const started = Date.now();
    const poll = async () => {
      const port = await listeningPort(child.pid);
      if (port) return resolve({ child, url: `http://127.0.0.1:${port}` });
      if (Date.now() - started > 10000) return reject(new Error('no port'));
      setTimeout(poll, 50);
    };
    poll();
  });
}

async function listeningPort(pid) {
  const { readFile, readlink, readdir } = await import('node:fs/promises');
  const inodes = new Set();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]);
  }
  for (const line of (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[3] === '0A' && inodes.has(cols[9])) return parseInt(cols[1].split(':')[1], 16);
  }
  return null;
}

async function ready(url) {
  for (;;) {
    const res = await fetch(`${url}/readyz`).catch(() => null);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** REQUESTS GETs over CONNECTIONS keep-alive connections; returns requests per second and p99 latency (ms). */
async function load(url, path) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const latencies = [];
  let next = 0;
  const worker = async () => {
    while (next < REQUESTS) {
      next++;
      const t0 = process.hrtime.bigint();
      await new Promise((resolve, reject) => {
        request(`${url}${path}`, { agent }, (res) => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          res.resume();
          res.on('end', resolve);
        }).on('error', reject).end();
      });
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { rps: REQUESTS / seconds, p99: latencies[Math.floor(latencies.length * 0.99)] };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { true: { '/latest': [], '/packages?format=json': [] }, false: { '/latest': [], '/packages?format=json': [] } };
for (let run = 0; run < RUNS; run++) {
  for (const validate of [true, false]) {
    const { child, url } = await start(validate);
    await ready(url);
    for (const path of Object.keys(results[validate])) {
      await load(url, path); // warm-up
      results[validate][path].push(await load(url, path));
    }
    child.removeAllListeners('exit');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

console.log(`response validation cost: ${PACKAGES} packages, ${RUNS} runs alternating, ${REQUESTS} requests x ${CONNECTIONS} connections`);
console.log('path                     validated req/s (p99 ms)   unvalidated req/s (p99 ms)   ratio');
for (const path of Object.keys(results.true)) {
  const on = results.true[path];
  const off = results.false[path];
  const rpsOn = median(on.map((r) => r.rps));
  const rpsOff = median(off.map((r) => r.rps));
  console.log(
    `${path.padEnd(24)} ${rpsOn.toFixed(0).padStart(8)} (${median(on.map((r) => r.p99)).toFixed(1)})          ${rpsOff.toFixed(0).padStart(8)} (${median(off.map((r) => r.p99)).toFixed(1)})            ${(rpsOn / rpsOff).toFixed(2)}`,
  );
}
