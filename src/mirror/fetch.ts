import { createHash, timingSafeEqual } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CatalogKind } from '../domain/kinds.js';
import { normaliseCatalog, CatalogFormatError, type NormalisedCatalog } from './entries.js';
import { catalogTimeoutSeconds, credentialHosts, resolveHeaders, type Source } from './sources.js';
import { isLoopbackHost, redirectRefusal, resolvedAddressRefusal, urlRefusal } from './urls.js';

/**
 * The mirror's only way to the network: one GET, bounded in every way the doc names
 * (../shared/docs/speckit-kinds.md, "Downloads"), streamed into the caller's sink while it is hashed.
 *
 * - https, or http on loopback; every redirect hop checked again, a remote → local redirect refused, and a name that
 *   resolves to a local address refused (urls.ts).
 * - The source's headers go only to its own hosts over a safe scheme, and once a redirect leaves them they are not
 *   sent again on that chain.
 * - A per-file cap enforced while streaming (a declared Content-Length over it is refused before a byte is read; a
 *   body over it stops at the chunk that crosses it, which the sink never sees), a byte budget shared by a whole sync,
 *   an idle timeout and an optional overall deadline, and a concurrency limit.
 *
 * On any error the sink may hold part of the body: the caller discards what its sink received.
 */

export type FetchErrorCode =
  /** The URL breaks the scheme or host rules. */
  | 'url'
  /** A redirect hop breaks them, or there are too many hops. */
  | 'redirect'
  /** The final answer is not 2xx. */
  | 'http-status'
  /** Over the per-file cap. */
  | 'too-large'
  /** Over the sync's total byte budget. */
  | 'budget'
  | 'timeout'
  /** Connection refused, reset, DNS, TLS. */
  | 'network'
  /** The sink failed or stopped reading before the end. */
  | 'sink'
  | 'aborted'
  /** A declared sha256 is blank or not 64 hex digits. */
  | 'sha256-invalid'
  | 'sha256-mismatch'
  /** A catalog that is not JSON, or not the kind's shape. */
  | 'catalog';

export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    readonly code: FetchErrorCode,
    message: string,
    /** The URL asked for (not a redirect target), so a refusal can name the entry's own URL. */
    readonly url: string,
  ) {
    super(message);
  }
}

/** Bytes one sync may download in all, shared by every fetch it makes, concurrent or not. */
export class ByteBudget {
  private taken = 0;
  constructor(readonly limit: number) {}

  get used(): number {
    return this.taken;
  }

  get remaining(): number {
    return this.limit - this.taken;
  }

  /** Takes `bytes` if they fit, else takes nothing and answers false. */
  take(bytes: number): boolean {
    if (this.taken + bytes > this.limit) return false;
    this.taken += bytes;
    return true;
  }
}

/** At most `limit` tasks at once; the others wait their turn in order. */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('a limiter needs a limit of at least 1');
  }

  get active(): number {
    return this.running;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running += 1;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next task, so `running` never drops below what is really running.
      if (next) next();
      else this.running -= 1;
    }
  }
}

export interface FetchOptions {
  /** Sent only to `credentialHosts`, and only over https or loopback http. Values are never logged or put in errors. */
  headers?: Record<string, string>;
  /** `host[:port]` as URL.host spells it; by default the first URL's host. */
  credentialHosts?: readonly string[];
  /** The per-file cap. */
  maxBytes: number;
  /** Nothing received for this long (connecting, waiting for headers, between chunks) fails the fetch. */
  timeoutMs: number;
  /** The whole fetch, sink included, must be done within this. */
  deadlineMs?: number;
  budget?: ByteBudget;
  limiter?: Limiter;
  /**
   * Where the URL came from (the catalog that names it): the first request is checked as a redirect from there, so a
   * remote catalog cannot send the mirror to a local address any more than a redirect can.
   */
  referrer?: string | URL;
  /** Checked over the whole body once it has streamed (see verifySha256); a mismatch throws after the sink got it. */
  expectedSha256?: string;
  signal?: AbortSignal;
  /** Followed at most; urllib's 10 by default. */
  maxRedirects?: number;
}

