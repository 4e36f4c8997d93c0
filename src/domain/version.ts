import semver from 'semver';

// A version at the very end of the name, before the file extension: `…-v0.2.0.zip`, `…_1.0.0-rc.1.zip`.
const TRAILING_VERSION = /(?:^|[-_])v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$/;
const EXTENSION = /(?:\.tar)?\.[A-Za-z][A-Za-z0-9]*$/;

/** The tag (`v0.2.0`) carried at the end of a package name, or null. */
export function tagOfName(name: string): string | null {
  const match = TRAILING_VERSION.exec(name.replace(EXTENSION, ''));
  const version = match?.[1] && semver.valid(match[1]);
  return version ? `v${version}` : null;
}

/** The highest of the tags, by semver precedence (pre-releases below their release), or null. */
export function highestTag(tags: Iterable<string | null>): string | null {
  let best: string | null = null;
  for (const tag of tags) {
    if (tag !== null && (best === null || semver.gt(tag, best))) best = tag;
  }
  return best;
}
