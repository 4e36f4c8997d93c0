import type { CatalogPackage } from '../domain/catalog.js';
import type { CatalogKind } from '../domain/kinds.js';
import type { ReleaseGroup } from '../domain/releases.js';
import type { Schemas } from '../handlers/types.js';

/** One thing a person may look for (a release of templates, or an extension, preset or workflow), as /search.json has it. */
export type SearchItem = Schemas['SearchIndex']['items'][number];

/** The agent and script of a template name: `spec-kit-template-claude-sh-v1.0.0.zip` → `claude-sh`. */
function flavourOf(name: string): string {
  const match = /spec-kit-template-(.+?)(?:-v?\d+\.\d+\.\d+.*)?\.zip$/.exec(name);
  return match?.[1] ?? name;
}

/** Every release and catalog package, in the order the home page lists them: releases first, highest version first. */
export function searchItems(releases: readonly ReleaseGroup[], catalogs: readonly { kind: CatalogKind; packages: readonly CatalogPackage[] }[], base: string): SearchItem[] {
  const items: SearchItem[] = releases.map((release) => {
    const flavours = release.records.map((r) => flavourOf(r.name));
    return {
      kind: 'template',
      id: release.tag,
      name: `Templates ${release.tag}`,
      version: release.tag,
      description: `${release.records.length} template${release.records.length === 1 ? '' : 's'}: ${flavours.join(', ')}`,
      tags: flavours,
      url: `${base}/packages/template/${encodeURIComponent(release.tag)}`,
    };
  });
  for (const { kind, packages } of catalogs) {
    for (const pkg of packages) {
      const meta = pkg.served.catalog;
      items.push({
        kind,
        id: pkg.id,
        name: meta.name,
        version: meta.version,
        description: meta.description,
        tags: meta.tags ?? [],
        url: `${base}/packages/${kind}/${encodeURIComponent(pkg.id)}`,
      });
    }
  }
  return items;
}

/** Items whose id, name, description or tags hold every word of `query` (case-insensitive); all for an empty query. */
export function search(items: readonly SearchItem[], query: string): SearchItem[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...items];
  return items.filter((item) => {
    const text = [item.kind, item.id, item.name, item.description, ...item.tags].join(' ').toLowerCase();
    return words.every((word) => text.includes(word));
  });
}
