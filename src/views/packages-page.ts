import { readFileSync } from 'node:fs';
import Mustache from 'mustache';
import type { ReleaseGroup } from '../domain/releases.js';
import { isPrerelease } from '../domain/version.js';
import { assetUrl } from '../http/urls.js';
import type { PackageRecord } from '../storage/storage.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function humanSize(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

export interface PackagesPage {
  /** Releases highest version first, then the packages that belong to none. */
  render(releases: readonly ReleaseGroup[], untagged: readonly PackageRecord[], base: string): string;
}

/** The HTML package listing; the template is read and parsed once. Mustache escapes every value. */
export function loadPackagesPage(): PackagesPage {
  const template = readFileSync(new URL('./packages.mustache', import.meta.url), 'utf8');
  Mustache.parse(template);
  const rows = (records: readonly PackageRecord[], base: string) =>
    records.map((r) => ({
      name: r.name,
      url: assetUrl(base, r.name),
      size: humanSize(r.size),
      bytes: r.size,
      uploaded: r.updatedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'),
      sha256: r.sha256,
      downloads: r.downloadCount,
    }));
  return {
    render(releases, untagged, base) {
      const count = releases.reduce((n, r) => n + r.records.length, 0) + untagged.length;
      return Mustache.render(template, {
        base,
        count,
        releaseCount: releases.length,
        empty: count === 0,
        releases: releases.map((r) => ({
          tag: r.tag,
          anchor: encodeURIComponent(r.tag),
          pinnedUrl: `${base}/releases/tags/${encodeURIComponent(r.tag)}`,
          prerelease: isPrerelease(r.tag),
          packages: rows(r.records, base),
        })),
        hasUntagged: untagged.length > 0,
        untagged: rows(untagged, base),
      });
    },
  };
}
