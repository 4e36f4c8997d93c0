const MAX_NAME_BYTES = 255;
// Control characters (C0, DEL and C1), both path separators.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f/\\]/;
// Marks that reorder how text is shown (bidi controls): `evil\u202Egpj.zip` shows as `evilpiz.jpg`.
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/**
 * Why a package name is not a plain, safe file name, or null when it is. Checked before any path is joined,
 * so that no name can address a file outside storage or a hidden file of the server's own.
 */
export function unsafeNameReason(name: string): string | null {
  if (name.length === 0) return 'the file name is empty';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `the file name is longer than ${MAX_NAME_BYTES} bytes`;
  if (FORBIDDEN.test(name)) return 'the file name contains a path separator or a control character';
  if (BIDI.test(name)) return 'the file name contains a bidirectional text control, which makes it show other than it reads';
  if (name.startsWith('.')) return 'the file name starts with a dot';
  return null;
}

export function isSafeName(name: string): boolean {
  return unsafeNameReason(name) === null;
}

/** The media type a package is served with, by its name: what browsers, the CLIs and presigned URLs all get. */
export function contentTypeOf(name: string): string {
  const lower = name.toLowerCase();
  if (lower.endsWith('.zip')) return 'application/zip';
  // The CLI takes an archive's format from the suffix, else from these types, and refuses a disagreement.
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) return 'application/gzip';
  if (lower.endsWith('.yml') || lower.endsWith('.yaml')) return 'application/yaml';
  return 'application/octet-stream';
}
