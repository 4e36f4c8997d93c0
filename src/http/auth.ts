import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { FailureLimiter } from '../auth/failure-limiter.js';
import type { Scope, Token, TokenRegistry } from '../auth/tokens.js';
import { clientAddress } from './client-address.js';
import { crossSiteReason } from './cross-site.js';
import { HttpProblem } from './problem.js';
import { RouteTable, requestPath } from './routes.js';

export type ReadAccess = 'public' | 'token';

interface Operation {
  operationId: string;
  'x-scope'?: Scope;
  responses?: Record<string, { content?: Record<string, unknown> }>;
}

interface Contract {
  paths: Record<string, Record<string, Operation>>;
}

export interface AuthOptions {
  tokens: TokenRegistry;
  readAccess: ReadAccess;
  limiter: FailureLimiter;
  audit: Logger;
  /** The origin a page of this server has (scheme://host[:port]), as a browser writes it in `Origin`. */
  ownOrigin: (req: Request) => string;
}

declare module 'express-serve-static-core' {
  interface Locals {
    /** Set by the authenticated handler of a write, for the audit line. */
    audit?: { package?: string; size?: number; sha256?: string };
    /** The operation a request was aimed at, known before the contract's validator runs (it may never run). */
    operationId?: string;
    /** The token the request authenticated with, when it presented one. */
    token?: Token;
    /** Every operation authorization found the request's path and method fit (and guarded, where one needs a scope). */
    routed?: readonly string[];
    /** A HEAD answered by the GET of its path, which declares no HEAD of its own (http/head.ts). */
    headAsGet?: boolean;
  }
}

/**
 * The one place for authorization. Which scope an operation needs is written in the contract (`x-scope`); each
 * operation's guard is made once, and a lookup in the contract's compiled paths picks it, before anything else
 * runs (an upload is refused before a byte of it is read). Reads need a token only with read_access: token, and then
 * any known token may read.
 */
export function authorization(contract: Contract, options: AuthOptions): RequestHandler {
  const routes = new RouteTable<Operation>(contract);
  const guards = new Map<Operation, Guard>();
  for (const item of Object.values(contract.paths)) {
    for (const operation of Object.values(item)) {
      const scope = operation?.['x-scope'];
      if (scope) guards.set(operation, guard(operation, scope, options));
    }
  }
  return (req, res, next) => {
    // Every operation the path fits, not the first: the validator orders the contract's routes its own way, and the
    // one it dispatches to must have been guarded.
    // The path exactly as the validator matches it (the request target up to `?`), not req.path: Express parses a
    // target holding `#` another way and cuts its path there, so `/repos/o#/r/releases` would be guarded as `/repos/o`
    // (nothing) while the validator dispatches it to listRepoReleases.
    const found = routes.matchAll(req.method, requestPath(req));
    res.locals.routed = found.map((match) => match.operation.operationId);
    res.locals.headAsGet = found.length > 0 && found.every((match) => match.headAsGet);
    for (const match of found) guards.get(match.operation)?.(req, res, match.params);
    next();
  };
}

type Guard = (req: Request, res: Response, params: Record<string, string>) => void;

/** Throws the refusal; returns when the request may go on. */
function guard(operation: Operation, scope: Scope, { tokens, readAccess, limiter, audit, ownOrigin }: AuthOptions): Guard {
  const html = Boolean(operation.responses?.['200']?.content?.['text/html']);
  return (req, res, params) => {
    // Metrics count a refused request under the operation it was aimed at.
    res.locals.operationId = operation.operationId;
    // In public mode a read ignores any Authorization header (the spec-kit CLI sends GitHub tokens), and is never
    // limited: nobody can get a public read refused by failing on someone else's behalf.
    if (scope === 'read' && readAccess === 'public') return;
    if (scope !== 'read') {
      const crossSite = crossSiteReason(req, ownOrigin(req));
      if (crossSite) throw new HttpProblem(403, 'cross-site-request', crossSite);
    }
    const client = clientAddress(req);
    const wait = limiter.retryAfter(client);
    if (wait > 0) {
      throw new HttpProblem(429, 'too-many-requests', `too many failed authentications from ${client}; retry in ${wait} s`, { 'Retry-After': String(wait) });
    }

    const challenge = wantsHtml(req, html) ? 'Basic realm="release-server"' : 'Bearer realm="release-server"';
    const credential = credentialOf(req.headers.authorization);
    if (credential === null) {
      // Not a failure: nothing was guessed. Every browser's first request to a private page has no credential, and
      // counting those would let people behind one NAT, or one stray bot, lock each other out.
      const how = scope === 'read' ? 'Authorization: Bearer <token>, or Basic with the token as password' : 'Authorization: Bearer <token>';
      throw new HttpProblem(401, 'unauthorized', `a token is required (${how})`, { 'WWW-Authenticate': challenge });
    }
    // A browser replays cached Basic credentials on any request a page elsewhere makes it send; a write must carry
    // a header only a program sets on purpose.
    if (scope !== 'read' && credential.scheme === 'basic') {
      throw new HttpProblem(401, 'unauthorized', `${operation.operationId} needs Authorization: Bearer <token>; HTTP Basic (which browsers send on their own) is accepted for reads only`, {
        'WWW-Authenticate': 'Bearer realm="release-server"',
      });
    }
    const presented = credential.token;
    const token = tokens.find(presented);
    if (!token) {
      limiter.fail(client);
      throw new HttpProblem(401, 'unauthorized', 'the token is not valid', { 'WWW-Authenticate': `${challenge}, error="invalid_token"` });
    }
    res.locals.token = token;
    if (scope !== 'read') auditOnFinish(req, res, audit, operation.operationId, token, params.filename);
    if (scope !== 'read' && !token.scopes.has(scope)) {
      throw new HttpProblem(403, 'forbidden', `token "${token.name}" lacks the ${scope} scope`, {
        'WWW-Authenticate': `Bearer realm="release-server", error="insufficient_scope", scope="${scope}"`,
      });
    }
  };
}

/** Bearer <token>, or Basic with the token as the password (any user name); null for anything else. */
function credentialOf(header: string | undefined): { scheme: 'bearer' | 'basic'; token: string } | null {
  const match = /^(bearer|basic)[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  if (!match) return null;
  if (match[1]!.toLowerCase() === 'bearer') return { scheme: 'bearer', token: match[2]! };
  const decoded = Buffer.from(match[2]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && colon < decoded.length - 1 ? { scheme: 'basic', token: decoded.slice(colon + 1) } : null;
}

/** A browser asking for a page gets the Basic challenge, so it shows its log-in prompt. */
function wantsHtml(req: Request, producesHtml: boolean): boolean {
  return producesHtml && req.query.format !== 'json' && req.accepts(['text/html', 'application/json']) === 'text/html';
}

function auditOnFinish(req: Request, res: Response, audit: Logger, operation: string, token: Token, target: string | undefined): void {
  const client = clientAddress(req);
  // 'close', not 'finish': a write the client abandoned is audited too, as aborted.
  res.once('close', () => {
    const uploaded = (req.files as { originalname?: string }[] | undefined)?.[0]?.originalname;
    const aborted = !res.writableFinished;
    audit[aborted ? 'warn' : 'info'](
      {
        token: token.name,
        operation,
        package: res.locals.audit?.package ?? uploaded ?? target ?? null,
        size: res.locals.audit?.size ?? null,
        sha256: res.locals.audit?.sha256 ?? null,
        client,
        status: aborted ? 'aborted' : res.statusCode,
      },
      `${operation} ${aborted ? 'aborted by the client' : res.statusCode}`,
    );
  });
}
