import { readFileSync } from 'node:fs';
import Mustache from 'mustache';
import { tagOfName } from '../domain/version.js';
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
  render(newestFirst: readonly PackageRecord[], base: string): string;
}

/** The HTML package listing; the template is read and parsed once. Mustache escapes every value. */
export function loadPackagesPage(): PackagesPage {
  const template = readFileSync(new URL('./packages.mustache', import.meta.url), 'utf8');
  Mustache.parse(template);
  return {
    render(newestFirst, base) {
      return Mustache.render(template, {
        base,
        count: newestFirst.length,
        empty: newestFirst.length === 0,
        packages: newestFirst.map((r) => ({
          name: r.name,
          url: assetUrl(base, r.name),
          tag: tagOfName(r.name) ?? '',
          size: humanSize(r.size),
          bytes: r.size,
          uploaded: r.updatedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'),
          sha256: r.sha256,
          downloads: r.downloadCount,
        })),
      });
    },
  };
}
