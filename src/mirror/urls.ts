import { isIP } from 'node:net';

/**
 * The CLI's URL rules (../shared/docs/speckit-kinds.md: "https only, plain http only for localhost/127.0.0.1/::1;
 * every redirect hop re-checked; a redirect from a remote host to a local one is refused"), applied by the mirror to
 * every catalog and download it fetches. A server is a better target than a laptop, so "local" also takes in the
 * unspecified addresses and link-local ones (a cloud's metadata service at 169.254.169.254).
 */

/** `[::1]` → `::1`; WHATWG URL has already made `127.1` and `0x7f.0.0.1` into `127.0.0.1`. */
const bare = (hostname: string): string => hostname.replace(/^\[|\]$/g, '').toLowerCase();

/** The IPv4 address an IPv4-mapped IPv6 address (`::ffff:7f00:1`, `::ffff:127.0.0.1`) carries, else null. */
function mappedIpv4(address: string): string | null {
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (dotted) return dotted[1]!;
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(address);
  if (!hex) return null;
  const high = parseInt(hex[1]!, 16);
  const low = parseInt(hex[2]!, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

function ipv4Kind(address: string): 'loopback' | 'unspecified' | 'link-local' | null {
  const [a, b] = address.split('.').map(Number);
  if (a === 127) return 'loopback';
  if (address === '0.0.0.0') return 'unspecified';
  if (a === 169 && b === 254) return 'link-local';
  return null;
}

function addressKind(address: string): 'loopback' | 'unspecified' | 'link-local' | null {
  const host = bare(address).replace(/%.*$/, '');
  const family = isIP(host);
  if (family === 4) return ipv4Kind(host);
  if (family !== 6) return null;
  const mapped = mappedIpv4(host);
  if (mapped) return ipv4Kind(mapped);
  if (host === '::1' || host === '0:0:0:0:0:0:0:1') return 'loopback';
  if (host === '::' || host === '0:0:0:0:0:0:0:0') return 'unspecified';
  if (/^fe[89ab][0-9a-f]:/.test(host)) return 'link-local';
  return null;
}

/** Hosts that may be reached over plain http: `localhost` and loopback addresses, nothing ambiguous. */
export function isLoopbackHost(hostname: string): boolean {
  const host = bare(hostname);
  return host === 'localhost' || addressKind(host) === 'loopback';
}

/** Hosts that could reach a listener on this machine or its link: never the target of a redirect from elsewhere. */
export function isLocalHost(hostname: string): boolean {
  const host = bare(hostname).replace(/\.$/, '');
  return host === 'localhost' || host.endsWith('.localhost') || addressKind(host) !== null;
}

/** Why the mirror will not fetch this URL, or null: https, or http on loopback only; a host is required. */
export function urlRefusal(url: URL | string): string | null {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return 'is not an absolute URL';
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return `must be an https URL, not ${parsed.protocol.replace(/:$/, '')} (plain http only on loopback)`;
  if (parsed.hostname === '') return 'has no host';
  if (parsed.protocol === 'https:') return null;
  return isLoopbackHost(parsed.hostname) ? null : 'must be https (plain http only on loopback)';
}

/** Why a redirect from `from` to `to` is not followed, or null: the target's own rules, and no remote → local. */
export function redirectRefusal(from: URL, to: URL): string | null {
  const refusal = urlRefusal(to);
  if (refusal) return `redirect to ${to.href} refused: it ${refusal}`;
  if (isLocalHost(to.hostname) && !isLoopbackHost(from.hostname)) return `redirect from ${from.host} to the local address ${to.host} refused`;
  return null;
}

/**
 * Why a connection to `address` (what DNS gave for `hostname`) is refused, or null. A name that is not itself
 * local must not resolve to a local address: that is how a hostile catalog would reach this server's own ports.
 */
export function resolvedAddressRefusal(hostname: string, address: string): string | null {
  if (isLocalHost(hostname)) return null;
  if (addressKind(address) !== null) return `${bare(hostname)} resolves to the local address ${address}, refused`;
  return null;
}
