import { FORMAT_SUFFIX, type CatalogKind, type PackageFormat } from './kinds.js';
import { comparePep440Descending, isPep440Prerelease, normalizePep440 } from './pep440.js';
import type { CatalogMetadata, PackageRecord } from './record.js';
import { newestUploadFirst } from './releases.js';

export type { CatalogMetadata };

/** A record of a package that a catalog lists. */
export type CatalogRecord = PackageRecord & { kind: CatalogKind; catalog: CatalogMetadata };

export function isCatalogRecord(record: PackageRecord): record is CatalogRecord {
  return record.kind !== 'template' && record.catalog !== null;
}

/** Every stored version of one id, and the one its catalog serves. */
export interface CatalogPackage {
  kind: CatalogKind;
  id: string;
  /** Highest PEP 440 version first; equal versions, newest upload first. */
  versions: CatalogRecord[];
  /** The highest version that is not a pre-release, or the highest of all when every one is. */
  served: CatalogRecord;
}

/** Download counts of every version, summed; read when a body is built, as counts change without a new view. */
export function totalDownloads(pkg: CatalogPackage): number {
  return pkg.versions.reduce((sum, r) => sum + r.downloadCount, 0);
}

/**
 * The stored name of a catalog package: the uploaded file name does not matter, kind, id, version and format do
 * (the CLI takes an archive's format from its URL's suffix, so the suffix always says what the bytes are).
 */
export function catalogFileName(kind: CatalogKind, id: string, version: string, format: PackageFormat): string {
  return `${kind}-${id}-${normalizePep440(version)}${FORMAT_SUFFIX[format]}`;
}

/** Groups the records of one kind by id, ids in alphabetical order; `include` chooses which records count. */
export function catalogPackages(kind: CatalogKind, records: readonly PackageRecord[], include: (record: PackageRecord) => boolean = () => true): CatalogPackage[] {
  const byId = new Map<string, CatalogRecord[]>();
  for (const record of records) {
    if (record.kind !== kind || !isCatalogRecord(record) || !include(record)) continue;
    const versions = byId.get(record.catalog.id);
    if (versions) versions.push(record);
    else byId.set(record.catalog.id, [record]);
  }
  return [...byId.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, versions]) => {
      versions.sort((a, b) => comparePep440Descending(a.catalog.version, b.catalog.version) || newestUploadFirst(a, b));
      return {
        kind,
        id,
        versions,
        served: versions.find((r) => !isPep440Prerelease(r.catalog.version)) ?? versions[0]!,
      };
    });
}
