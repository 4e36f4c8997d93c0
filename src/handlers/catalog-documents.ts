import { totalDownloads, type CatalogMetadata, type CatalogPackage, type CatalogRecord } from '../domain/catalog.js';
import { CATALOG_SECTION, type CatalogKind } from '../domain/kinds.js';
import { assetUrl } from '../http/urls.js';
import type { Schemas } from './types.js';

type Catalog = Schemas['ExtensionCatalog'] | Schemas['PresetCatalog'] | Schemas['WorkflowCatalog'];
const EPOCH = new Date(0).toISOString();

/**
 * A catalog as upstream `specify` reads it: one entry per id, the version its catalog serves. `updated_at` is
 * derived from the entries, not from the clock, so that the same packages always give the same bytes (and ETag).
 */
export function catalogDocument(kind: CatalogKind, packages: readonly CatalogPackage[], base: string): Catalog {
  const entries: Record<string, Schemas['PackageCatalogEntry'] | Schemas['WorkflowCatalogEntry']> = {};
  let updatedAt = EPOCH;
  for (const pkg of packages) {
    entries[pkg.id] = catalogEntry(pkg, base);
    if (pkg.served.updatedAt > updatedAt) updatedAt = pkg.served.updatedAt;
  }
  const section = CATALOG_SECTION[kind];
  return { schema_version: '1.0', updated_at: updatedAt, catalog_url: `${base}/catalogs/${section}.json`, [section]: entries } as Catalog;
}

function catalogEntry(pkg: CatalogPackage, base: string): Schemas['PackageCatalogEntry'] | Schemas['WorkflowCatalogEntry'] {
  const record = pkg.served;
  const fields: Schemas['CatalogEntryFields'] = {
    ...describe(record.catalog),
    id: pkg.id,
    sha256: record.sha256,
    size: record.size,
    downloads: totalDownloads(pkg),
    created_at: record.createdAt,
    updated_at: record.updatedAt,
  };
  return { ...fields, ...download(pkg.kind, record, base) };
}

/** The manifest's words, in the order the CLI shows them. */
function describe(meta: CatalogMetadata): Omit<Schemas['CatalogEntryFields'], 'sha256' | 'size' | 'downloads' | 'created_at' | 'updated_at'> {
  // `contents` is for this server's pages: a catalog entry holds only what the CLI reads.
  const { id, version, name, description, contents: _, ...optional } = meta;
  return { id, name, version, description, ...optional };
}

/** Workflows name their archive `url`; extensions and presets `download_url`. */
function download(kind: CatalogKind, record: CatalogRecord, base: string): { download_url: string } | { url: string } {
  const url = assetUrl(base, record.name);
  return kind === 'workflow' ? { url } : { download_url: url };
}

export function versionsDocument(pkg: CatalogPackage, base: string): Schemas['CatalogPackageVersions'] {
  return {
    kind: pkg.kind,
    id: pkg.id,
    versions: pkg.versions.map((record) => ({
      version: record.catalog.version,
      ...download(pkg.kind, record, base),
      sha256: record.sha256,
      size: record.size,
      created_at: record.createdAt,
      downloads: record.downloadCount,
    })),
  };
}