/** A Writable the body is piped into, or a function that reads the body and resolves once it has all of it. */
export type Sink = Writable | ((body: Readable) => Promise<void>);

export interface FetchResult {
  /** Lower-case hex over the bytes the sink received. */
  sha256: string;
  size: number;
  contentType: string | null;
  /** After redirects. */
  finalUrl: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * A declared digest as 64 lower-case hex digits: a case-insensitive `sha256:` prefix is dropped, surrounding space
 * ignored. Blank or anything else throws FetchError `sha256-invalid` (a declared but empty sha256 is an authoring
 * error, never an opt-out, as in the CLI).
 */
export function parseSha256(declared: string): string {
  let raw = String(declared).trim();
  if (raw.slice(0, 7).toLowerCase() === 'sha256:') raw = raw.slice(7).trim();
  const hex = raw.toLowerCase();
  if (!SHA256_HEX.test(hex)) {
    throw new FetchError('sha256-invalid', `the declared sha256 ${JSON.stringify(declared)} is not 64 hexadecimal digits (optionally prefixed with "sha256:")`, '');
  }
  return hex;
}

/** Throws FetchError `sha256-invalid` or `sha256-mismatch`; returns the expected digest, normalised. */
export function verifySha256(expected: string, actual: string): string {
  const want = parseSha256(expected);
  const got = String(actual).trim().toLowerCase();
  const equal = SHA256_HEX.test(got) && timingSafeEqual(Buffer.from(want), Buffer.from(got));
  if (!equal) throw new FetchError('sha256-mismatch', `the bytes' sha256 is ${got}, the catalog declares ${want}`, '');
  return want;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** DNS answers for a name that is not itself local must not be local addresses (urls.ts). */
const guardedLookup = ((hostname: string, options: { all?: boolean }, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, options.all ? [] : '', undefined);
    for (const { address } of addresses) {
      const refusal = resolvedAddressRefusal(hostname, address);
      if (refusal) return callback(Object.assign(new Error(refusal), { code: 'ELOCALADDRESS' }), options.all ? [] : '', undefined);
    }
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', undefined);
    return callback(null, first.address, first.family);
  });
}) as unknown as LookupFunction;

const mib = (bytes: number) => (bytes % 1024 ** 2 === 0 ? `${bytes / 1024 ** 2} MiB` : `${bytes} bytes`);

/** Streams `url` into `sink` within the options' bounds. Throws FetchError. */
export async function fetchToSink(url: string, sink: Sink, options: FetchOptions): Promise<FetchResult> {
  const run = () => fetchOnce(url, sink, options);
  return options.limiter ? options.limiter.run(run) : run();
}

/** The body as bytes (catalogs and other small files). */
export async function fetchBytes(url: string, options: FetchOptions): Promise<FetchResult & { bytes: Buffer }> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  const result = await fetchToSink(url, sink, options);
  return { ...result, bytes: Buffer.concat(chunks) };
}

