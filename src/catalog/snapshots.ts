import type { CatalogPackage, CatalogRecord } from '../domain/catalog.js';
import { CATALOG_KINDS, type CatalogKind } from '../domain/kinds.js';
import { samePep440Version } from '../domain/pep440.js';
import type { SnapshotContent, SnapshotRecord } from '../domain/record.js';
import { pinProblems, type PinProblem } from './pins.js';

/** A snapshot as readers see it: for each kind, the packages it serves, one record per id, ids in order. */
export interface Snapshot {
  name: string;
  createdAt: string;
  createdBy: string;
  record: SnapshotRecord;
  catalogs: Map<CatalogKind, CatalogPackage[]>;
}

/** Versions chosen instead of the served ones: `{extension: {'acme-hello': '1.0.0'}}`. */
export type VersionChoices = Partial<Record<CatalogKind, Record<string, string>>>;

export type Freeze =
  | { ok: true; members: SnapshotContent['members'] }
  | { ok: false; missing: string[] }
  | { ok: false; pins: PinProblem[] };

/**
 * What a new snapshot holds: each id at the version its catalog serves, or the stored version `choices` names.
 * Refused when a choice is not stored, or when a bundle in it pins a version that the snapshot's catalog of that
 * kind does not serve (the CLI would look the pin up there and fail).
 */
export function freeze(name: string, catalogs: (kind: CatalogKind) => readonly CatalogPackage[], choices: VersionChoices = {}, exact = false): Freeze {
  const chosen = new Map<CatalogKind, Map<string, CatalogRecord>>();
  const missing: string[] = [];
  for (const kind of CATALOG_KINDS) {
    const byId = new Map<string, CatalogRecord>();
    const packages = new Map(catalogs(kind).map((p) => [p.id, p]));
    // Exact: only the chosen versions (an imported snapshot), not everything the catalogs serve besides.
    if (!exact) for (const pkg of packages.values()) byId.set(pkg.id, pkg.served);
    for (const [id, version] of Object.entries(choices[kind] ?? {})) {
      const record = packages.get(id)?.versions.find((r) => samePep440Version(r.catalog.version, version));
      if (record) byId.set(id, record);
      else missing.push(`${kind} ${id} ${version}`);
    }
    chosen.set(kind, byId);
  }
  if (missing.length > 0) return { ok: false, missing };
  const served = (kind: CatalogKind, id: string): CatalogRecord[] => {
    const record = chosen.get(kind)?.get(id);
    return record ? [record] : [];
  };
  const pins: PinProblem[] = [];
  for (const bundle of chosen.get('bundle')?.values() ?? []) {
    for (const problem of pinProblems(bundle.catalog.components ?? [], served, `snapshot ${name}`)) {
      pins.push({ path: `bundle ${bundle.catalog.id} ${bundle.catalog.version}: ${problem.path}`, message: problem.message });
    }
  }
  if (pins.length > 0) return { ok: false, pins };
  const members: SnapshotContent['members'] = {};
  for (const [kind, byId] of chosen) {
    if (byId.size > 0) members[kind] = [...byId.values()].map((r) => r.id);
  }
  return { ok: true, members };
}

/** Reads a snapshot record back into catalogs; `byId` finds the records it names (none is ever missing). */
export function snapshotOf(record: SnapshotRecord, byId: (id: number) => CatalogRecord | undefined): Snapshot {
  const catalogs = new Map<CatalogKind, CatalogPackage[]>();
  for (const kind of CATALOG_KINDS) {
    const packages: CatalogPackage[] = [];
    for (const id of record.snapshot.members[kind] ?? []) {
      const member = byId(id);
      if (member) packages.push({ kind, id: member.catalog.id, versions: [member], served: member });
    }
    packages.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    catalogs.set(kind, packages);
  }
  return { name: record.snapshot.name, createdAt: record.createdAt, createdBy: record.snapshot.createdBy, record, catalogs };
}

/** The name a snapshot's record is stored under: a leading dot, which no package name may have. */
export function snapshotRecordName(name: string): string {
  return `.snapshot-${name}`;
}
