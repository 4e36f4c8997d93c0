import type { Request, Response } from 'express';
import type { Config } from '../config.js';
import { BodyCache } from '../http/body-cache.js';
import { assetUrl, baseUrl } from '../http/urls.js';
import type { PackageService } from '../service/packages.js';
import { latestRelease, taggedRelease, toAsset } from './representations.js';
import type { Handler } from './types.js';

const DEFAULT_PER_PAGE = 30;
const MAX_PER_PAGE = 100;

export function releaseHandlers({ config, service }: { config: Config; service: PackageService }) {
  const bodies = new BodyCache();

  const latest = (req: Request, res: Response): void => {
    const base = baseUrl(req, config.publicUrl);
    bodies.sendJson(res, `latest ${base}`, service, () => latestRelease(service.latest(), base, new Date()));
  };

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- shared by two operations with different response unions
  const list = (req: Request<Record<string, string>, any, unknown, { per_page?: number; page?: number }>, res: Response): void => {
    const base = baseUrl(req, config.publicUrl);
    // As GitHub does: more than the maximum counts as the maximum rather than failing.
    const perPage = Math.min(MAX_PER_PAGE, Number(req.query.per_page ?? DEFAULT_PER_PAGE));
    const page = Number(req.query.page ?? 1);
    const releases = service.releases();
    const last = Math.max(1, Math.ceil(releases.length / perPage));
    const links = paginationLinks(`${base}${req.path}`, perPage, page, last);
    if (links) res.set('Link', links);
    bodies.sendJson(res, `releases ${perPage} ${page} ${base}`, service, () =>
      releases.slice((page - 1) * perPage, page * perPage).map((group) => taggedRelease(group, base, new Date())),
    );
  };

  const byTag = (req: Request<{ tag: string }>, res: Response): void => {
    const base = baseUrl(req, config.publicUrl);
    const group = service.release(req.params.tag);
    bodies.sendJson(res, `tag ${group.tag} ${base}`, service, () => taggedRelease(group, base, new Date()));
  };

  const asset = (req: Request<{ id: number | string }>, res: Response): void => {
    const base = baseUrl(req, config.publicUrl);
    const record = service.getById(Number(req.params.id));
    // As GitHub answers: Accept: application/octet-stream asks for the bytes, anything else for the JSON.
    if (req.accepts(['application/json', 'application/octet-stream']) === 'application/octet-stream' && req.get('accept')?.includes('application/octet-stream')) {
      res.redirect(302, assetUrl(base, record.name));
      return;
    }
    res.json(toAsset(record, base));
  };

  const getLatestRelease: Handler<'getLatestRelease'> = latest;
  const getLatestReleaseAlias: Handler<'getLatestReleaseAlias'> = latest;
  const getRepoLatestRelease: Handler<'getRepoLatestRelease'> = latest;
  const listReleases: Handler<'listReleases'> = list;
  const listRepoReleases: Handler<'listRepoReleases'> = list;
  const getReleaseByTag: Handler<'getReleaseByTag'> = byTag;
  const getRepoReleaseByTag: Handler<'getRepoReleaseByTag'> = byTag;
  const getReleaseAsset: Handler<'getReleaseAsset'> = asset;
  const getRepoReleaseAsset: Handler<'getRepoReleaseAsset'> = asset;
  return {
    getLatestRelease,
    getLatestReleaseAlias,
    getRepoLatestRelease,
    listReleases,
    listRepoReleases,
    getReleaseByTag,
    getRepoReleaseByTag,
    getReleaseAsset,
    getRepoReleaseAsset,
  };
}

/** GitHub's Link header: next and last while there are more pages, first and prev past the first. */
function paginationLinks(url: string, perPage: number, page: number, last: number): string {
  const link = (p: number, rel: string) => `<${url}?per_page=${perPage}&page=${p}>; rel="${rel}"`;
  const links: string[] = [];
  if (page < last) links.push(link(page + 1, 'next'), link(last, 'last'));
  if (page > 1) links.push(link(1, 'first'), link(Math.min(page - 1, last), 'prev'));
  return links.join(', ');
}
