import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { CatalogMetadata } from '../domain/catalog.js';
import { CATALOG_KINDS, KIND_RULES, MANIFEST_FILE, type CatalogKind, type PackageFormat } from '../domain/kinds.js';
import type { PackageMember } from '../domain/record.js';
import { inflateMembers, openArchive, type ArchiveEntry, type ArchiveLimits, type ArchiveSource } from './archive.js';
import { escapeForDisplay } from './entry-names.js';
import { MANIFEST_LIMITS } from './manifest-limits.js';
import { ARCHIVE, type ByteSource, type Violation } from './zip-structure.js';

export type { Violation } from './zip-structure.js';

/**
 * The manifest checks (yaml) and the tar.gz reader (tar-stream), loaded in the worker when an upload needs them: a
 * template zip, the usual upload, needs neither, and loading them cost each vetting thread ~4 MiB it kept while alive.
 */
const manifestChecks = () => import('./manifest.js');
const tarReader = () => import('./tar-archive.js');

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

/**
 * Vets the package in a local file (a staged upload). Its format comes from its bytes, never its name: a zip
 * (a local header first, or the end record of an empty zip), a gzip stream (a tar.gz), else a bare YAML manifest.
 * Bytes that are none of these but end like a zip (an end record in the last 64 KiB, as a self-extracting or
 * prefixed zip does) go to the zip reader, which says exactly why it refuses them.
 */
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
    const format = detectFormat(source);
    if (format === 'zip') return await vetArchive(source);
    if (format === 'tar.gz' && endsLikeZip(source)) {
      // The CLI asks zipfile.is_zipfile (an end record in the last 64 KiB) and tarfile; when both say yes it refuses.
      return refuse([{ path: ARCHIVE, message: 'a gzip file that also ends like a zip (an end-of-central-directory record in its last 64 KiB): the spec-kit CLI reads it as both and refuses it' }]);
    }
    if (format === 'tar.gz') return await vetTarGz(source);
    if (size > MANIFEST_LIMITS.maxBytes) {
      return refuse([{ path: ARCHIVE, message: `not a readable zip archive, tar.gz archive or YAML manifest: at ${size} bytes it is too large for a bare YAML manifest (at most ${MANIFEST_LIMITS.maxBytes})` }]);
    }
    return await vetManifestText(source.read(0, size));
  } finally {
    closeSync(fd);
  }
}

const ZIP_LOCAL = Buffer.from('PK\u0003\u0004', 'latin1');
const ZIP_END = Buffer.from('PK\u0005\u0006', 'latin1');

/** What the bytes are (see `vetFile`). */
export function detectFormat(source: ByteSource): PackageFormat {
  const head = source.read(0, 4);
  if (head.equals(ZIP_LOCAL) || head.equals(ZIP_END)) return 'zip';
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  if (endsLikeZip(source)) return 'zip';
  return 'yaml';
}

/** An end-of-central-directory record in the last 64 KiB, where Python's `zipfile.is_zipfile` looks for one. */
function endsLikeZip(source: ByteSource): boolean {
  const tailLength = Math.min(source.size, 22 + 0xffff);
  return source.read(source.size - tailLength, tailLength).includes(ZIP_END);
}

const refuse = (violations: Violation[]): Verdict => ({
  accepted: false,
  violations: violations.length > 0 ? violations : [{ path: ARCHIVE, message: 'the package cannot be installed' }],
});

/** Why a kind cannot come in a format, in the words a publisher needs; null when it can. */
export function formatRefusal(kind: CatalogKind | 'template', format: PackageFormat): string | null {
  if (kind === 'template') return format === 'zip' ? null : 'a template is a zip archive (a tar.gz or YAML upload must carry an extension.yml, preset.yml, workflow.yml, bundle.yml or integration.yml)';
  if (KIND_RULES[kind].formats.includes(format)) return null;
  switch (kind) {
    case 'step':
      return 'a step is a zip holding step.yml and __init__.py (and any files they use)';
    case 'bundle':
      return 'a bundle is a zip holding bundle.yml, or a bare bundle.yml; the spec-kit CLI takes no tar.gz bundle';
    case 'integration':
      return 'an integration is a zip holding integration.yml, or a bare integration.yml';
    default:
      return `${kind === 'extension' ? 'an extension' : `a ${kind}`} must be an archive (zip or tar.gz) holding its ${MANIFEST_FILE[kind]}`;
  }
}

