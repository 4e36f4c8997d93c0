/** What a package is, decided at upload by the manifest it carries (see vetting/). */
export const PACKAGE_KINDS = ['template', 'extension', 'preset', 'workflow', 'step', 'bundle', 'integration'] as const;
export type PackageKind = (typeof PACKAGE_KINDS)[number];

/** The kinds upstream `specify` reads from catalogs; a template is read through /latest instead. */
export type CatalogKind = Exclude<PackageKind, 'template'>;
export const CATALOG_KINDS: readonly CatalogKind[] = ['extension', 'preset', 'workflow', 'step', 'bundle', 'integration'];

/** How a package's bytes are packed; the stored name's suffix says it, so a download's URL always matches its bytes. */
export const PACKAGE_FORMATS = ['zip', 'tar.gz', 'yaml'] as const;
export type PackageFormat = (typeof PACKAGE_FORMATS)[number];

/** The suffix of a stored package in each format. */
export const FORMAT_SUFFIX: Record<PackageFormat, string> = { zip: '.zip', 'tar.gz': '.tar.gz', yaml: '.yml' };

/**
 * How the CLI reads each kind (../shared/docs/speckit-kinds.md), as data: everything that differs between kinds is
 * here, and the code that vets, stores and lists packages reads it rather than naming kinds.
 */
export interface KindRules {
  /** The plural the catalogs and their URLs use: `/catalogs/extensions.json`, `{"extensions": {...}}`. */
  section: string;
  /** The manifest a package of this kind carries, and its top-level key (`extension:` in `extension.yml`). */
  manifest: string;
  manifestKey: string;
  /** What an upload of this kind may be; `yaml` is the bare manifest, not an archive. */
  formats: readonly PackageFormat[];
  /**
   * What the catalog entry downloads: an archive or YAML under `download_url` or `url`, a step's files one by one
   * (`step_yml_url`, `init_url`, `extra_files`), or nothing (search and info only).
   */
  download: 'download_url' | 'url' | 'step-files' | null;
  /** The environment variable that replaces the CLI's whole catalog stack for this kind, where there is one. */
  envVar: string | null;
  /** The CLI's catalog configuration file, in `~/.specify/` or a project's `.specify/`. */
  configFile: string;
}

export const KIND_RULES: Record<CatalogKind, KindRules> = {
  extension: { section: 'extensions', manifest: 'extension.yml', manifestKey: 'extension', formats: ['zip', 'tar.gz'], download: 'download_url', envVar: 'SPECKIT_CATALOG_URL', configFile: 'extension-catalogs.yml' },
  preset: { section: 'presets', manifest: 'preset.yml', manifestKey: 'preset', formats: ['zip', 'tar.gz'], download: 'download_url', envVar: 'SPECKIT_PRESET_CATALOG_URL', configFile: 'preset-catalogs.yml' },
  workflow: { section: 'workflows', manifest: 'workflow.yml', manifestKey: 'workflow', formats: ['zip', 'tar.gz', 'yaml'], download: 'url', envVar: 'SPECKIT_WORKFLOW_CATALOG_URL', configFile: 'workflow-catalogs.yml' },
  step: { section: 'steps', manifest: 'step.yml', manifestKey: 'step', formats: ['zip'], download: 'step-files', envVar: 'SPECKIT_STEP_CATALOG_URL', configFile: 'step-catalogs.yml' },
  bundle: { section: 'bundles', manifest: 'bundle.yml', manifestKey: 'bundle', formats: ['zip', 'yaml'], download: 'download_url', envVar: null, configFile: 'bundle-catalogs.yml' },
  integration: { section: 'integrations', manifest: 'integration.yml', manifestKey: 'integration', formats: ['zip', 'yaml'], download: null, envVar: 'SPECKIT_INTEGRATION_CATALOG_URL', configFile: 'integration-catalogs.yml' },
};

export const MANIFEST_FILE = Object.fromEntries(CATALOG_KINDS.map((k) => [k, KIND_RULES[k].manifest])) as Record<CatalogKind, string>;

export const CATALOG_SECTION = {
  extension: 'extensions',
  preset: 'presets',
  workflow: 'workflows',
  step: 'steps',
  bundle: 'bundles',
  integration: 'integrations',
} as const satisfies { [K in CatalogKind]: (typeof KIND_RULES)[K]['section'] };
export type CatalogSection = (typeof CATALOG_SECTION)[CatalogKind];

export function kindOfSection(section: string): CatalogKind | undefined {
  return CATALOG_KINDS.find((kind) => CATALOG_SECTION[kind] === section);
}

/** The kind of a catalog file name, `extensions.json` → extension. */
export function kindOfCatalogFile(file: string): CatalogKind | undefined {
  return file.endsWith('.json') ? kindOfSection(file.slice(0, -'.json'.length)) : undefined;
}

export function isPackageKind(value: unknown): value is PackageKind {
  return (PACKAGE_KINDS as readonly unknown[]).includes(value);
}

/** The format a stored name's suffix gives; names stored before formats existed end in `.zip`. */
export function formatOfName(name: string): PackageFormat {
  const lower = name.toLowerCase();
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) return 'tar.gz';
  if (lower.endsWith('.yml') || lower.endsWith('.yaml')) return 'yaml';
  return 'zip';
}

/** The kinds a bundle's `provides` names, by the key it uses there. */
export const BUNDLE_COMPONENT_KINDS = { extensions: 'extension', presets: 'preset', steps: 'step', workflows: 'workflow' } as const;
export type BundleComponentKind = (typeof BUNDLE_COMPONENT_KINDS)[keyof typeof BUNDLE_COMPONENT_KINDS];
