const MAX_PATH_BYTES = 4096;
const MAX_COMPONENT_BYTES = 255;
// Windows device names, with or without an extension (`con.txt` too); spec-kit's extractor refuses them everywhere.
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/i;

/**
 * Why an archive entry name is unsafe, or null: the rules of spec-kit's `safe_extract_zip`, which the CLI applies
 * when it installs a package, so a package that breaks them would be refused after download. `\` counts as `/`.
 */
export function unsafeEntryNameReason(raw: string): string | null {
  const name = raw.replaceAll('\\', '/');
  if (name === '' || name === '/') return 'the entry name is empty';
  if (Buffer.byteLength(name, 'utf8') > MAX_PATH_BYTES) return `the path is longer than ${MAX_PATH_BYTES} bytes`;
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'the name contains a control character';
  if (name.startsWith('/')) return 'the path is absolute';
  if (/^[A-Za-z]:/.test(name)) return 'the path starts with a drive letter';
  if (name.includes(':')) return 'the name contains ":"';
  const components = (name.endsWith('/') ? name.slice(0, -1) : name).split('/');
  for (const part of components) {
    if (part === '') return 'the path has an empty component ("//")';
    if (part === '..') return 'the path climbs out of the archive ("..")';
    if (part === '.') return 'the path has a "." component';
    if (Buffer.byteLength(part, 'utf8') > MAX_COMPONENT_BYTES) return `a path component is longer than ${MAX_COMPONENT_BYTES} bytes`;
    if (part.endsWith(' ') || part.endsWith('.')) return 'a path component ends in a space or a dot';
    if (RESERVED.test(part)) return `"${part}" is a reserved Windows device name`;
  }
  return null;
}

/** The entry name as it lands on disk: `\` as `/`, without the trailing `/` of a directory. */
export function normalizeEntryName(raw: string): string {
  const name = raw.replaceAll('\\', '/');
  return name.endsWith('/') ? name.slice(0, -1) : name;
}

/** Names that one case-insensitive, normalising file system (macOS, Windows) would store as one. */
export function collisionKey(name: string): string {
  return name.normalize('NFC').toLowerCase();
}
