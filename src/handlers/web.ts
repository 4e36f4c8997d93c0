import type { Config } from '../config.js';
import { CATALOG_KINDS } from '../domain/kinds.js';
import { BodyCache, sendFixed } from '../http/body-cache.js';
import { HttpProblem } from '../http/problem.js';
import { setPageHeaders } from '../http/security-headers.js';
import { baseUrl } from '../http/urls.js';
import type { PackageService } from '../service/packages.js';
import { setupFile } from '../setup/client-setup.js';
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
      const snapshots = service.snapshots().map((s) => ({ name: s.name, created_at: s.createdAt }));
      return webPages.home({ counts, query, results: search(items(base), query), snapshots }, base);
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
    bodies.sendHtml(res, `package ${pkg.kind} ${pkg.id} ${base}`, service, () =>
      webPages.packagePage(pkg, base, {
        holdersOf: (record) => service.holdersOf(record),
        find: (k, i) => service.catalog(k).find((p) => p.id === i),
      }),
    );
  };

  const getStaticFile: Handler<'getStaticFile'> = (req, res) => {
    // Revalidated, not cached blind: a new release of the server changes them.
    res.set('Cache-Control', 'no-cache');
    sendFixed(res, staticFiles[req.params.file]);
  };

  // What a user would otherwise assemble by hand from the CLI's docs, for this server's URL (src/setup/).
  const getSetup: Handler<'getSetup'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    const snapshot = req.query.snapshot ?? null;
    // An unknown snapshot is a 404 here rather than files that point at catalogs that 404.
    if (snapshot !== null) service.snapshot(snapshot);
    const privateServer = config.readAccess === 'token';
    const format = req.query.format;
    if (format) {
      const file = setupFile({ base, snapshot, privateServer, host: base }, format);
      if (!file) throw new HttpProblem(404, 'not-found', 'auth.json is for private servers; this one lets anyone read, so the CLI needs no credentials for it');
      res.type(file.contentType).set('Cache-Control', 'no-cache').send(file.text);
      return;
    }
    setPageHeaders(res);
    bodies.sendHtml(res, `setup ${base} ${snapshot ?? ''}`, service, () =>
      webPages.setup({ snapshot, snapshots: service.snapshots().map((s) => ({ name: s.name, created_at: s.createdAt })), privateServer }, base),
    );
  };

  return { getHome, getSearchIndex, getPackagePage, getStaticFile, getSetup };
}
