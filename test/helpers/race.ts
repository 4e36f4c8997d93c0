import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';
import { rawZip } from './packages.js';
import { upload } from './upload.js';

export interface RaceResult {
  downloads: number;
  ok: number;
  overwrites: number;
  /** Each 200 whose body does not match its own ETag or Content-Length, or that was cut short, described. */
  mixed: string[];
  /** Statuses other than 200, by status. */
  other: Record<string, number>;
}

/** Two versions of one template of different sizes and bytes, big enough that a download takes a moment. */
export function raceVersions(): [Buffer, Buffer] {
  return [
    rawZip([{ name: 'payload.bin', data: Buffer.alloc(768 * 1024, 0x31) }]),
    rawZip([{ name: 'payload.bin', data: Buffer.alloc(512 * 1024 + 17, 0x32) }]),
  ];
}

/**
 * Overwrites `name` with the two versions in turn while `parallel` clients download it on kept-alive connections,
 * for `ms` milliseconds. Every 200 must carry a body whose sha256 is its ETag and whose length is its Content-Length.
 */
export async function overwriteRace(base: string, name: string, options: { ms?: number; parallel?: number; minOverwrites?: number } = {}): Promise<RaceResult> {
  const [v1, v2] = raceVersions();
  const ms = options.ms ?? 3000;
  const parallel = options.parallel ?? 8;
  // On a busy machine uploads may be slow beside eight downloads: go on until enough overwrites raced, within a cap.
  const minOverwrites = options.minOverwrites ?? 10;
  const cap = Date.now() + 5 * ms;
  let racing = true;
  const first = await upload(base, name, v1, { overwrite: true });
  if (first.status !== 201 && first.status !== 200) throw new Error(`first upload answered ${first.status}: ${await first.text()}`);
  const deadline = Date.now() + ms;
  const result: RaceResult = { downloads: 0, ok: 0, overwrites: 0, mixed: [], other: {} };
  const agent = new Agent({ keepAlive: true, maxSockets: parallel });
  const overwriter = (async () => {
    for (let i = 0; (Date.now() < deadline || result.overwrites < minOverwrites) && Date.now() < cap; i++) {
      const res = await upload(base, name, i % 2 === 0 ? v2 : v1, { overwrite: true });
      await res.arrayBuffer();
      if (res.status === 200) result.overwrites += 1;
    }
    racing = false;
  })();
  const downloader = async () => {
    while (racing) {
      const outcome = await download(`${base}/assets/${name}`, agent);
      result.downloads += 1;
      if (outcome.status !== 200) {
        result.other[outcome.status] = (result.other[outcome.status] ?? 0) + 1;
        continue;
      }
      const problems = [];
      if (outcome.truncated) problems.push(`cut short after ${outcome.body.length} bytes`);
      if (outcome.etag !== `"${sha256(outcome.body)}"`) problems.push(`ETag ${outcome.etag} but body sha256 ${sha256(outcome.body)}`);
      if (outcome.contentLength !== outcome.body.length) problems.push(`Content-Length ${outcome.contentLength} but ${outcome.body.length} bytes`);
      if (problems.length > 0) result.mixed.push(problems.join('; '));
      else result.ok += 1;
    }
  };
  await Promise.all([overwriter, ...Array.from({ length: parallel }, downloader)]);
  agent.destroy();
  return result;
}

interface Download {
  status: number;
  etag: string | undefined;
  contentLength: number;
  body: Buffer;
  truncated: boolean;
}

function download(url: string, agent: Agent): Promise<Download> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      let truncated = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('aborted', () => (truncated = true));
      res.on('error', () => (truncated = true));
      res.on('close', () =>
        resolve({
          status: res.statusCode ?? 0,
          etag: res.headers.etag,
          contentLength: Number(res.headers['content-length']),
          body: Buffer.concat(chunks),
          truncated: truncated || !res.complete,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
