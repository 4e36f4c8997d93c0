import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { CatalogMetadata } from '../domain/catalog.js';
import { CATALOG_KINDS, MANIFEST_FILE, type CatalogKind, type PackageFormat } from '../domain/kinds.js';
import { inflateMembers, openArchive, type ArchiveLimits, type ArchiveSource } from './archive.js';
import { checkManifest, MANIFEST_LIMITS } from './manifest.js';
import type { Violation } from './zip-structure.js';

export type { Violation } from './zip-structure.js';

/**
 * What vetting decides, as plain data (it crosses from the worker thread): what the package is, or every reason
 * spec-kit would not install it. The service turns a refusal into its own error.
 */
export type Verdict =
  | { accepted: true; kind: 'template'; format: 'zip'; catalog: null }
  | { accepted: true; kind: CatalogKind; format: PackageFormat; catalog: CatalogMetadata }
  | { accepted: false; violations: Violation[] };

const MiB = 1024 * 1024;

/** spec-kit's own extraction limits (`_download_security`): a package beyond them would not install. */
export const CATALOG_LIMITS: ArchiveLimits = { maxEntries: 512, maxEntryBytes: 10 * MiB, maxTotalBytes: 50 * MiB, maxCentralDirectoryBytes: 4 * MiB };

/**
 * Templates are unpacked by the spec-kit fork's `specify init`, which sets no limits of its own; these bound the
 * work of vetting (and of unpacking) while leaving room for any real template.
 */
export const TEMPLATE_LIMITS: ArchiveLimits = { maxEntries: 10_000, maxEntryBytes: 1024 * MiB, maxTotalBytes: 1024 * MiB, maxCentralDirectoryBytes: 16 * MiB };

/** Vets the zip archive in a local file (a staged upload). */
export async function vetFile(path: string): Promise<Verdict> {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const source: ArchiveSource = {
      size,
      read(offset, length) {
        const buffer = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
        let done = 0;
        while (done < buffer.length) {
          const n = readSync(fd, buffer, done, buffer.length - done, offset + done);
          if (n === 0) break;
          done += n;
        }
        return buffer.subarray(0, done);
      },
      // An empty range is an empty stream (createReadStream throws on end < start).
      stream: (start, end) => (end <= start ? Readable.from([]) : createReadStream(path, { start, end: end - 1, highWaterMark: 64 * 1024 })),
      readInto: (buffer, offset) => (offset >= size ? 0 : readSync(fd, buffer, 0, Math.min(buffer.length, size - offset), offset)),
    };
    return await vetArchive(source);
  } finally {
    closeSync(fd);
  }
}

/**
 * Decides what a package is, or refuses it (each violation listed) unless spec-kit would install it: a zip that
 * every reader reads alike, whose every entry passes the extractor's rules, and, for an extension, preset or
 * workflow, a manifest that passes the CLI's validation and ours. The stages: structure and entries
 * (`openArchive`), then the members, inflated once and counted (`inflateMembers`), then the manifest
 * (`checkManifest`). Never inflates a whole archive into memory nor writes an entry anywhere.
 */
export async function vetArchive(source: ArchiveSource): Promise<Verdict> {
  const refuse = (violations: Violation[]): Verdict => ({
    accepted: false,
    violations: violations.length > 0 ? violations : [{ path: '(archive)', message: 'the package cannot be installed' }],
  });
  const archive = openArchive(source, TEMPLATE_LIMITS);
  if (!('entries' in archive)) return refuse(archive.violations);
  const violations = [...archive.violations];
  const located = locateManifest(archive.files, archive.directories, archive.entries.map((e) => e.name));
  violations.push(...located.violations);
  const kind = located.manifest?.kind ?? 'template';
  const limits = kind === 'template' ? TEMPLATE_LIMITS : CATALOG_LIMITS;
  if (archive.entries.length > limits.maxEntries) {
    violations.push({ path: '(archive)', message: `the archive has ${archive.entries.length} entries; a ${kind} may have at most ${limits.maxEntries}` });
  }
  if (archive.centralDirectoryBytes > limits.maxCentralDirectoryBytes) {
    violations.push({ path: '(archive)', message: `the central directory is larger than ${limits.maxCentralDirectoryBytes} bytes` });
  }
  if (violations.length > 0 && !located.manifest) return refuse(violations);
  const manifestPath = located.manifest?.path;
  const inflated = await inflateMembers(source, archive.entries, limits, (name) => name === manifestPath, MANIFEST_LIMITS.maxBytes);
  violations.push(...inflated.violations);
  if (!located.manifest || kind === 'template') {
    if (violations.length > 0) return refuse(violations);
    return { accepted: true, kind: 'template', format: 'zip', catalog: null };
  }
  const text = inflated.kept.get(located.manifest.path);
  if (!text) return refuse(violations);
  const checked = checkManifest({ kind: located.manifest.kind, path: located.manifest.path, text, files: archive.files });
  violations.push(...checked.violations);
  if (violations.length > 0 || !checked.metadata) return refuse(violations);
  return { accepted: true, kind: located.manifest.kind, format: 'zip', catalog: checked.metadata };
}

/**
 * Where the CLI looks for a manifest: at the root, or at the root of the only top-level directory (files at the
 * root do not count as directories, so a `__MACOSX/` beside the package directory hides the manifest from it).
 */
function locateManifest(
  files: ReadonlySet<string>,
  directories: ReadonlySet<string>,
  names: readonly string[],
): { manifest: { kind: CatalogKind; path: string } | null; violations: Violation[] } {
  const topDirectories = new Set<string>();
  for (const name of names) {
    const slash = name.indexOf('/');
    if (slash > 0) topDirectories.add(name.slice(0, slash));
    else if (directories.has(name)) topDirectories.add(name);
  }
  const found = (prefix: string) => CATALOG_KINDS.filter((kind) => files.has(prefix + MANIFEST_FILE[kind])).map((kind) => ({ kind, path: prefix + MANIFEST_FILE[kind] }));
  let candidates = found('');
  if (candidates.length === 0 && topDirectories.size === 1) candidates = found(`${[...topDirectories][0]}/`);
  if (candidates.length > 1) {
    return { manifest: null, violations: [{ path: candidates.map((c) => c.path).join(', '), message: 'a package has one manifest: extension.yml, preset.yml or workflow.yml' }] };
  }
  if (candidates.length === 1) return { manifest: candidates[0]!, violations: [] };
  const misplaced = [...topDirectories].flatMap((dir) => found(`${dir}/`));
  if (misplaced.length > 0) {
    const tops = [...topDirectories].sort().join('", "');
    return {
      manifest: null,
      violations: misplaced.map((m) => ({
        path: m.path,
        message: `spec-kit will not find this manifest: it must be at the archive root or in its only top-level directory, and the archive has ${topDirectories.size} ("${tops}")`,
      })),
    };
  }
  return { manifest: null, violations: [] };
}
