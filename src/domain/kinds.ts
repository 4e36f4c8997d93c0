/** What a package is, decided at upload by the manifest it carries (see vetting/). */
export const PACKAGE_KINDS = ['template', 'extension', 'preset', 'workflow'] as const;
export type PackageKind = (typeof PACKAGE_KINDS)[number];

/** The kinds upstream `specify` installs from catalogs; a template is read through /latest instead. */
export type CatalogKind = Exclude<PackageKind, 'template'>;
export const CATALOG_KINDS: readonly CatalogKind[] = ['extension', 'preset', 'workflow'];

export const MANIFEST_FILE: Record<CatalogKind, string> = {
  extension: 'extension.yml',
  preset: 'preset.yml',
  workflow: 'workflow.yml',
};

/** The plural the catalogs and their URLs use: `/catalogs/extensions.json`, `{"extensions": {...}}`. */
export const CATALOG_SECTION = { extension: 'extensions', preset: 'presets', workflow: 'workflows' } as const satisfies Record<CatalogKind, string>;
export type CatalogSection = (typeof CATALOG_SECTION)[CatalogKind];

export function kindOfSection(section: string): CatalogKind | undefined {
  return CATALOG_KINDS.find((kind) => CATALOG_SECTION[kind] === section);
}

export function isPackageKind(value: unknown): value is PackageKind {
  return (PACKAGE_KINDS as readonly unknown[]).includes(value);
}
