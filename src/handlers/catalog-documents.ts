import { totalDownloads, type CatalogMetadata, type CatalogPackage, type CatalogRecord } from '../domain/catalog.js';
import { CATALOG_SECTION, KIND_RULES, type CatalogKind } from '../domain/kinds.js';
import { assetUrl } from '../http/urls.js';
import type { Schemas } from './types.js';

type Catalog = Schemas['ExtensionCatalog'] | Schemas['PresetCatalog'] | Schemas['WorkflowCatalog'] | Schemas['StepCatalog'] | Schemas['BundleCatalog'] | Schemas['IntegrationCatalog'];
type Entry = Record<string, unknown>;
const EPOCH = new Date(0).toISOString();

/**
 * The fields each kind's entry may hold besides its download: what the CLI reads of that kind, or what upstream's
 * own catalogs of it carry (../shared/docs/speckit-kinds.md). Nothing else reaches an entry.
 */
const ENTRY_FIELDS: Record<CatalogKind, readonly string[]> = {
  extension: ['id', 'name', 'version', 'description', 'verified', 'author', 'license', 'category', 'effect', 'tags', 'requires', 'provides', 'repository', 'homepage', 'documentation', 'changelog', 'downloads', 'created_at', 'updated_at'],
  preset: ['id', 'name', 'version', 'description', 'author', 'license', 'tags', 'requires', 'provides', 'repository', 'homepage', 'documentation', 'created_at', 'updated_at'],
  workflow: ['id', 'name', 'version', 'description', 'author', 'license', 'tags', 'requires', 'repository', 'documentation', 'changelog', 'created_at', 'updated_at'],
  step: ['id', 'name', 'version', 'description', 'author', 'license', 'tags', 'repository'],
  bundle: ['id', 'name', 'version', 'role', 'description', 'verified', 'author', 'license', 'requires', 'provides', 'repository', 'tags'],
  integration: ['id', 'name', 'version', 'description', 'author', 'license', 'repository', 'tags'],
};

/** Where a catalog's entries come from and what may change in them: a snapshot's never do. */
export interface CatalogSource {
  /** The catalog's own URL. */
  url: string;
  /** A snapshot's documents leave out what changes (download counts) and carry its creation time. */
  frozenAt?: string;
}

/**
 * A catalog as upstream `specify` reads it: one entry per id, the version its catalog serves. `updated_at` is
 * derived from the entries (or a snapshot's creation), not from the clock, so that the same packages always give
 * the same bytes (and ETag).
 */
export function catalogDocument(kind: CatalogKind, packages: readonly CatalogPackage[], base: string, source?: CatalogSource): Catalog {
  const entries: Record<string, Entry> = {};
  let updatedAt = EPOCH;
  for (const pkg of packages) {
    entries[pkg.id] = catalogEntry(pkg, base, source?.frozenAt !== undefined);
    if (pkg.served.updatedAt > updatedAt) updatedAt = pkg.served.updatedAt;
  }
  const section = CATALOG_SECTION[kind];
  return {
    schema_version: '1.0',
    updated_at: source?.frozenAt ?? updatedAt,
    catalog_url: source?.url ?? `${base}/catalogs/${section}.json`,
    [section]: entries,
  } as Catalog;
}

function catalogEntry(pkg: CatalogPackage, base: string, frozen: boolean): Entry {
  const record = pkg.served;
  const known: Entry = {
    ...describe(record.catalog),
    id: pkg.id,
    downloads: frozen ? undefined : totalDownloads(pkg),
    created_at: record.createdAt,
    updated_at: record.updatedAt,
  };
  const entry: Entry = {};
  for (const field of ENTRY_FIELDS[pkg.kind]) if (known[field] !== undefined) entry[field] = known[field];
  return { ...entry, ...download(pkg.kind, record, base) };
}

/** The manifest's words. */
function describe(meta: CatalogMetadata): Entry {
  // `contents`, `files` and `components` are for this server's pages and checks: the CLI reads none such.
  const { contents: _c, files: _f, components: _b, ...fields } = meta;
  return fields;
}

/**
 * What an entry downloads, always with the sha256 of the stored package. A step's files are each served from the
 * package they were vetted in, under its sha256: the CLI checks no hash for steps, so the URL is what fixes the bytes.
 */
function download(kind: CatalogKind, record: CatalogRecord, base: string): Entry {
  const rules = KIND_RULES[kind];
  if (rules.download === null) return {};
  if (rules.download === 'step-files') {
    const fileUrl = (path: string) => `${base}/files/${record.sha256}/${encodeURIComponent(path)}`;
    const extra: Record<string, string> = {};
    for (const file of record.catalog.files ?? []) {
      if (file.path !== 'step.yml' && file.path !== '__init__.py') extra[file.path] = fileUrl(file.path);
    }
    return { step_yml_url: fileUrl('step.yml'), init_url: fileUrl('__init__.py'), extra_files: extra, sha256: record.sha256 };
  }
  return { [rules.download]: assetUrl(base, record.name), sha256: record.sha256 };
}

export function versionsDocument(pkg: CatalogPackage, base: string, holders: (record: CatalogRecord) => readonly string[]): Schemas['CatalogPackageVersions'] {
  return {
    kind: pkg.kind,
    id: pkg.id,
    versions: pkg.versions.map((record) => {
      const { step_yml_url, url, download_url } = download(pkg.kind, record, base) as { step_yml_url?: string; url?: string; download_url?: string };
      const held = holders(record);
      return {
        version: record.catalog.version,
        ...(download_url ? { download_url } : {}),
        ...(url ? { url } : {}),
        ...(step_yml_url ? { step_yml_url } : {}),
        sha256: record.sha256,
        size: record.size,
        ...(record.approval ? { approval: record.approval } : {}),
        ...(record.provenance ? { provenance: provenanceOf(record.provenance) } : {}),
        ...(held.length > 0 ? { held_by: [...held] } : {}),
        created_at: record.createdAt,
        downloads: record.downloadCount,
      };
    }),
  };
}

function provenanceOf(p: NonNullable<CatalogRecord['provenance']>): Schemas['Provenance'] {
  return { source: p.source, url: p.url, upstream_sha256: p.upstreamSha256, fetched_at: p.fetchedAt };
}
