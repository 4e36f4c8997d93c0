import { highestTag, tagOfName } from '../domain/version.js';
import { assetUrl } from '../http/urls.js';
import type { PackageRecord } from '../storage/storage.js';
import type { Schemas } from './types.js';

export function toPackage(record: PackageRecord, base: string): Schemas['Package'] {
  return {
    name: record.name,
    size: record.size,
    sha256: record.sha256,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    download_url: assetUrl(base, record.name),
    download_count: record.downloadCount,
  };
}

export function toAsset(record: PackageRecord, base: string): Schemas['ReleaseAsset'] {
  const url = assetUrl(base, record.name);
  return {
    id: record.id,
    url,
    name: record.name,
    label: null,
    content_type: contentTypeOf(record.name),
    state: 'uploaded',
    size: record.size,
    digest: `sha256:${record.sha256}`,
    download_count: record.downloadCount,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    browser_download_url: url,
  };
}

/**
 * The one release the spec-kit CLI reads: every package, newest upload first (the CLI takes the first match),
 * tagged with the highest version any name carries.
 */
export function latestRelease(newestFirst: readonly PackageRecord[], base: string, now: Date): Schemas['Release'] {
  const tag = highestTag(newestFirst.map((r) => tagOfName(r.name))) ?? 'latest';
  const oldest = newestFirst.at(-1);
  const newest = newestFirst[0];
  return {
    id: 1,
    tag_name: tag,
    name: tag,
    body: '',
    draft: false,
    prerelease: false,
    created_at: oldest?.updatedAt ?? now.toISOString(),
    published_at: newest?.updatedAt ?? now.toISOString(),
    url: `${base}/latest`,
    html_url: `${base}/packages`,
    assets_url: `${base}/latest`,
    assets: newestFirst.map((r) => toAsset(r, base)),
  };
}

export function contentTypeOf(name: string): string {
  return name.toLowerCase().endsWith('.zip') ? 'application/zip' : 'application/octet-stream';
}
