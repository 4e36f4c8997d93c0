import type { RequestHandler, Response } from 'express';

/**
 * The server's own pages load their script, style sheet, icon and search index from this host and nothing else; their
 * one form (search) submits here, and no other site may frame them. /docs sets its own, wider policy (Redoc inlines
 * its scripts).
 */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

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
