const MAX_PATH_BYTES = 4096;
const MAX_COMPONENT_BYTES = 255;
// Windows device names, with or without an extension (`con.txt` too); spec-kit's extractor refuses them everywhere.
// Matched against the stem as the CLI cuts it: up to the first `.` (then `:`), trailing spaces dropped (`con .txt`).
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$/i;
/** C0 controls, DEL and C1 controls (Unicode category Cc). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Characters Windows refuses in a file name, which the CLI refuses too (`:` has its own message). */
const WINDOWS_FORBIDDEN = /[<>"|?*]/;
/** What a name shows escaped: controls, and the marks that reorder text on screen (bidi controls). */
const UNSHOWABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Python's cp437 codec for 0x80–0xFF (0x00–0x7F are ASCII, the controls included): `bytes(range(128, 256)).decode('cp437')`. */
const CP437_HIGH = 'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';
const UTF8_FLAG = 0x0800;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * An entry name as the CLI's extractor (Python's zipfile) decodes it: UTF-8, strictly, when the entry's flag bit 11
 * says so, else cp437 with its control characters left as they are (yauzl's cp437 would turn 0x01 into a glyph).
 * Null when the flag promises UTF-8 and the bytes are not: Python refuses to open such an archive.
 */
export function decodeEntryName(raw: Uint8Array, flags: number): string | null {
  if (flags & UTF8_FLAG) {
    try {
      return strictUtf8.decode(raw);
    } catch {
      return null;
    }
  }
  let name = '';
  for (const byte of raw) name += byte < 0x80 ? String.fromCharCode(byte) : CP437_HIGH[byte - 0x80]!;
  return name;
}

/** A name fit to show in a violation or a log line: controls and bidi marks as `\uXXXX`, invalid UTF-8 as cp437. */
export function displayName(raw: Uint8Array, flags: number): string {
  return escapeForDisplay(decodeEntryName(raw, flags) ?? decodeEntryName(raw, 0)!);
}

export function escapeForDisplay(text: string): string {
  return text.replace(UNSHOWABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Why the raw bytes of a name are unsafe whatever the decoding: a C0 control or DEL byte. */
export function unsafeRawNameReason(raw: Uint8Array): string | null {
  return raw.some((b) => b < 0x20 || b === 0x7f) ? 'the name contains a control character' : null;
}

/**
 * Why an archive entry name (decoded as the CLI decodes it) is unsafe, or null: the rules of spec-kit's
 * `safe_extract_zip`, which the CLI applies when it installs a package, so a package that breaks them would be
 * refused after download. `\` counts as `/`.
 */
export function unsafeEntryNameReason(raw: string): string | null {
  const name = raw.replaceAll('\\', '/');
  if (name === '' || name === '/') return 'the entry name is empty';
  if (Buffer.byteLength(name, 'utf8') > MAX_PATH_BYTES) return `the path is longer than ${MAX_PATH_BYTES} bytes`;
  if (CONTROL.test(name)) return 'the name contains a control character';
  if (name.startsWith('/')) return 'the path is absolute';
  if (/^[A-Za-z]:/.test(name)) return 'the path starts with a drive letter';
  if (name.includes(':')) return 'the name contains ":"';
  const forbidden = WINDOWS_FORBIDDEN.exec(name);
  if (forbidden) return `the name contains "${forbidden[0]}"`;
  const components = (name.endsWith('/') ? name.slice(0, -1) : name).split('/');
  for (const part of components) {
    if (part === '') return 'the path has an empty component ("//")';
    if (part === '..') return 'the path climbs out of the archive ("..")';
    if (part === '.') return 'the path has a "." component';
    if (Buffer.byteLength(part, 'utf8') > MAX_COMPONENT_BYTES) return `a path component is longer than ${MAX_COMPONENT_BYTES} bytes`;
    if (part.startsWith(' ')) return 'a path component starts with a space';
    if (part.endsWith(' ') || part.endsWith('.')) return 'a path component ends in a space or a dot';
    if (RESERVED.test(part.split('.')[0]!.split(':')[0]!.replace(/ +$/, ''))) return `"${part}" is a reserved Windows device name`;
  }
  return null;
}

/** The entry name as it lands on disk: `/` separators, without the trailing `/` of a directory. */
export function normalizeEntryName(raw: string): string {
  const name = raw.replaceAll('\\', '/');
  return name.endsWith('/') ? name.slice(0, -1) : name;
}

/**
 * Names that one case-insensitive, normalising file system (macOS, Windows) would store as one, as the CLI compares
 * them (Python's casefold after NFC): upper then lower case folds what toLowerCase alone keeps apart ("ß" and "SS",
 * "ς" and "σ").
 */
export function collisionKey(name: string): string {
  // "ẞ" (U+1E9E) upper-cases to itself and lower-cases to "ß", which casefold (alone) makes "ss".
  return name.normalize('NFC').toUpperCase().toLowerCase().replaceAll('ß', 'ss').normalize('NFC');
}
