import type { CatalogKind } from '../domain/kinds.js';

/**
 * Which catalog entries a sync takes, as a pipeline of small filters in the spirit of verdaccio's filter pipeline
 * (`packages/store/src/filter-pipeline.ts`): each filter looks at one entry and either passes it on or refuses it with
 * its reason, in order, and the first refusal stands. A filter that throws refuses the entry with that error as its
 * reason: it is reported, never fatal to the sync, and never lets the entry through.
 */

/** What a filter needs of an entry; the normalised catalog entry (entries.ts) has it. */
export interface FilterableEntry {
  kind: CatalogKind;
  id: string;
  version: string;
}

export interface Refusal<E> {
  entry: E;
  /** The filter's name, e.g. `deny`. */
  filter: string;
  /** One line an operator reads at `GET /sources/{name}`. */
  reason: string;
}

/** null passes the entry on; a string refuses it with that reason. */
export interface EntryFilter<E extends FilterableEntry = FilterableEntry> {
  name: string;
  check(entry: E): string | null;
}

export interface FilterOutcome<E> {
  accepted: E[];
  refused: Refusal<E>[];
}

export function runFilters<E extends FilterableEntry>(entries: Iterable<E>, filters: readonly EntryFilter<E>[]): FilterOutcome<E> {
  const accepted: E[] = [];
  const refused: Refusal<E>[] = [];
  for (const entry of entries) {
    const refusal = firstRefusal(entry, filters);
    if (refusal) refused.push(refusal);
    else accepted.push(entry);
  }
  return { accepted, refused };
}

function firstRefusal<E extends FilterableEntry>(entry: E, filters: readonly EntryFilter<E>[]): Refusal<E> | null {
  for (const filter of filters) {
    let reason: string | null;
    try {
      reason = filter.check(entry);
    } catch (err) {
      reason = `the ${filter.name} filter failed: ${(err as Error).message}`;
    }
    if (reason !== null) return { entry, filter: filter.name, reason };
  }
  return null;
}

const GLOB_CHARS = /^[A-Za-z0-9._*?-]+$/;

/**
 * An id glob as a matcher: `*` any run of characters, `?` one, everything else literal; compared ignoring case (ids
 * that differ only in case name one directory on a case-insensitive disk). Throws on anything else, e.g. `[a-z]*`.
 */
export function compileGlob(glob: string): (id: string) => boolean {
  if (glob === '' || !GLOB_CHARS.test(glob)) {
    throw new Error(`${JSON.stringify(glob)} is not an id glob: letters, digits, ".", "_", "-", with * and ? as the only wildcards`);
  }
  const pattern = glob.replace(/[.*?-]/g, (c) => (c === '*' ? '.*' : c === '?' ? '.' : `\\${c}`));
  const regex = new RegExp(`^${pattern}$`, 'i');
  return (id) => regex.test(id);
}

/** Refuses ids that match none of `globs`. An empty list allows nothing. */
export function allowFilter<E extends FilterableEntry>(globs: readonly string[]): EntryFilter<E> {
  const matchers = globs.map(compileGlob);
  const shown = globs.map((g) => JSON.stringify(g)).join(', ') || 'nothing';
  return {
    name: 'allow',
    check: (entry) => (matchers.some((match) => match(entry.id)) ? null : `${entry.id} matches no allow glob (${shown})`),
  };
}

/** Refuses ids that match any of `globs`, naming the glob. */
export function denyFilter<E extends FilterableEntry>(globs: readonly string[]): EntryFilter<E> {
  const matchers = globs.map((glob) => [glob, compileGlob(glob)] as const);
  return {
    name: 'deny',
    check: (entry) => {
      const hit = matchers.find(([, match]) => match(entry.id));
      return hit ? `${entry.id} matches the deny glob ${JSON.stringify(hit[0])}` : null;
    },
  };
}

/**
 * A source's id filters, deny first so that deny wins whatever allow says (and the reason names the deny glob).
 * Later filters (approval policies, known-changed versions) append to this list.
 */
export function sourceFilters<E extends FilterableEntry>(source: { allow: readonly string[]; deny: readonly string[] }): EntryFilter<E>[] {
  return [denyFilter<E>(source.deny), allowFilter<E>(source.allow)];
}