/**
 * Decides what a zip package is, or refuses it (each violation listed) unless spec-kit would install it: a zip
 * that every reader reads alike, whose every entry passes the extractor's rules, and, for a catalog kind, a
 * manifest that passes the CLI's validation and ours. The stages: structure and entries (`openArchive`), then the
 * members, inflated once and counted (`inflateMembers`), then the manifest (`checkManifest`). Never inflates a
 * whole archive into memory nor writes an entry anywhere. A step's files are located and hashed on the way.
 */
export async function vetArchive(source: ArchiveSource): Promise<Verdict> {
  const archive = openArchive(source, TEMPLATE_LIMITS);
  if (!('entries' in archive)) return refuse(archive.violations);
  const violations = [...archive.violations];
  const located = locateManifest(archive.files, archive.directories, archive.entries.map((e) => e.name));
  violations.push(...located.violations);
  const kind = located.manifest?.kind ?? 'template';
  const limits = kind === 'template' ? TEMPLATE_LIMITS : CATALOG_LIMITS;
  if (archive.entries.length > limits.maxEntries) {
    violations.push({ path: ARCHIVE, message: `the archive has ${archive.entries.length} entries; a ${kind} may have at most ${limits.maxEntries}` });
  }
  if (archive.centralDirectoryBytes > limits.maxCentralDirectoryBytes) {
    violations.push({ path: ARCHIVE, message: `the central directory is larger than ${limits.maxCentralDirectoryBytes} bytes` });
  }
  const stepRoot = kind === 'step' && located.manifest ? located.manifest.path.slice(0, -MANIFEST_FILE.step.length) : null;
  if (stepRoot !== null) violations.push(...checkStepLayout(archive.entries, archive.files, stepRoot));
  // The CLI opens a bundle zip's `bundle.yml` by that exact name (`getinfo("bundle.yml")`): never in a directory.
  if (kind === 'bundle' && located.manifest && located.manifest.path !== MANIFEST_FILE.bundle) {
    violations.push({ path: escapeForDisplay(located.manifest.path), message: 'the spec-kit CLI reads bundle.yml only at the root of a bundle zip, not in a directory' });
  }
  if (violations.length > 0 && !located.manifest) return refuse(violations);
  const manifestPath = located.manifest?.path;
  const inflated = await inflateMembers(source, archive.entries, limits, (name) => name === manifestPath, MANIFEST_LIMITS.maxBytes, { sha256: stepRoot !== null });
  violations.push(...inflated.violations);
  if (!located.manifest || kind === 'template') {
    if (violations.length > 0) return refuse(violations);
    return { accepted: true, kind: 'template', format: 'zip', catalog: null };
  }
  const text = inflated.kept.get(located.manifest.path);
  if (!text) return refuse(violations);
  const { checkManifest } = await manifestChecks();
  const checked = checkManifest({ kind: located.manifest.kind, path: located.manifest.path, text, files: archive.files });
  violations.push(...checked.violations);
  if (violations.length > 0 || !checked.metadata) return refuse(violations);
  const catalog = stepRoot === null ? checked.metadata : { ...checked.metadata, files: stepFiles(archive.entries, stepRoot, inflated.sha256) };
  return { accepted: true, kind: located.manifest.kind, format: 'zip', catalog };
}

/** `workflow step add` downloads each file of a step through `_read_response_within_limit`: 5 MiB at most. */
const MAX_STEP_FILE_BYTES = 5 * 1024 * 1024;

/**
 * A step installs as the files the catalog lists one by one, each relative to the step's root (where step.yml
 * is): `__init__.py` must be there beside it, and a file outside that root (beside the one top-level directory)
 * could never be fetched by the CLI.
 */
function checkStepLayout(entries: readonly ArchiveEntry[], files: ReadonlySet<string>, root: string): Violation[] {
  const violations: Violation[] = [];
  if (!files.has(`${root}__init__.py`)) violations.push({ path: `${root}__init__.py`, message: 'is missing: a step is a zip holding step.yml and __init__.py side by side' });
  for (const entry of entries) {
    if (entry.directory) continue;
    if (!entry.name.startsWith(root)) {
      violations.push({ path: escapeForDisplay(entry.name), message: `is outside the step's directory "${root.slice(0, -1)}": the spec-kit CLI installs only the files below step.yml` });
    } else if (entry.zip.uncompressedSize > MAX_STEP_FILE_BYTES) {
      violations.push({ path: escapeForDisplay(entry.name), message: `is ${entry.zip.uncompressedSize} bytes; the spec-kit CLI fetches each step file with a limit of ${MAX_STEP_FILE_BYTES}` });
    }
  }
  return violations;
}

