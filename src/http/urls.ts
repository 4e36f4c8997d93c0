import type { Request } from 'express';

// A DNS name or an IPv4 address, or a bracketed IPv6 address, with an optional port: what a Host header may be.
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

type RequestLike = Pick<Request, 'protocol' | 'host' | 'headers' | 'socket'> & { res?: { vary(field: string): unknown } | undefined };

/**
 * The absolute base URL a client reached us at: the configured public URL, else the request's own scheme and host
 * (Express takes them from X-Forwarded-Proto and X-Forwarded-Host when the hop that sent them is trusted). Forwarded
 * values that are not a plain http(s) scheme or a host name are ignored, never echoed: a URL built here is always
 * http(s) on a well-formed host. A response built from the request's own host says so in Vary.
 */
export function baseUrl(req: RequestLike, publicUrl: string | null): string {
  if (publicUrl !== null) return publicUrl;
  // One call: each parses the Vary header already set, and this runs on every read that builds a URL.
  req.res?.vary('Host, X-Forwarded-Host, X-Forwarded-Proto');
  return `${schemeOf(req)}://${hostOf(req)}`;
}

/** The origin (scheme://host[:port]) of `baseUrl`, as a browser writes it in `Origin`. */
export function ownOrigin(req: RequestLike, publicUrl: string | null): string {
  return new URL(baseUrl(req, publicUrl)).origin;
}

export function assetUrl(base: string, name: string): string {
  return `${base}/assets/${encodeURIComponent(name)}`;
}

function schemeOf(req: RequestLike): 'http' | 'https' {
  let proto: string;
  try {
    proto = req.protocol;
  } catch {
    proto = '';
  }
  if (proto === 'http' || proto === 'https') return proto;
  return (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
}

function hostOf(req: RequestLike): string {
  let forwarded: string | undefined;
  try {
    forwarded = req.host;
  } catch {
    forwarded = undefined;
  }
  if (isValidHost(forwarded)) return forwarded;
  const direct = req.headers.host;
  if (isValidHost(direct)) return direct;
  const { localAddress, localPort } = req.socket;
  return localAddress?.includes(':') ? `[${localAddress}]:${localPort}` : `${localAddress ?? 'localhost'}:${localPort}`;
}

/** Hosts already judged: a client sends the same Host on every request. Bounded, as Host is the client's to choose. */
const judgedHosts = new Map<string, boolean>();
const JUDGED_HOSTS_MAX = 1024;

/** A host[:port] that makes a URL: the shape above, and one the URL parser takes (a port up to 65535, a real IPv6). */
function isValidHost(value: string | undefined): value is string {
  if (!value) return false;
  let valid = judgedHosts.get(value);
  if (valid === undefined) {
    valid = HOST.test(value) && parsesAsHost(value);
    if (judgedHosts.size >= JUDGED_HOSTS_MAX) judgedHosts.clear();
    judgedHosts.set(value, valid);
  }
  return valid;
}

function parsesAsHost(value: string): boolean {
  try {
    return new URL(`http://${value}/`).host !== '';
  } catch {
    return false;
  }
}

/** The spec-kit CLI fetches catalogs and downloads over https, or plain http to a loopback host only. */
export function cliAcceptsUrl(url: string): boolean {
  const parsed = new URL(url);
  return parsed.protocol === 'https:' || (parsed.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(parsed.hostname));
}
