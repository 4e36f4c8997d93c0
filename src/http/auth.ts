import { Router, type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { FailureLimiter } from '../auth/failure-limiter.js';
import type { Scope, Token, TokenRegistry } from '../auth/tokens.js';
import { HttpProblem } from './problem.js';

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
}

declare module 'express-serve-static-core' {
  interface Locals {
    /** Set by the authenticated handler of a write, for the audit line. */
    audit?: { package?: string; size?: number; sha256?: string };
  }
}

const METHODS = ['get', 'head', 'post', 'put', 'delete', 'patch'] as const;

/**
 * The one place for authorization. Which scope an operation needs is written in the contract (`x-scope`);
 * this router reads it once and guards each route before anything else runs (an upload is refused before a
 * byte of it is read). Reads need a token only with read_access: token, and then any known token may read.
 */
export function authRouter(contract: Contract, options: AuthOptions): Router {
  const router = Router();
  for (const [path, item] of Object.entries(contract.paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      const scope = operation?.['x-scope'];
      if (!operation || !scope) continue;
      router[method](expressPath(path), guard(operation, scope, options));
    }
  }
  return router;
}

function guard(operation: Operation, scope: Scope, { tokens, readAccess, limiter, audit }: AuthOptions) {
  const html = Boolean(operation.responses?.['200']?.content?.['text/html']);
  return (req: Request, res: Response, next: NextFunction): void => {
    const client = req.ip ?? 'unknown';
    const wait = limiter.retryAfter(client);
    if (wait > 0) {
      throw new HttpProblem(429, 'too-many-requests', `too many failed authentications from ${client}; retry in ${wait} s`, { 'Retry-After': String(wait) });
    }
    // In public mode a read ignores any Authorization header: the spec-kit CLI sends GitHub tokens.
    if (scope === 'read' && readAccess === 'public') return next();

    const challenge = wantsHtml(req, html) ? 'Basic realm="release-server"' : 'Bearer realm="release-server"';
    const presented = credentialOf(req.headers.authorization);
    if (presented === null) {
      limiter.fail(client);
      throw new HttpProblem(401, 'unauthorized', 'a token is required (Authorization: Bearer <token>, or Basic with the token as password)', { 'WWW-Authenticate': challenge });
    }
    const token = tokens.find(presented);
    if (!token) {
      limiter.fail(client);
      throw new HttpProblem(401, 'unauthorized', 'the token is not valid', { 'WWW-Authenticate': `${challenge}, error="invalid_token"` });
    }
    if (scope !== 'read') auditOnFinish(req, res, audit, operation.operationId, token);
    if (scope !== 'read' && !token.scopes.has(scope)) {
      throw new HttpProblem(403, 'forbidden', `token "${token.name}" lacks the ${scope} scope`, {
        'WWW-Authenticate': `Bearer realm="release-server", error="insufficient_scope", scope="${scope}"`,
      });
    }
    next();
  };
}

/** Bearer <token>, or Basic with the token as the password (any user name); null for anything else. */
function credentialOf(header: string | undefined): string | null {
  const match = /^(bearer|basic)[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  if (!match) return null;
  if (match[1]!.toLowerCase() === 'bearer') return match[2]!;
  const decoded = Buffer.from(match[2]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && colon < decoded.length - 1 ? decoded.slice(colon + 1) : null;
}

/** A browser asking for a page gets the Basic challenge, so it shows its log-in prompt. */
function wantsHtml(req: Request, producesHtml: boolean): boolean {
  return producesHtml && req.query.format !== 'json' && req.accepts(['text/html', 'application/json']) === 'text/html';
}

function auditOnFinish(req: Request, res: Response, audit: Logger, operation: string, token: Token): void {
  // Read now: later routers replace req.params.
  const target = (req.params as { filename?: string }).filename;
  res.once('finish', () => {
    const uploaded = (req.files as { originalname?: string }[] | undefined)?.[0]?.originalname;
    audit.info(
      {
        token: token.name,
        operation,
        package: res.locals.audit?.package ?? uploaded ?? target ?? null,
        size: res.locals.audit?.size ?? null,
        sha256: res.locals.audit?.sha256 ?? null,
        client: req.ip,
        status: res.statusCode,
      },
      `${operation} ${res.statusCode}`,
    );
  });
}

/** `/assets/{filename}` → `/assets/:filename` */
function expressPath(path: string): string {
  return path.replace(/\{(\w+)\}/g, ':$1');
}
