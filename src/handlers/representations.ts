import { contentTypeOf } from '../domain/names.js';
import type { ReleaseGroup } from '../domain/releases.js';
import { isPrerelease } from '../domain/version.js';
import { assetUrl } from '../http/urls.js';
import type { PackageRecord } from '../domain/record.js';
import type { Schemas } from './types.js';

/** /latest when its first package has no tag: no release's, so it has an id of its own. */
const LATEST_RELEASE_ID = 1;

export function toPackage(record: PackageRecord, base: string): Schemas['Package'] {
  return {
    name: record.name,
    size: record.size,
    sha256: record.sha256,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    download_url: assetUrl(base, record.name),
    download_count: record.downloadCount,
    tag: record.tag,
    kind: record.kind,
    ...(record.catalog ? { id: record.catalog.id, version: record.catalog.version } : {}),
  };
}

export function toAsset(record: PackageRecord, base: string): Schemas['ReleaseAsset'] {
  return {
    id: record.id,
    url: `${base}/releases/assets/${record.id}`,
    name: record.name,
    label: null,
    content_type: contentTypeOf(record.name),
    state: 'uploaded',
    size: record.size,
    digest: `sha256:${record.sha256}`,
    download_count: record.downloadCount,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    browser_download_url: assetUrl(base, record.name),
  };
}

/**
 * What the spec-kit CLI reads: every package, in the order it must pick from, tagged like its first asset, and with
 * that tag's release id, so that /latest and /releases/tags/{tag} name one release alike.
 */
export function latestRelease(ordered: readonly PackageRecord[], base: string, now: Date): Schemas['Release'] {
  const tag = ordered[0]?.tag ?? 'latest';
  return release(tag === 'latest' ? LATEST_RELEASE_ID : releaseId(tag), tag, ordered, base, `${base}/latest`, now);
}

/** One tag's release, pinned: `/releases/tags/{tag}`. */
export function taggedRelease(group: ReleaseGroup, base: string, now: Date): Schemas['Release'] {
  return release(releaseId(group.tag), group.tag, group.records, base, `${base}/releases/tags/${encodeURIComponent(group.tag)}`, now);
}

function release(id: number, tag: string, assets: readonly PackageRecord[], base: string, url: string, now: Date): Schemas['Release'] {
  const times = assets.map((r) => r.updatedAt).sort();
  return {
    id,
    tag_name: tag,
    name: tag,
    body: '',
    draft: false,
    prerelease: tag !== 'latest' && isPrerelease(tag),
    created_at: times[0] ?? now.toISOString(),
    published_at: times.at(-1) ?? now.toISOString(),
    url,
    html_url: `${base}/packages${tag === 'latest' ? '' : `#${encodeURIComponent(tag)}`}`,
    assets_url: url,
    assets: assets.map((r) => toAsset(r, base)),
  };
}

/** A stable id for a tag's release, the same on every replica and after every restart (FNV-1a, 31 bits, above 1). */
export function releaseId(tag: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(tag)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return (hash & 0x7fffffff) || 2;
}
