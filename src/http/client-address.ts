import { isIP } from 'node:net';
import type { Request } from 'express';

/**
 * The client's address as a validated IP: Express's `req.ip` (which `trust proxy` takes from X-Forwarded-For only
 * when the hop that sent it is trusted), or the socket's peer when that value is not an IP address. The failure
 * limiter and the audit line key on it, so a forged header can neither lock another client out nor put arbitrary
 * text into a log line.
 */
export function clientAddress(req: Request): string {
  const ip = req.ip;
  if (ip && isIP(ip)) return ip;
  return req.socket.remoteAddress ?? 'unknown';
}
