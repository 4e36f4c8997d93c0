import pep440 from '@renovatebot/pep440';

/**
 * spec-kit compares extension and preset versions with Python's `packaging` (PEP 440), not semver: `1.0.0rc1`,
 * `1.0` and `v1.0.0-beta.1` are all versions there. One wrapper, so the rest of the code never guesses.
 */
export function isPep440Version(value: string): boolean {
  return pep440.valid(value) !== null;
}

/** The normalised form (`v1.0.0-beta.1` → `1.0.0b1`), used in file names. */
export function normalizePep440(value: string): string {
  // Not pep440.clean(): it writes a local segment `+local.1` as `+local,1`.
  const parts = pep440.explain(value);
  if (!parts) return value;
  return parts.local ? `${parts.public}+${parts.local}` : parts.public;
}

export function isPep440Prerelease(value: string): boolean {
  return pep440.explain(value)?.is_prerelease ?? false;
}

/** Highest first. */
export function comparePep440Descending(a: string, b: string): number {
  return pep440.compare(b, a);
}

export function samePep440Version(a: string, b: string): boolean {
  return pep440.eq(a, b);
}

/** A specifier set such as `>=0.1.0,<2`, as `packaging.SpecifierSet` reads it. */
export function isPep440Specifier(value: string): boolean {
  return value.trim() !== '' && pep440.validRange(value);
}