/** Each file of a step, where its bytes sit in the zip, so that it can be served from the vetted package alone. */
function stepFiles(entries: readonly ArchiveEntry[], root: string, digests: ReadonlyMap<string, string>): PackageMember[] {
  return entries
    .filter((entry) => !entry.directory)
    .map((entry) => ({
      path: entry.name.slice(root.length),
      size: entry.zip.uncompressedSize,
      sha256: digests.get(entry.name)!,
      offset: entry.zip.dataOffset,
      compressedSize: entry.zip.compressedSize,
      method: entry.zip.method === 0 ? ('stored' as const) : ('deflated' as const),
    }));
}

/**
 * Vets a tar.gz package: read in one streaming pass (tar-archive.ts), keeping only the files that could be its
 * manifest (at the root, or in the first top-level directory: the only one `locateManifest` may use), then the
 * same manifest checks as a zip's. Only extensions, presets and workflows come as tar.gz.
 */
export async function vetTarGz(source: ArchiveSource): Promise<Verdict> {
  const manifests = new Set(Object.values(MANIFEST_FILE));
  let firstTop: string | undefined;
  const keep = (name: string) => {
    const parts = name.split('/');
    if (!manifests.has(parts.at(-1)!) || parts.length > 2) return false;
    if (parts.length === 1) return true;
    firstTop ??= parts[0];
    return parts[0] === firstTop;
  };
  const { readTarGz } = await tarReader();
  const tar = await readTarGz(source, CATALOG_LIMITS, keep, MANIFEST_LIMITS.maxBytes);
  const violations = [...tar.violations];
  const located = locateManifest(tar.files, tar.directories, tar.entries.map((e) => e.name));
  violations.push(...located.violations);
  const kind = located.manifest?.kind ?? 'template';
  const wrongFormat = formatRefusal(kind, 'tar.gz');
  // An archive that could not be read to its end has no kind to speak of: its own violations say enough.
  if (wrongFormat && (located.manifest || tar.violations.length === 0)) violations.push({ path: located.manifest?.path ?? ARCHIVE, message: wrongFormat });
  if (!located.manifest || violations.length > 0) return refuse(violations);
  const oversized = tar.oversized.get(located.manifest.path);
  if (oversized !== undefined) return refuse([{ path: located.manifest.path, message: `is ${oversized} bytes; a manifest may have at most ${MANIFEST_LIMITS.maxBytes}` }]);
  const text = tar.kept.get(located.manifest.path);
  if (!text) return refuse([{ path: located.manifest.path, message: 'cannot be read' }]);
  const { checkManifest } = await manifestChecks();
  const checked = checkManifest({ kind: located.manifest.kind, path: located.manifest.path, text, files: tar.files });
  if (checked.violations.length > 0 || !checked.metadata) return refuse(checked.violations);
  return { accepted: true, kind: located.manifest.kind, format: 'tar.gz', catalog: checked.metadata };
}

/**
 * Vets a bare YAML manifest (an upload that is no archive): valid UTF-8 text of at most 256 KiB, parsed with the
 * same bounds as a manifest inside an archive; its top-level key says its kind (`workflow:`, `bundle:`,
 * `integration:`), and it gets the same checks as inside an archive, with no files: the CLI installs a bare
 * workflow.yml as that one file (a workflow's checks name no files anyway), reads a bare bundle.yml for its
 * components alone, and never downloads an integration; so nothing is skipped that the CLI would have. An
 * integration's command files cannot be checked here, since there are none. Extensions, presets and steps need an
 * archive: the CLI has no way to install them from a manifest alone.
 */
export async function vetManifestText(bytes: Buffer): Promise<Verdict> {
  const { checkManifest, manifestKindOf } = await manifestChecks();
  const kind = manifestKindOf(bytes);
  if ('violations' in kind) return refuse(kind.violations);
  const path = MANIFEST_FILE[kind.kind];
  const wrongFormat = formatRefusal(kind.kind, 'yaml');
  if (wrongFormat) return refuse([{ path, message: wrongFormat }]);
  const checked = checkManifest({ kind: kind.kind, path, text: bytes, files: null });
  if (checked.violations.length > 0 || !checked.metadata) return refuse(checked.violations);
  return { accepted: true, kind: kind.kind, format: 'yaml', catalog: checked.metadata };
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
    return { manifest: null, violations: [{ path: candidates.map((c) => c.path).join(', '), message: `a package has one manifest: ${Object.values(MANIFEST_FILE).join(', ')}` }] };
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
