import { crc32, deflateRawSync } from 'node:zlib';
import { stringify } from 'yaml';
import { makeZip } from './zip.js';

/** A template: a zip with no manifest. Equal text gives equal bytes. */
export function templateZip(text: string): Promise<Buffer> {
  return makeZip({ 'README.md': text });
}

type Manifest = Record<string, unknown>;

export interface CatalogPackageOptions {
  id?: string;
  version?: unknown;
  /** Merged into the manifest's `extension`/`preset`/`workflow` block. */
  info?: Manifest;
  /** Merged into the manifest at the top level (`undefined` removes a key). */
  manifest?: Manifest;
  /** Extra files, or `null` to leave one of the defaults out. */
  files?: Record<string, string | null>;
  /** Everything inside one top-level directory, as `zip -r` of a folder gives. */
  dir?: string;
}

/** An extension that `specify extension add` installs: one command, its file present. */
export function extensionManifest(id = 'acme-hello', version: unknown = '1.0.0'): Manifest {
  return {
    schema_version: '1.0',
    extension: { id, name: `Ext ${id}`, version, description: `The ${id} extension`, author: 'Acme', license: 'MIT' },
    requires: { speckit_version: '>=0.1.0' },
    provides: { commands: [{ name: `speckit.${id}.greet`, file: 'commands/greet.md', description: 'Greets' }] },
    tags: ['acme'],
  };
}

export function presetManifest(id = 'acme-preset', version: unknown = '1.0.0'): Manifest {
  return {
    schema_version: '1.0',
    preset: { id, name: `Preset ${id}`, version, description: `The ${id} preset`, author: 'Acme' },
    requires: { speckit_version: '>=0.1.0' },
    provides: { templates: [{ type: 'template', name: 'spec-template', file: 'templates/spec-template.md' }] },
  };
}

export function workflowManifest(id = 'acme-flow', version: unknown = '1.0.0'): Manifest {
  return {
    schema_version: '1.0',
    workflow: { id, name: `Flow ${id}`, version, description: `The ${id} workflow` },
    steps: [{ id: 'plan', command: 'speckit.plan' }],
  };
}

const DEFAULT_FILES = {
  extension: { 'commands/greet.md': '# Greet\nSay hello.\n' },
  preset: { 'templates/spec-template.md': '# Spec\n' },
  workflow: {},
};

const MANIFESTS = { extension: extensionManifest, preset: presetManifest, workflow: workflowManifest };

/** A zip of a catalog package, valid unless the options break it. */
export function catalogZip(kind: 'extension' | 'preset' | 'workflow', options: CatalogPackageOptions = {}): Promise<Buffer> {
  const manifest = MANIFESTS[kind](options.id, options.version ?? '1.0.0');
  Object.assign(manifest[kind] as Manifest, options.info);
  for (const [key, value] of Object.entries(options.manifest ?? {})) {
    if (value === undefined) delete manifest[key];
    else manifest[key] = value;
  }
  const files: Record<string, string> = { [`${kind}.yml`]: stringify(manifest) };
  for (const [name, text] of Object.entries({ ...DEFAULT_FILES[kind], ...options.files })) {
    if (text !== null) files[name] = text;
  }
  const prefix = options.dir ? `${options.dir}/` : '';
  return makeZip(Object.fromEntries(Object.entries(files).map(([name, text]) => [prefix + name, text])));
}

export interface RawEntry {
  /** Written as given: no check, no normalisation. */
  name: string;
  data?: Buffer | string;
  /** 0 stored (default), 8 deflated; anything else is written as is, with the data stored. */
  method?: number;
  /** The uncompressed size the headers claim; the real one by default. */
  declaredSize?: number;
  /** Unix mode in the external attributes, e.g. 0o120777 for a symlink. */
  mode?: number;
  versionNeeded?: number;
  extra?: Buffer;
}

/**
 * A zip written byte by byte, for archives no well-behaved zip library writes: hostile names, symlinks,
 * unknown methods, lying sizes, ZIP64 markers.
 */
export function rawZip(entries: RawEntry[], options: { zip64Locator?: boolean } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const data = Buffer.from(entry.data ?? '');
    const method = entry.method ?? 0;
    const body = method === 8 ? deflateRawSync(data) : data;
    const extra = entry.extra ?? Buffer.alloc(0);
    const size = entry.declaredSize ?? data.length;
    const crc = crc32(data);
    const version = entry.versionNeeded ?? 20;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(version, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    locals.push(local, name, extra, body);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix
    central.writeUInt16LE(version, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(extra.length, 30);
    central.writeUInt32LE(((entry.mode ?? (entry.name.endsWith('/') ? 0o40755 : 0o100644)) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name, extra);
    offset += 30 + name.length + extra.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const parts = [...locals, cd];
  if (options.zip64Locator) {
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    parts.push(locator);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  parts.push(eocd);
  return Buffer.concat(parts);
}

/** A valid template zip of exactly `total` bytes: one stored member padded to fit. */
export function zipOfSize(total: number): Buffer {
  const name = 'padding.bin';
  const overhead = 30 + 46 + 22 + 2 * name.length;
  return rawZip([{ name, data: Buffer.alloc(total - overhead, 1) }]);
}

/** A step package: step.yml and __init__.py, plus `extra` files (relative paths), optionally in one top-level folder. */
export function stepZip(id: string, options: { version?: string; extra?: Record<string, string>; dir?: string; init?: string } = {}): Promise<Buffer> {
  const files: Record<string, string> = {
    'step.yml': stringify({ step: { type_key: id, name: `Step ${id}`, version: options.version ?? '1.0.0', description: `The ${id} step`, author: 'Acme' } }),
    '__init__.py': options.init ?? `from specify_cli.workflows.base import StepBase\n\n\nclass Step(StepBase):\n    type_key = "${id}"\n`,
    ...options.extra,
  };
  const prefix = options.dir ? `${options.dir}/` : '';
  return makeZip(Object.fromEntries(Object.entries(files).map(([name, text]) => [prefix + name, text])));
}

export interface BundlePins {
  extensions?: { id: string; version?: string }[];
  presets?: { id: string; version?: string; priority?: number; strategy?: string }[];
  steps?: { id: string; version?: string }[];
  workflows?: { id: string; version?: string }[];
}

/** A bare bundle.yml that provides `pins`. */
export function bundleYaml(id: string, version: string, pins: BundlePins): string {
  return stringify({
    schema_version: '1.0',
    bundle: { id, name: `Bundle ${id}`, version, role: 'developer', description: `The ${id} bundle`, author: 'Acme', license: 'MIT' },
    requires: { speckit_version: '>=0.1.0' },
    provides: { ...pins, presets: pins.presets?.map((p) => ({ priority: 10, strategy: 'replace', ...p })) },
    tags: ['acme'],
  });
}

/** A bare integration.yml. */
export function integrationYaml(id: string, version = '1.0.0'): string {
  return stringify({
    schema_version: '1.0',
    integration: { id, name: `Agent ${id}`, version, description: `Integration for ${id}`, author: 'Acme', repository: `https://example.com/${id}`, license: 'MIT' },
    requires: { speckit_version: '>=0.6.0' },
    provides: { scripts: ['update-context.sh'] },
  });
}

/** A catalog package's files as a tar.gz archive instead of a zip. */
export function catalogFiles(kind: 'extension' | 'preset' | 'workflow', id: string, version = '1.0.0'): Record<string, string> {
  return { [`${kind}.yml`]: stringify(MANIFESTS[kind](id, version)), ...DEFAULT_FILES[kind] };
}
