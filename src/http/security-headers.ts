import type { RequestHandler, Response } from 'express';

/**
 * The server's own pages (/packages) hold one inline style sheet and nothing else: no script, no image, no form,
 * and no other site may frame them. /docs sets its own, wider policy (Redoc runs scripts).
 */
export const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Every answer: the declared media type is the only one a browser may take it for. */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  next();
};

/** For an HTML page of ours: no framing by other sites, nothing loaded from elsewhere. */
export function setPageHeaders(res: Response, csp: string = PAGE_CSP): void {
  res.setHeader('Content-Security-Policy', csp);
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
}
