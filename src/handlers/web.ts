import type { Config } from '../config.js';
import { CATALOG_KINDS } from '../domain/kinds.js';
import { BodyCache, sendFixed } from '../http/body-cache.js';
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
      const counts = { templates, releases: service.releases().length, extension: 0, preset: 0, workflow: 0, step: 0, bundle: 0, integration: 0 };
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

  const getStaticFile: Handler<'getStaticFile'> = (req, res) => {
    // Revalidated, not cached blind: a new release of the server changes them.
    res.set('Cache-Control', 'no-cache');
    sendFixed(res, staticFiles[req.params.file]);
  };

  return { getHome, getSearchIndex, getPackagePage, getStaticFile };
}
