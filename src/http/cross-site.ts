import type { Request } from 'express';

/**
 * Why an unsafe request (upload, delete) looks like one a browser made on behalf of a page of another origin, or
 * null: defence in depth beside "writes need Bearer" (auth.ts), for the day a browser holds a credential it sends
 * on its own. Browsers say where a request comes from in `Sec-Fetch-Site` and `Origin`; programs (curl, the
 * upload scripts, the CLIs) send neither and go through.
 */
export function crossSiteReason(req: Request, ownOrigin: string): string | null {
  const site = req.get('sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return `a ${site} ${req.method} from a web page is refused; send it from a program, with Authorization: Bearer <token>`;
  }
  const origin = req.get('origin');
  if (origin !== undefined && origin !== ownOrigin) {
    return `a ${req.method} from the web page at ${JSON.stringify(origin)} is refused; this server takes writes from programs (Authorization: Bearer <token>) or its own pages only`;
  }
  return null;
}
