import { Readable } from 'node:stream';
import type { Config } from '../config.js';
import { CATALOG_KINDS, CATALOG_SECTION, type CatalogKind } from '../domain/kinds.js';
import type { Approval, Provenance } from '../domain/record.js';
import { HttpProblem } from '../http/problem.js';
import { baseUrl } from '../http/urls.js';
import type { PackageService } from '../service/packages.js';
import type { StagedBlob } from '../storage/storage.js';
import type { JsonObject } from '../transfer/archive.js';
import { catalogDocument } from './catalog-documents.js';
import type { Handler } from './types.js';

/** The tar reader and writer (tar-stream), loaded at the first export or import rather than at every start-up. */
const tarArchive = () => import('../transfer/archive.js');

/** Carries a snapshot across an air gap: one tar out (`GET /export`), the same tar in (`POST /import`). */
export function transferHandlers({ config, service }: { config: Config; service: PackageService }) {
  const exportSnapshot: Handler<'exportSnapshot'> = async (req, res) => {
    const snapshot = service.snapshot(req.query.snapshot);
    const base = baseUrl(req, config.publicUrl);
    const records = CATALOG_KINDS.flatMap((kind) => (snapshot.catalogs.get(kind) ?? []).map((p) => p.served));
    const catalogs: Record<string, JsonObject> = {};
    for (const kind of CATALOG_KINDS) {
      catalogs[CATALOG_SECTION[kind]] = catalogDocument(kind, snapshot.catalogs.get(kind) ?? [], base, { url: `${base}/catalogs/snapshots/${encodeURIComponent(snapshot.name)}/${CATALOG_SECTION[kind]}.json`, frozenAt: snapshot.createdAt }) as unknown as JsonObject;
    }
    const { writeExport } = await tarArchive();
    res.type('application/x-tar').attachment(`release-server-${snapshot.name}.tar`);
    // A HEAD (answered by this GET, http/head.ts) gets the headers only: writing the tar would read every package's
    // bytes from the store just for Node to discard them.
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    await writeExport(res, {
      manifest: { server: base, created_at: new Date().toISOString(), snapshot: snapshot.name, packages: records.map((r) => ({ name: r.name, size: r.size, sha256: r.sha256 })) },
      catalogs,
      packages: (async function* () {
        for (const record of records) {
          yield {
            name: record.name,
            size: record.size,
            sha256: record.sha256,
            record: { provenance: (record.provenance as unknown as JsonObject) ?? null, approval: (record.approval as unknown as JsonObject) ?? null },
            open: async () => {
              const { bytes } = await service.openAsset(record.name, () => null, () => ({ start: 0, end: record.size - 1 }));
              return Buffer.isBuffer(bytes) ? Readable.from([bytes]) : bytes!;
            },
          };
        }
      })(),
    });
  };

  const importArchive: Handler<'importArchive'> = async (req, res) => {
    const { DEFAULT_IMPORT_LIMITS, ExportArchiveError, readExport } = await tarArchive();
    const staged = new Map<string, StagedBlob>();
    let verified;
    try {
      verified = await readExport(req, async (name, _size, bytes) => {
        const blob = await service.stage(bytes);
        staged.set(name, blob);
        return { sha256: blob.sha256 };
      }, { ...DEFAULT_IMPORT_LIMITS, maxPackageBytes: config.maxUploadBytes, maxTotalBytes: config.maxUploadBytes });
    } catch (err) {
      for (const blob of staged.values()) await blob.discard();
      if (err instanceof ExportArchiveError) throw new HttpProblem(422, 'invalid-archive', `the archive was refused, and nothing was imported: ${err.message}`);
      throw err;
    }
    let items;
    try {
      items = verified.packages.map((p) => ({ name: p.name, staged: staged.get(p.name)!, approval: approvalOf(p.record.approval, p.name), provenance: provenanceOf(p.record.provenance, p.name) }));
    } catch (err) {
      for (const blob of staged.values()) await blob.discard();
      throw err;
    }
    const result = await service.importPackages(items);
    // The snapshot comes along too, holding exactly what the export held, unless one of that name is here already.
    const name = verified.manifest.snapshot;
    let snapshot: string | null = null;
    if (!service.snapshots().some((s) => s.name === name)) {
      const choices: Partial<Record<CatalogKind, Record<string, string>>> = {};
      for (const p of verified.packages) {
        const record = service.get(p.name);
        if (!record.catalog || record.kind === 'template') continue;
        (choices[record.kind] ??= {})[record.catalog.id] = record.catalog.version;
      }
      snapshot = (await service.createSnapshot(name, choices, `import by ${res.locals.token?.name ?? 'unknown'}`, { exact: true })).name;
    }
    res.locals.audit = { package: `import of snapshot ${verified.manifest.snapshot} (${result.imported.length} new, ${result.unchanged.length} already here)` };
    res.json({ ...result, snapshot });
  };

  return { exportSnapshot, importArchive };
}

const text = (v: unknown): v is string => typeof v === 'string' && v.length <= 4096;

/** An exported approval, checked: it decides what the catalogs offer, so nothing else than its shape gets in. */
function approvalOf(raw: JsonObject | null, name: string): Approval | null {
  if (raw === null) return null;
  const { state, at, by, reason } = raw;
  if (!(state === 'pending' || state === 'approved' || state === 'rejected') || !text(at) || Number.isNaN(Date.parse(at)) || !text(by) || (reason !== undefined && !text(reason))) {
    throw new HttpProblem(422, 'invalid-archive', `the archive was refused, and nothing was imported: records/${name}.json: approval is not {state, at, by, reason?}`);
  }
  return { state, at, by, ...(reason !== undefined ? { reason } : {}) };
}

function provenanceOf(raw: JsonObject | null, name: string): Provenance | null {
  if (raw === null) return null;
  const { source, url, upstreamSha256, fetchedAt } = raw;
  if (!text(source) || !text(url) || !(upstreamSha256 === null || (text(upstreamSha256) && /^[0-9a-f]{64}$/.test(upstreamSha256))) || !text(fetchedAt)) {
    throw new HttpProblem(422, 'invalid-archive', `the archive was refused, and nothing was imported: records/${name}.json: provenance is not {source, url, upstreamSha256, fetchedAt}`);
  }
  return { source, url, upstreamSha256, fetchedAt };
}
