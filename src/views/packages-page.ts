import { readFileSync } from 'node:fs';
import Mustache from 'mustache';
import { totalDownloads, type CatalogPackage } from '../domain/catalog.js';
import { CATALOG_SECTION, type CatalogKind } from '../domain/kinds.js';
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

export interface PageContent {
  /** Template releases, highest version first. */
  releases: readonly ReleaseGroup[];
  /** Templates that belong to no release. */
  untagged: readonly PackageRecord[];
  catalogs: readonly { kind: CatalogKind; packages: readonly CatalogPackage[] }[];
}

export interface PackagesPage {
  render(content: PageContent, base: string): string;
}

/** How the `specify` CLI names each catalog: its command, and the variable that points it at one catalog. */
const CLI: Record<CatalogKind, { title: string; command: string; envVar: string }> = {
  extension: { title: 'Extensions', command: 'extension', envVar: 'SPECKIT_CATALOG_URL' },
  preset: { title: 'Presets', command: 'preset', envVar: 'SPECKIT_PRESET_CATALOG_URL' },
  workflow: { title: 'Workflows', command: 'workflow', envVar: 'SPECKIT_WORKFLOW_CATALOG_URL' },
};

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
    render({ releases, untagged, catalogs }, base) {
      const templateCount = releases.reduce((n, r) => n + r.records.length, 0) + untagged.length;
      const versionCount = catalogs.reduce((n, c) => n + c.packages.reduce((m, p) => m + p.versions.length, 0), 0);
      const count = templateCount + versionCount;
      return Mustache.render(template, {
        base,
        count,
        templateCount,
        releaseCount: releases.length,
        catalogs: catalogs.map(({ kind, packages }) => {
          const section = CATALOG_SECTION[kind];
          const catalogUrl = `${base}/catalogs/${section}.json`;
          const cli = CLI[kind];
          return {
            ...cli,
            section,
            plural: section,
            catalogUrl,
            count: packages.length,
            none: packages.length === 0,
            hasPackages: packages.length > 0,
            packages: packages.map((p) => ({
              kind,
              id: p.id,
              name: p.served.catalog.name,
              version: p.served.catalog.version,
              description: p.served.catalog.description,
              author: p.served.catalog.author,
              url: assetUrl(base, p.served.name),
              sha256: p.served.sha256,
              downloads: totalDownloads(p),
              others: p.versions.length - 1,
              versionsUrl: `${base}/catalogs/${section}/${p.id}`,
              catalogUrl,
              envVar: cli.envVar,
              command: cli.command,
            })),
          };
        }),
        empty: templateCount === 0,
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
