// The three functions used, not the whole library: its index loads ~47 modules (~10 ms of every start-up).
import prerelease from 'semver/functions/prerelease.js';
import rcompare from 'semver/functions/rcompare.js';
import valid from 'semver/functions/valid.js';

// A version at the very end of the name, before the file extension: `…-v0.2.0.zip`, `…_1.0.0-rc.1.zip`,
// `my template v1.0.0.zip`.
const TRAILING_VERSION = /(?:^|[-_ ])v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$/;
const EXTENSION = /(?:\.tar)?\.[A-Za-z][A-Za-z0-9]*$/;

/** The tag (`v0.2.0`) carried at the end of a package name, or null. */
export function tagOfName(name: string): string | null {
  const match = TRAILING_VERSION.exec(name.replace(EXTENSION, ''));
  return match?.[1] ? normalizeTag(match[1]) : null;
}

/** `0.2.0` or `v0.2.0` → `v0.2.0`; null when it is not a semantic version. */
export function normalizeTag(input: string): string | null {
  const version = valid(input.trim());
  return version ? `v${version}` : null;
}

export function isPrerelease(tag: string): boolean {
  return prerelease(tag) !== null;
}

/** Highest version first; a pre-release below its release. */
export function compareTagsDescending(a: string, b: string): number {
  return rcompare(a, b);
}
