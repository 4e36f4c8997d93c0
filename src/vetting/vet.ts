import type { CatalogMetadata } from '../domain/catalog.js';
import { CATALOG_KINDS, MANIFEST_FILE, type CatalogKind } from '../domain/kinds.js';
import { PackageError } from '../service/errors.js';
import { openArchive, type ArchiveLimits, type RandomSource, type Violation } from './archive.js';
import { checkManifest } from './manifest.js';

export type VettedPackage = { kind: 'template'; catalog: null } | { kind: CatalogKind; catalog: CatalogMetadata };

const MiB = 1024 * 1024;

/** spec-kit's own extraction limits (`_download_security`): a package beyond them would not install. */
export const CATALOG_LIMITS: ArchiveLimits = { maxEntries: 512, maxEntryBytes: 10 * MiB, maxTotalBytes: 50 * MiB, maxCentralDirectoryBytes: 4 * MiB };

/**
 * Templates are unpacked by the spec-kit fork's `specify init`, which sets no limits of its own; these bound the
 * work of vetting (and of unpacking) while leaving room for any real template.
 */
export const TEMPLATE_LIMITS: ArchiveLimits = { maxEntries: 10_000, maxEntryBytes: 1024 * MiB, maxTotalBytes: 1024 * MiB, maxCentralDirectoryBytes: 16 * MiB };

const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Decides what a package is and refuses it (PackageError 'invalid-package', each violation listed) unless spec-kit
 * would install it: a readable zip whose every entry passes the extractor's rules, and, for an extension, preset
 * or workflow, a manifest that passes the CLI's validation and ours. Reads the central directory and streams the
 * members once; never inflates a whole archive into memory nor writes an entry anywhere.
 */
export async function vetPackage(source: RandomSource, options: { timeoutMs?: number } = {}): Promise<VettedPackage> {
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const archive = await openArchive(source, TEMPLATE_LIMITS);
  if (!('entries' in archive)) throw refused(archive.violations);
  try {
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
    if (violations.length > 0 && !located.manifest) throw refused(violations);
    const manifestPath = located.manifest?.path;
    const inflated = await archive.inflate(limits, (name) => name === manifestPath, deadline);
    violations.push(...inflated.violations);
    if (!located.manifest || kind === 'template') {
      if (violations.length > 0) throw refused(violations);
      return { kind: 'template', catalog: null };
    }
    const text = inflated.kept.get(located.manifest.path);
    if (!text) throw refused(violations);
    const checked = checkManifest({ kind: located.manifest.kind, path: located.manifest.path, text, files: archive.files });
    violations.push(...checked.violations);
    if (violations.length > 0 || !checked.metadata) throw refused(violations);
    return { kind: located.manifest.kind, catalog: checked.metadata };
  } finally {
    archive.close();
  }
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

function refused(violations: Violation[]): PackageError {
  const first = violations[0];
  const summary = first ? `${first.path}: ${first.message}` : 'the package cannot be installed';
  const more = violations.length > 1 ? ` (and ${violations.length - 1} more)` : '';
  return new PackageError('invalid-package', `the package was refused: ${summary}${more}`, violations);
}
