import type { PackageRecord } from './record.js';
import { compareTagsDescending, isPrerelease } from './version.js';

export interface ReleaseGroup {
  tag: string;
  /** Newest upload first. */
  records: PackageRecord[];
}

export const newestUploadFirst = (a: PackageRecord, b: PackageRecord): number => b.updatedAt.localeCompare(a.updatedAt) || b.id - a.id;

/** One group per tag, highest version first (semver: a pre-release below its release). Untagged packages are in none. */
export function releasesNewestFirst(records: readonly PackageRecord[]): ReleaseGroup[] {
  const byTag = new Map<string, PackageRecord[]>();
  for (const record of records) {
    if (record.tag === null) continue;
    const group = byTag.get(record.tag);
    if (group) group.push(record);
    else byTag.set(record.tag, [record]);
  }
  return [...byTag.entries()]
    .sort(([a], [b]) => compareTagsDescending(a, b))
    .map(([tag, group]) => ({ tag, records: group.sort(newestUploadFirst) }));
}

/**
 * The order the spec-kit CLI must see packages in, since it takes the first match: releases highest version
 * first, every pre-release after every release (GitHub's "latest" skips pre-releases), newest upload first
 * within a tag, then untagged packages, newest upload first.
 */
export function latestOrder(records: readonly PackageRecord[], groups = releasesNewestFirst(records)): PackageRecord[] {
  const untagged = records.filter((r) => r.tag === null).sort(newestUploadFirst);
  const stable = groups.filter((g) => !isPrerelease(g.tag));
  const pre = groups.filter((g) => isPrerelease(g.tag));
  return [...stable, ...pre].flatMap((g) => g.records).concat(untagged);
}