async function fetchOnce(url: string, sink: Sink, options: FetchOptions): Promise<FetchResult> {
  const fail = (code: FetchErrorCode, message: string) => new FetchError(code, message, url);
  let current: URL;
  try {
    current = new URL(url);
  } catch {
    throw fail('url', `${JSON.stringify(url)} is not an absolute URL`);
  }
  const refusal = options.referrer ? redirectRefusal(new URL(options.referrer), current)?.replace(/^redirect/, 'link') : urlRefusal(current);
  if (refusal) throw fail('url', options.referrer ? refusal : `${url} ${refusal}`);

  const hosts = options.credentialHosts ?? [current.host];
  const headerNames = Object.keys(options.headers ?? {});
  let sendHeaders = headerNames.length > 0;
  const maxRedirects = options.maxRedirects ?? 10;

  // Every way the fetch can end early goes through `abort`, so the error thrown is ours, not the socket's.
  let failure: FetchError | null = null;
  const live = new Set<{ destroy(error?: Error): unknown }>();
  const abort = (error: FetchError) => {
    failure ??= error;
    for (const stream of live) stream.destroy(failure);
  };
  let idle: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(idle);
    idle = setTimeout(() => abort(fail('timeout', `nothing received from ${current.host} for ${options.timeoutMs / 1000} s`)), options.timeoutMs);
  };
  const deadline = options.deadlineMs
    ? setTimeout(() => abort(fail('timeout', `not done within ${options.deadlineMs! / 1000} s`)), options.deadlineMs)
    : undefined;
  const onAbort = () => abort(fail('aborted', 'the sync was stopped'));
  if (options.signal?.aborted) throw fail('aborted', 'the sync was stopped');
  options.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    let response: IncomingMessage;
    for (let hop = 0; ; hop += 1) {
      const isSafeScheme = current.protocol === 'https:' || isLoopbackHost(current.hostname);
      if (sendHeaders && (!hosts.includes(current.host) || !isSafeScheme)) sendHeaders = false;
      touch();
      response = await request(current, sendHeaders ? options.headers! : {}, live).catch((err: Error) => {
        throw failure ?? fail('network', `${current.host}: ${(err as NodeJS.ErrnoException).code === 'ELOCALADDRESS' ? err.message : (err as NodeJS.ErrnoException).code ?? err.message}`);
      });
      if (!REDIRECTS.has(response.statusCode ?? 0)) break;
      response.resume();
      const location = response.headers.location;
      if (!location) throw fail('redirect', `${current.host} answered ${response.statusCode} without a Location`);
      if (hop + 1 > maxRedirects) throw fail('redirect', `more than ${maxRedirects} redirects`);
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw fail('redirect', `${current.host} redirected to an invalid URL`);
      }
      const hopRefusal = redirectRefusal(current, next);
      if (hopRefusal) throw fail('redirect', hopRefusal);
      current = next;
    }

    const status = response.statusCode ?? 0;
    if (status < 200 || status > 299) {
      response.destroy();
      throw fail('http-status', `${current.href} answered HTTP ${status}`);
    }
    const declared = Number(response.headers['content-length']);
    if (response.headers['content-length'] !== undefined && declared > options.maxBytes) {
      response.destroy();
      throw fail('too-large', `${current.href} is ${declared} bytes, over the ${mib(options.maxBytes)} limit`);
    }
    if (options.budget && response.headers['content-length'] !== undefined && declared > options.budget.remaining) {
      response.destroy();
      throw fail('budget', `${current.href} is ${declared} bytes, over what is left of the sync's ${mib(options.budget.limit)} budget`);
    }

    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        touch();
        if (size + chunk.length > options.maxBytes) return callback(fail('too-large', `${current.href} is over the ${mib(options.maxBytes)} limit`));
        if (options.budget && !options.budget.take(chunk.length)) {
          return callback(fail('budget', `the sync's ${mib(options.budget.limit)} download budget is spent`));
        }
        size += chunk.length;
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    live.add(meter);
    meter.on('error', (err) => abort(err instanceof FetchError ? err : fail('network', err.message)));
    if (sink instanceof Writable) {
      live.add(sink);
      await pipeline(response, meter, sink).catch((err: Error) => {
        throw failure ?? (err instanceof FetchError ? err : fail(isSocketError(err) ? 'network' : 'sink', err.message));
      });
    } else {
      const consumed = sink(meter).then(
        () => {
          if (!meter.readableEnded) throw fail('sink', 'the sink returned before it had read the whole body');
        },
        (err: Error) => {
          throw failure ?? fail('sink', err.message);
        },
      );
      const streamed = pipeline(response, meter).catch((err: Error) => {
        throw failure ?? (err instanceof FetchError ? err : fail('network', err.message));
      });
      const [a, b] = await Promise.allSettled([streamed, consumed]);
      if (failure) throw failure;
      if (a.status === 'rejected') throw a.reason;
      if (b.status === 'rejected') throw b.reason;
    }
    if (failure) throw failure;
    const sha256 = hash.digest('hex');
    if (options.expectedSha256 !== undefined) {
      try {
        verifySha256(options.expectedSha256, sha256);
      } catch (err) {
        throw new FetchError((err as FetchError).code, `${url}: ${(err as Error).message}`, url);
      }
    }
    const contentType = response.headers['content-type'] ?? null;
    return { sha256, size, contentType, finalUrl: current.href };
  } catch (err) {
    for (const stream of live) stream.destroy();
    throw failure ?? err;
  } finally {
    clearTimeout(idle);
    clearTimeout(deadline);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

const isSocketError = (err: Error) => ['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE'].includes((err as NodeJS.ErrnoException).code ?? '');

function request(url: URL, headers: Record<string, string>, live: Set<{ destroy(error?: Error): unknown }>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    // No compression asked for: the bytes hashed are the bytes the catalog's sha256 is over.
    const req = client.request(url, { method: 'GET', headers: { ...headers, 'accept-encoding': 'identity' }, lookup: guardedLookup });
    live.add(req);
    req.once('error', reject);
    req.once('response', (response) => {
      live.add(response);
      resolve(response);
    });
    req.end();
  });
}

