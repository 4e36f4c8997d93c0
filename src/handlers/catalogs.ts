import type { Request, Response } from 'express';
import type { Config } from '../config.js';
import { CATALOG_SECTION, kindOfCatalogFile, kindOfSection, type CatalogKind } from '../domain/kinds.js';
import { BodyCache } from '../http/body-cache.js';
import { HttpProblem } from '../http/problem.js';
import { baseUrl } from '../http/urls.js';
import type { PackageService } from '../service/packages.js';
import type { Snapshot } from '../catalog/snapshots.js';
import { catalogDocument, versionsDocument } from './catalog-documents.js';
import type { Handler, Schemas } from './types.js';

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
    bodies.sendJson(res, `versions ${pkg.kind} ${pkg.id} ${base}`, service, () => versionsDocument(pkg, base, (r) => service.holdersOf(r)));
  };

  const snapshotCatalogUrl = (base: string, name: string, kind: CatalogKind) => `${base}/catalogs/snapshots/${encodeURIComponent(name)}/${CATALOG_SECTION[kind]}.json`;
  const describeSnapshot = (snapshot: Snapshot, base: string): Schemas['Snapshot'] => ({
    name: snapshot.name,
    created_at: snapshot.createdAt,
    created_by: snapshot.createdBy,
    catalogs: Object.fromEntries([...snapshot.catalogs.keys()].map((kind) => [kind, snapshotCatalogUrl(base, snapshot.name, kind)])),
    setup_url: `${base}/setup?snapshot=${encodeURIComponent(snapshot.name)}`,
    versions: Object.fromEntries([...snapshot.catalogs].map(([kind, packages]) => [kind, Object.fromEntries(packages.map((p) => [p.id, p.served.catalog.version]))])),
  });

  // A snapshot's catalogs are built from records nothing may change (service.remove and publish refuse), and carry
  // no download counts: the same bytes for as long as the snapshot lives.
  const getSnapshotCatalog: Handler<'getSnapshotCatalog'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    const snapshot = service.snapshot(req.params.name);
    const kind = kindOfCatalogFile(req.params.catalog)!;
    bodies.sendJson(res, `snapshot ${snapshot.name} ${snapshot.record.id} ${kind} ${base}`, service, () =>
      catalogDocument(kind, snapshot.catalogs.get(kind) ?? [], base, { url: snapshotCatalogUrl(base, snapshot.name, kind), frozenAt: snapshot.createdAt }),
    );
  };

  const listSnapshots: Handler<'listSnapshots'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    bodies.sendJson(res, `snapshots ${base}`, service, () => service.snapshots().map((s) => describeSnapshot(s, base)));
  };

  const createSnapshot: Handler<'createSnapshot'> = async (req, res) => {
    const body = req.body as Schemas['SnapshotRequest'];
    const createdBy = res.locals.token?.name ?? 'unknown';
    const snapshot = await service.createSnapshot(body.name, body.versions ?? {}, createdBy);
    const base = baseUrl(req, config.publicUrl);
    res.locals.audit = { package: `snapshot ${snapshot.name}` };
    res.status(201).location(snapshotCatalogUrl(base, snapshot.name, 'extension')).json(describeSnapshot(snapshot, base));
  };

  const deleteSnapshot: Handler<'deleteSnapshot'> = async (req, res) => {
    await service.deleteSnapshot(req.params.name);
    res.locals.audit = { package: `snapshot ${req.params.name}` };
    res.status(204).end();
  };

  // Shaped as the live catalog, for an install_allowed: false entry; its downloads answer 403 until approved.
  const getDiscoveryCatalog: Handler<'getDiscoveryCatalog'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    const kind = kindOfCatalogFile(req.params.catalog)!;
    bodies.sendJson(res, `discovery ${kind} ${base}`, service, () =>
      catalogDocument(kind, service.discovery(kind), base, { url: `${base}/discovery/${CATALOG_SECTION[kind]}.json` }),
    );
  };

  const decide = (state: 'approved' | 'rejected') => async (req: Request<{ kind: string; id: string; version: string }>, res: Response): Promise<void> => {
    const kind = kindOfSection(req.params.kind)!;
    const reason = (req.body as Schemas['Decision'] | undefined)?.reason;
    if (state === 'rejected' && !reason) throw new HttpProblem(400, 'invalid-request', 'say why in "reason": the record keeps it, and the package page shows it');
    const by = res.locals.token?.name ?? 'unknown';
    const record = await service.decide(kind, req.params.id, req.params.version, { state, at: new Date().toISOString(), by, ...(reason ? { reason } : {}) });
    res.locals.audit = { package: record.name, sha256: record.sha256 };
    const base = baseUrl(req, config.publicUrl);
    res.json(versionsDocument(service.catalogPackage(kind, req.params.id), base, (r) => service.holdersOf(r)));
  };

  return {
    getDiscoveryCatalog,
    approveVersion: decide('approved') as unknown as Handler<'approveVersion'>,
    rejectVersion: decide('rejected') as unknown as Handler<'rejectVersion'>,
    getExtensionCatalog: catalog('extension') as Handler<'getExtensionCatalog'>,
    getPresetCatalog: catalog('preset') as Handler<'getPresetCatalog'>,
    getWorkflowCatalog: catalog('workflow') as Handler<'getWorkflowCatalog'>,
    getStepCatalog: catalog('step') as Handler<'getStepCatalog'>,
    getBundleCatalog: catalog('bundle') as Handler<'getBundleCatalog'>,
    getIntegrationCatalog: catalog('integration') as Handler<'getIntegrationCatalog'>,
    getCatalogPackage,
    getSnapshotCatalog,
    listSnapshots,
    createSnapshot,
    deleteSnapshot,
  };
}
