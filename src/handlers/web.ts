import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import { CATALOG_KINDS } from '../domain/kinds.js';
import { BodyCache } from '../http/body-cache.js';
import { notModified } from '../http/conditional.js';
import { setPageHeaders } from '../http/security-headers.js';
import { baseUrl } from '../http/urls.js';
import type { PackageService } from '../service/packages.js';
import type { loadStaticFiles, WebPages } from '../web/pages.js';
import { search, searchItems } from '../web/search.js';
import type { Handler } from './types.js';

export interface WebHandlerDeps {
  config: Config;
  service: PackageService;
  webPages: WebPages;
  staticFiles: ReturnType<typeof loadStaticFiles>;
}

export function webHandlers({ config, service, webPages, staticFiles }: WebHandlerDeps) {
  const bodies = new BodyCache();
  const catalogs = () => CATALOG_KINDS.map((kind) => ({ kind, packages: service.catalog(kind) }));
  const items = (base: string) => searchItems(service.releases(), catalogs(), base);

  const getHome: Handler<'getHome'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    const query = (req.query.q ?? '').trim();
    setPageHeaders(res);
    bodies.sendHtml(res, `home ${base} ${query}`, service, () => {
      const templates = service.list().filter((r) => r.kind === 'template').length;
      const counts = { templates, releases: service.releases().length, extension: 0, preset: 0, workflow: 0 };
      for (const { kind, packages } of catalogs()) counts[kind] = packages.length;
      return webPages.home({ counts, query, results: search(items(base), query) }, base);
    });
  };

  const getSearchIndex: Handler<'getSearchIndex'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    bodies.sendJson(res, `index ${base}`, service, () => ({ items: items(base) }));
  };

  const getPackagePage: Handler<'getPackagePage'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    const { kind, id } = req.params;
    setPageHeaders(res);
    if (kind === 'template') {
      const release = service.release(id);
      bodies.sendHtml(res, `release ${release.tag} ${base}`, service, () => webPages.releasePage(release, service.latest()[0]?.tag === release.tag, base));
      return;
    }
    const pkg = service.catalogPackage(kind, id);
    bodies.sendHtml(res, `package ${pkg.kind} ${pkg.id} ${base}`, service, () => webPages.packagePage(pkg, base));
  };

  const etags = Object.fromEntries(Object.entries(staticFiles).map(([name, file]) => [name, `"${createHash('sha256').update(file.bytes).digest('base64url').slice(0, 32)}"`]));
  const getStaticFile: Handler<'getStaticFile'> = (req, res) => {
    const file = staticFiles[req.params.file];
    const etag = etags[req.params.file]!;
    // Revalidated, not cached blind: a new release of the server changes them.
    res.set({ ETag: etag, 'Cache-Control': 'no-cache' });
    if (notModified(req, etag)) {
      res.status(304).end();
      return;
    }
    res.type(file.type).send(file.bytes);
  };

  return { getHome, getSearchIndex, getPackagePage, getStaticFile };
}