/** Catalog JSON caps: the CLI's 8 MiB, and 1 MiB for integration catalogs as upstream reads them. */
export const CATALOG_MAX_BYTES: Record<CatalogKind, number> = {
  extension: 8 * 1024 ** 2,
  preset: 8 * 1024 ** 2,
  workflow: 8 * 1024 ** 2,
  step: 8 * 1024 ** 2,
  bundle: 8 * 1024 ** 2,
  integration: 1024 ** 2,
};

export interface FetchedCatalog extends NormalisedCatalog {
  url: string;
  fetch: FetchResult;
}

/** Fetches a catalog (capped for its kind), parses it and normalises its entries. Throws FetchError. */
export async function fetchCatalog(kind: CatalogKind, url: string, options: Omit<FetchOptions, 'maxBytes' | 'expectedSha256'>): Promise<FetchedCatalog> {
  const { bytes, ...result } = await fetchBytes(url, { ...options, maxBytes: CATALOG_MAX_BYTES[kind] });
  let document: unknown;
  try {
    document = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new FetchError('catalog', `the ${kind} catalog at ${url} is not JSON: ${(err as Error).message}`, url);
  }
  try {
    return { url, fetch: result, ...normaliseCatalog(kind, document) };
  } catch (err) {
    if (err instanceof CatalogFormatError) throw new FetchError('catalog', `${url}: ${err.message}`, url);
    throw err;
  }
}

/** One source's fetches for one sync: its headers, hosts, limits, one budget and one concurrency limit. */
export interface SourceFetcher {
  readonly budget: ByteBudget;
  readonly limiter: Limiter;
  catalog(kind: CatalogKind): Promise<FetchedCatalog>;
  /** An entry's file: `referrer` is the catalog URL that named it. */
  download(url: string, sink: Sink, options?: { expectedSha256?: string; referrer?: string; maxBytes?: number }): Promise<FetchResult>;
}

export function createSourceFetcher(
  source: Source,
  options: { env?: NodeJS.ProcessEnv; signal?: AbortSignal; deadlineMs?: number } = {},
): SourceFetcher {
  const budget = new ByteBudget(source.maxTotalBytes);
  const limiter = new Limiter(source.concurrency);
  const common = () => ({
    // Read at each fetch, so a rotated Secret is used from the next request on.
    headers: resolveHeaders(source, options.env),
    credentialHosts: credentialHosts(source),
    budget,
    limiter,
    signal: options.signal,
  });
  return {
    budget,
    limiter,
    catalog(kind) {
      const url = source.catalogs[kind];
      if (!url) throw new Error(`source "${source.name}" has no ${kind} catalog`);
      return fetchCatalog(kind, url, { ...common(), timeoutMs: catalogTimeoutSeconds(source, kind) * 1000 });
    },
    download(url, sink, extra = {}) {
      return fetchToSink(url, sink, {
        ...common(),
        maxBytes: Math.min(extra.maxBytes ?? source.maxFileBytes, source.maxFileBytes),
        timeoutMs: source.timeoutSeconds * 1000,
        deadlineMs: options.deadlineMs,
        referrer: extra.referrer,
        expectedSha256: extra.expectedSha256,
      });
    },
  };
}
