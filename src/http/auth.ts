import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';

const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i;

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

function unauthorized(message: string): Error {
  return Object.assign(new Error(message), { status: 401 });
}

/**
 * The security handler for the contract's `bearerAuth` scheme: which operations need it is written in the
 * contract, and only there. Compares digests, so the time taken says nothing about the token.
 */
export function bearerAuth(token: string): (req: Request) => boolean {
  const expected = digest(token);
  return (req) => {
    const match = BEARER.exec(req.headers.authorization ?? '');
    if (!match) throw unauthorized('a Bearer token is required (Authorization: Bearer <token>)');
    if (!timingSafeEqual(digest(match[1]!), expected)) throw unauthorized('the token is not valid');
    return true;
  };
}
