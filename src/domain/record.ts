import type { BundleComponentKind, CatalogKind, PackageKind } from './kinds.js';

/** What is known of one stored package; persisted beside its bytes. */
export interface PackageRecord {
  /** Stable, never reused. */
  id: number;
  name: string;
  size: number;
  /** Lower-case hex. */
  sha256: string;
  /** ISO 8601: when a package of this name was first stored. */
  createdAt: string;
  /** ISO 8601: when the current bytes were uploaded. */
  updatedAt: string;
  downloadCount: number;
  /** The release it belongs to (`v0.2.0`), or null; always null for catalog packages. */
  tag: string | null;
  /** Decided by the manifest at upload; records stored before kinds existed are templates. */
  kind: PackageKind;
  /** What the catalog shows of an extension, preset or workflow; null for a template. */
  catalog: CatalogMetadata | null;
  /**
   * The store's reference to the immutable bytes this record describes (filesystem: their sha256; s3: an object
   * key). Set by `publish`; whatever a caller passes is ignored. Bytes are read through the record, never by name,
   * so that headers taken from a record and the bytes sent after them always belong together.
   */
  blob: string;
  /** Where a mirrored package came from; absent for a package published here. */
  provenance?: Provenance;
  /**
   * Whether the catalogs offer it for install. Absent means approved: what CI publishes here is approved on upload,
   * and records stored before approvals existed were.
   */
  approval?: Approval;
}

/** Where a mirrored package was fetched from, kept with its record for as long as it is stored. */
export interface Provenance {
  /** The configured source's name. */
  source: string;
  /** The URL the bytes were fetched from (after redirects). */
  url: string;
  /** The sha256 the source's catalog gave, lower-case hex, or null when it gave none. */
  upstreamSha256: string | null;
  /** ISO 8601. */
  fetchedAt: string;
}

export type ApprovalState = 'pending' | 'approved' | 'rejected';

/** Who decided what of a package, and when: shown on its page and audited. */
export interface Approval {
  state: ApprovalState;
  /** ISO 8601 of the decision (or of the mirroring, while pending). */
  at: string;
  /** The token's name, or `policy:<name>` for an automatic decision, or `upload` for what CI published. */
  by: string;
  reason?: string;
}

/** Catalogs offer for install only what is approved. */
export function isApproved(record: PackageRecord): boolean {
  return record.approval === undefined || record.approval.state === 'approved';
}

/**
 * A record that is no package: a catalog snapshot, stored and replicated as records are (its bytes are its content
 * as JSON), and kept by the service apart from every package view, so that no listing can show it by mistake.
 */
export type SnapshotRecord = Omit<PackageRecord, 'kind' | 'catalog' | 'tag'> & { kind: 'snapshot'; catalog: null; tag: null; snapshot: SnapshotContent };

/** What storage holds: packages and snapshots. */
export type StoredRecord = PackageRecord | SnapshotRecord;

export function isSnapshotRecord(record: StoredRecord): record is SnapshotRecord {
  return record.kind === 'snapshot';
}

/**
 * A catalog snapshot: for each kind, the records (by id, which is never reused) its catalog serves, one per
 * package id. Its records cannot be deleted, overwritten or removed by retention while it exists.
 */
export interface SnapshotContent {
  /** `2026-12`, `stable`: the name in `/catalogs/snapshots/{name}/…`. */
  name: string;
  members: Partial<Record<CatalogKind, number[]>>;
  /** The token that made it. */
  createdBy: string;
}

/** A file inside a stored zip, located when it was vetted: a step's files are served from there, one by one. */
export interface PackageMember {
  /** Relative path, `/`-separated, as the archive names it below the step's root. */
  path: string;
  /** Uncompressed. */
  size: number;
  /** Lower-case hex SHA-256 of the uncompressed bytes. */
  sha256: string;
  /** Where the member's (compressed) data starts in the package's bytes, past its local header. */
  offset: number;
  compressedSize: number;
  method: 'stored' | 'deflated';
}

/** One component a bundle installs, as its `bundle.yml` names it under `provides`. */
export interface BundleComponent {
  kind: BundleComponentKind;
  id: string;
  /** The pinned version; steps may be unpinned. */
  version?: string;
}

/** What a catalog shows of a package, read from its manifest when it was vetted; stored with its record. */
export interface CatalogMetadata {
  id: string;
  /** As the manifest writes it; the catalog serves it unchanged (workflow updates compare it as a string). */
  version: string;
  name: string;
  description: string;
  author?: string;
  license?: string;
  category?: string;
  effect?: string;
  tags?: string[];
  requires?: {
    speckit_version?: string;
    tools?: { name: string; version?: string; required?: boolean }[];
    integrations?: string[];
  };
  /** Counts by what is provided: `{commands: 2, hooks: 1}`. */
  provides?: Record<string, number>;
  /**
   * What the manifest provides, by name (`{what: 'command', name: 'speckit.acme.greet'}`, a hook as `event: command`),
   * for the package's page; not a catalog field (the CLI reads none such).
   */
  contents?: { what: string; name: string }[];
  /** Set by the server, never by a manifest: published with a token marked `verified` in tokens_file. */
  verified?: boolean;
  /** A bundle's role (`security-engineer`). */
  role?: string;
  /** A step's files (step.yml, __init__.py and any others), each served from the vetted package. */
  files?: PackageMember[];
  /** A bundle's components; the service checks each pin at upload and refuses to delete what one pins. */
  components?: BundleComponent[];
  repository?: string;
  homepage?: string;
  documentation?: string;
  changelog?: string;
}
