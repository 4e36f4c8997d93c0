// A stand-in for a public catalog host (raw.githubusercontent.com, github.com archives), run as its own process on
// loopback by test/helpers/upstream-catalog.ts: it serves the files under a directory, and obeys per-path rules the
// tests set over /__control/ (another version of the file on later requests, a required header, a redirect, slow
// answers) while it counts requests. Usage: node upstream-catalog-server.mjs ROOT
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, normalize, sep } from 'node:path';

const root = process.argv[2];
if (!root) {
  process.stderr.write('usage: upstream-catalog-server.mjs ROOT\n');
  process.exit(2);
}

/** path → rule: { versions?: string[], status?, redirect?, requireHeader?: {name, value}, headers?, delayMs?, dripBytes?, dripIntervalMs? } */
let rules = new Map();
let stats = freshStats();

function freshStats() {
  return { requests: {}, log: [], inFlight: 0, maxInFlight: 0, delayed: 0, maxDelayed: 0, endless: { started: 0, closed: 0, bytesWritten: 0 } };
}

const TYPES = { '.json': 'application/json', '.zip': 'application/zip', '.gz': 'application/gzip', '.tgz': 'application/gzip', '.yml': 'application/yaml', '.py': 'text/x-python' };
const typeOf = (path) => Object.entries(TYPES).find(([suffix]) => path.endsWith(suffix))?.[1] ?? 'application/octet-stream';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function fileFor(path) {
  const relative = normalize(decodeURIComponent(path)).replace(/^([/\\])+/, '');
  if (relative.startsWith('..')) return null;
  const full = join(root, relative);
  if (!full.startsWith(root + sep) && full !== root) return null;
  try {
    return statSync(full).isFile() ? full : null;
  } catch {
    return null;
  }
}

async function control(req, res, path) {
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (path === '/__control/stats' && req.method === 'GET') return send(200, stats);
  if (path === '/__control/reset' && req.method === 'POST') {
    rules = new Map();
    stats = freshStats();
    return send(200, {});
  }
  if (path === '/__control/rule' && req.method === 'POST') {
    const { path: target, rule } = JSON.parse(await readBody(req));
    if (rule === null) rules.delete(target);
    else rules.set(target, rule);
    return send(200, {});
  }
  return send(404, { error: 'no such control' });
}

/** Zeros for as long as the client reads them: a file with no end, to prove a cap stops the download. */
async function endless(req, res) {
  stats.endless.started += 1;
  res.writeHead(200, { 'content-type': 'application/zip' });
  let closed = false;
  res.on('close', () => {
    closed = true;
    stats.endless.closed += 1;
  });
  const chunk = Buffer.alloc(64 * 1024);
  while (!closed) {
    if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
    if (!closed) stats.endless.bytesWritten += chunk.length;
    await sleep(1);
  }
}

const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path.startsWith('/__control/')) return control(req, res, path);
  stats.requests[path] = (stats.requests[path] ?? 0) + 1;
  const count = stats.requests[path];
  const seenHeaders = {};
  for (const name of ['authorization', 'x-catalog-token', 'accept-encoding', 'user-agent']) if (req.headers[name] !== undefined) seenHeaders[name] = req.headers[name];
  stats.log.push({ path, headers: seenHeaders });
  stats.inFlight += 1;
  stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
  // Done when the last byte is handed to the socket (before the client can start its next request), or on close.
  let done = false;
  const finished = () => {
    if (done) return;
    done = true;
    stats.inFlight -= 1;
  };
  res.once('finish', finished);
  res.once('close', finished);
  try {
    if (path === '/__endless.zip') return await endless(req, res);
    const rule = rules.get(path) ?? {};
    if (rule.delayMs) {
      // Requests held here at once: how many clients were waiting together, free of races with the response's end.
      stats.delayed += 1;
      stats.maxDelayed = Math.max(stats.maxDelayed, stats.delayed);
      await sleep(rule.delayMs);
      stats.delayed -= 1;
    }
    if (rule.requireHeader && req.headers[rule.requireHeader.name.toLowerCase()] !== rule.requireHeader.value) {
      res.writeHead(401, { 'content-type': 'text/plain' });
      return res.end('credentials required\n');
    }
    if (rule.redirect) {
      res.writeHead(rule.status ?? 302, { location: rule.redirect });
      return res.end();
    }
    if (rule.status) {
      res.writeHead(rule.status, { 'content-type': 'text/plain' });
      return res.end(`status ${rule.status}\n`);
    }
    // The n-th request for the path gets versions[n-1] (the last one from then on): a file that changes upstream.
    const served = rule.versions ? rule.versions[Math.min(count, rule.versions.length) - 1] : path;
    const file = fileFor(served);
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found\n');
    }
    const headers = { 'content-type': typeOf(served), ...(rule.headers ?? {}) };
    if (!rule.dripBytes) headers['content-length'] = String(statSync(file).size);
    res.writeHead(200, headers);
    if (!rule.dripBytes) return createReadStream(file).pipe(res);
    // Slow: dripBytes every dripIntervalMs.
    const stream = createReadStream(file, { highWaterMark: rule.dripBytes });
    for await (const chunk of stream) {
      if (res.destroyed) break;
      res.write(chunk);
      await sleep(rule.dripIntervalMs ?? 100);
    }
    res.end();
  } catch (err) {
    if (!res.headersSent) res.writeHead(500);
    res.end(String(err));
  }
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
