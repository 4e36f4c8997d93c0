import type { Request, Response } from 'express';
import type { Config } from '../config.js';
import { kindOfSection, type CatalogKind } from '../domain/kinds.js';
import { BodyCache } from '../http/body-cache.js';
import { baseUrl } from '../http/urls.js';
import type { PackageService } from '../service/packages.js';
import { catalogDocument, versionsDocument } from './catalog-documents.js';
import type { Handler } from './types.js';

export function catalogHandlers({ config, service }: { config: Config; service: PackageService }) {
  const bodies = new BodyCache();

  const catalog = (kind: CatalogKind) => (req: Request, res: Response): void => {
    const base = baseUrl(req, config.publicUrl);
    bodies.sendJson(res, `${kind} ${base}`, service, () => catalogDocument(kind, service.catalog(kind), base));
  };

  const getCatalogPackage: Handler<'getCatalogPackage'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    // The validator has checked `kind` against the enum of sections.
    const pkg = service.catalogPackage(kindOfSection(req.params.kind)!, req.params.id);
    bodies.sendJson(res, `versions ${pkg.kind} ${pkg.id} ${base}`, service, () => versionsDocument(pkg, base));
  };

  const getExtensionCatalog: Handler<'getExtensionCatalog'> = catalog('extension');
  const getPresetCatalog: Handler<'getPresetCatalog'> = catalog('preset');
  const getWorkflowCatalog: Handler<'getWorkflowCatalog'> = catalog('workflow');
  return { getExtensionCatalog, getPresetCatalog, getWorkflowCatalog, getCatalogPackage };
}
