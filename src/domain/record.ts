import type { PackageKind } from './kinds.js';

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
  repository?: string;
  homepage?: string;
  documentation?: string;
  changelog?: string;
}
