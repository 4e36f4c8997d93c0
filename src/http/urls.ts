import type { Request } from 'express';

/**
 * The absolute base URL a client reached us at: the configured public URL, else the request's own scheme and
 * host (Express honours X-Forwarded-Proto and X-Forwarded-Host when `trust proxy` is set).
 */
export function baseUrl(req: Pick<Request, 'protocol' | 'host'>, publicUrl: string | null): string {
  return publicUrl ?? `${req.protocol}://${req.host}`;
}

export function assetUrl(base: string, name: string): string {
  return `${base}/assets/${encodeURIComponent(name)}`;
}
