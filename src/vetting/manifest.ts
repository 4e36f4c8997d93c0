import { isAlias, isMap, isPair, isScalar, isSeq, Lexer, parseDocument, type Document } from 'yaml';
import type { CatalogMetadata } from '../domain/catalog.js';
import { BUNDLE_COMPONENT_KINDS, CATALOG_KINDS, KIND_RULES, type CatalogKind } from '../domain/kinds.js';
import type { BundleComponent } from '../domain/record.js';
import { isPep440Specifier, isPep440Version } from '../domain/pep440.js';
import { escapeForDisplay, unsafeEntryNameReason } from './entry-names.js';
import { MANIFEST_LIMITS } from './manifest-limits.js';
import type { Violation } from './zip-structure.js';
import { CORE_COMMANDS, RESERVED_IDS } from './reserved-ids.js';

type Json = Record<string, unknown>;

const ID = /^[a-z0-9-]+$/;
const WORKFLOW_ID = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const COMMAND = /^speckit\.([a-z0-9-]+)\.([a-z0-9-]+)$/;
const PRESET_COMMAND = /^[a-z0-9.-]+$/;
const STRICT_VERSION = /^\d+\.\d+\.\d+$/;
/** A step's `type_key`: a directory name in `.specify/workflows/steps/` and part of a Python module name. */
const STEP_ID = /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/;
const MAX_STEP_ID = 64;
/** upstream `bundler/models/manifest.py` `_SAFE_BUNDLE_ID`: it becomes part of file names. */
const BUNDLE_ID = /^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$/;
/** upstream `bundler/lib/versioning.py` `is_semver`: full SemVer 2.0, after an optional leading `v`/`V`. */
const SEMVER = /^(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-(?:(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+(?:[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
export const isBundleSemver = (value: string): boolean => SEMVER.test(/^[vV]/.test(value) ? value.slice(1) : value);
const RUNTIMES = new Set(['bash', 'powershell', 'python']);
const PRESET_TYPES = new Set(['template', 'command', 'script']);
const STRATEGIES = new Set(['replace', 'prepend', 'append', 'wrap']);
const EFFECTS = new Set(['read-only', 'read-write']);
const LINKS = ['repository', 'homepage', 'documentation', 'changelog'] as const;

export interface ManifestFacts {
  kind: CatalogKind;
  /** Where the manifest sits: `extension.yml` or `acme-hello/extension.yml`. */
  path: string;
  text: Buffer;
  /**
   * Every file of the archive, by normalised name; null for a bare manifest (a YAML upload), which has no files:
   * then the checks that a named file exists are skipped (see `vetManifestText`).
   */
  files: ReadonlySet<string> | null;
}

/**
 * The manifest rules of spec-kit's validators (section 6 of docs on catalogs), plus what the CLI leaves
 * unchecked and a vetted catalog must not: every file a manifest names exists in the package, and the id is
 * not one the CLI resolves locally (it would never ask us for it).
 */
export function checkManifest(facts: ManifestFacts): { metadata: CatalogMetadata | null; violations: Violation[] } {
  const check = new Checker(facts);
  // The CLI decodes step.yml, bundle.yml and integration.yml as strict UTF-8 before it parses them. (Extension,
  // preset and workflow manifests are vetted as they were before these kinds came.)
  if (STRICT_UTF8_KINDS.has(facts.kind) && !isUtf8(facts.text)) {
    check.fail('', 'is not UTF-8 text: the spec-kit CLI cannot read it');
    return { metadata: null, violations: check.violations };
  }
  const root = parseBounded(facts.text, check);
  if (root === undefined) return { metadata: null, violations: check.violations };
  if (!isObject(root)) {
    check.fail('', 'must be a YAML mapping');
    return { metadata: null, violations: check.violations };
  }
  checkText(root, '', check);
  // A step.yml has no schema_version upstream (the CLI reads only `step:`); every other manifest says "1.0".
  if (facts.kind !== 'step' && root.schema_version !== '1.0') {
    check.fail('/schema_version', typeof root.schema_version === 'number' ? 'must be the string "1.0" (quote it)' : 'must be the string "1.0"');
  }
  const checkers = { extension: checkExtension, preset: checkPreset, workflow: checkWorkflow, step: checkStep, bundle: checkBundle, integration: checkIntegration };
  const metadata = checkers[facts.kind](root, check);
  checkLinks(root[facts.kind], `/${facts.kind}`, check);
  return { metadata: check.violations.length === 0 ? metadata : null, violations: check.violations };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const STRICT_UTF8_KINDS: ReadonlySet<CatalogKind> = new Set(['step', 'bundle', 'integration']);

function isUtf8(text: Buffer): boolean {
  try {
    strictUtf8.decode(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * The kind of a bare manifest (a YAML upload), from its top-level key: `workflow:`, `bundle:`, `integration:`
 * (and `extension:`, `preset:`, `step:`, which the caller refuses: they need an archive). A bundle.yml may also
 * have an `integration:` mapping (the integration it targets), so `bundle:` decides first. The text must be UTF-8
 * and parse within the manifest bounds.
 */
export function manifestKindOf(text: Buffer): { kind: CatalogKind } | { violations: Violation[] } {
  // "(archive)" and "not a readable zip archive" as the zip reader says it of bytes that are no package at all.
  const neither = (why: string) => ({ violations: [{ path: '(archive)', message: `not a readable zip archive, tar.gz archive or YAML manifest: ${why}` }] });
  if (!isUtf8(text)) return neither('it is not UTF-8 text');
  const check = new Checker({ kind: 'workflow', path: '(archive)', text, files: null });
  const root = parseBounded(text, check);
  if (root === undefined) return { violations: check.violations.map((v) => ({ path: v.path, message: `not a readable zip archive, tar.gz archive or YAML manifest: as YAML, it ${v.message}` })) };
  if (!isObject(root)) return neither('it is not a YAML mapping');
  if (isObject(root.bundle)) return { kind: 'bundle' };
  const kinds = CATALOG_KINDS.filter((kind) => KIND_RULES[kind].manifestKey in root);
  if (kinds.length === 1) return { kind: kinds[0]! };
  if (kinds.length === 0) return neither('a bare manifest is a workflow.yml, bundle.yml or integration.yml, and its top-level key (workflow:, bundle: or integration:) says which');
  return neither(`it has more than one manifest's top-level key (${kinds.map((k) => `${KIND_RULES[k].manifestKey}:`).join(', ')})`);
}

/** The manifest as data, or undefined (with a violation) when it is not YAML or breaks a bound. */
function parseBounded(text: Buffer, check: Checker): unknown {
  if (text.length > MANIFEST_LIMITS.maxBytes) {
    check.fail('', `is ${text.length} bytes; a manifest may have at most ${MANIFEST_LIMITS.maxBytes}`);
    return undefined;
  }
  const source = text.toString('utf8');
  // yaml composes flow collections recursively: `[[[[…` 100,000 deep would cost a second and a stack overflow.
  // Its lexer is iterative: one pass over its tokens bounds flow nesting first.
  let flowDepth = 0;
  for (const token of new Lexer().lex(source)) {
    if (token === '[' || token === '{') flowDepth += 1;
    else if (token === ']' || token === '}') flowDepth -= 1;
    if (flowDepth > MANIFEST_LIMITS.maxDepth) {
      check.fail('', `nests deeper than ${MANIFEST_LIMITS.maxDepth} levels`);
      return undefined;
    }
  }
  let doc: Document.Parsed;
  try {
    // uniqueKeys: yaml's own check compares every key of a mapping with every other (quadratic); boundedShape checks with a Set.
    doc = parseDocument(source, { uniqueKeys: false, prettyErrors: false });
  } catch (err) {
    check.fail('', `cannot be read: ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
  if (doc.errors.length > 0) {
    check.fail('', `is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    return undefined;
  }
  const shape = boundedShape(doc.contents);
  if (shape) {
    check.fail(shape.pointer, shape.message);
    return undefined;
  }
  try {
    const data = doc.toJS({ maxAliasCount: 100 }) as unknown;
    const mismatch = yaml11Mismatch(source, data);
    if (mismatch) check.fail(mismatch.pointer, `is ${JSON.stringify(mismatch.text)} here, but the spec-kit CLI's YAML reader (YAML 1.1) reads it as ${mismatch.theirs}: quote it`);
    return data;
  } catch (err) {
    check.fail('', `cannot be read: ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

/** The first bound a document breaks (nodes, depth, aliases, a repeated or merge key), with where; null when none. */
function boundedShape(contents: unknown): { pointer: string; message: string } | null {
  let nodes = 0;
  let aliases = 0;
  const stack: { node: unknown; depth: number; pointer: string }[] = [{ node: contents, depth: 0, pointer: '' }];
  while (stack.length > 0) {
    const { node, depth, pointer } = stack.pop()!;
    if (node === null || node === undefined) continue;
    nodes += 1;
    if (nodes > MANIFEST_LIMITS.maxNodes) return { pointer: '', message: `has more than ${MANIFEST_LIMITS.maxNodes} keys and values; a manifest may have at most that many` };
    if (depth > MANIFEST_LIMITS.maxDepth) return { pointer, message: `nests deeper than ${MANIFEST_LIMITS.maxDepth} levels` };
    const tagged = explicitTag(node);
    if (tagged) return { pointer, message: tagged };
    if (isAlias(node)) {
      aliases += 1;
      if (aliases > MANIFEST_LIMITS.maxAliases) return { pointer, message: `uses more than ${MANIFEST_LIMITS.maxAliases} YAML aliases` };
    } else if (isMap(node)) {
      const keys = new Set<string>();
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : null;
        if (key === null) return { pointer, message: 'has a mapping key that is not a plain value' };
        const at = `${pointer}/${escapePointer(key)}`;
        const keyTagged = explicitTag(pair.key);
        if (keyTagged) return { pointer: at, message: keyTagged };
        if (key === '<<') return { pointer: at, message: "is a YAML merge key, which the CLI's YAML reader (YAML 1.1) merges and ours (YAML 1.2) does not" };
        if (keys.has(key)) return { pointer: at, message: 'is a key that appears twice in its mapping' };
        keys.add(key);
        nodes += 1;
        stack.push({ node: pair.value, depth: depth + 1, pointer: at });
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => stack.push({ node: item, depth: depth + 1, pointer: `${pointer}/${i}` }));
    }
  }
  return null;
}

/**
 * The first field of a manifest's own block (`workflow:`, `extension:`…, what the catalog lists) that we read as
 * text and PyYAML reads as something else: `id: on` (true), `version: 2024-01-01` (a date), `name: 0b11` (3). The
 * CLI then refuses the manifest (a workflow's id must be a string) or shows another value than the catalog. PyYAML
 * takes `y` and `n` as text, which yaml's 1.1 schema does not.
 */
function yaml11Mismatch(source: string, ours: unknown): { pointer: string; text: string; theirs: string } | null {
  let theirs: unknown;
  try {
    theirs = parseDocument(source, { version: '1.1', uniqueKeys: false }).toJS({ maxAliasCount: 100 }) as unknown;
  } catch {
    return null;
  }
  if (!isObject(ours) || !isObject(theirs)) return null;
  const stack: { a: unknown; b: unknown; pointer: string }[] = [];
  for (const block of CATALOG_BLOCKS) stack.push({ a: ours[block.slice(1)], b: theirs[block.slice(1)], pointer: block });
  while (stack.length > 0) {
    const { a, b, pointer } = stack.pop()!;
    if (typeof a === 'string') {
      if (b !== undefined && typeof b !== 'string' && !/^[yYnN]$/.test(a)) {
        return { pointer, text: a, theirs: b instanceof Date ? 'a date' : b === null ? 'null' : `the ${typeof b} ${String(b)}` };
      }
    } else if (Array.isArray(a) && Array.isArray(b)) {
      a.forEach((item, i) => stack.push({ a: item, b: b[i], pointer: `${pointer}/${i}` }));
    } else if (isObject(a) && isObject(b)) {
      for (const key of Object.keys(a)) stack.push({ a: a[key], b: b[key], pointer: `${pointer}/${escapePointer(key)}` });
    }
  }
  return null;
}

/** Explicit tags PyYAML's safe_load reads as the plain YAML would be read: a string, a mapping, a list. */
const HARMLESS_TAGS = new Set(['tag:yaml.org,2002:str', 'tag:yaml.org,2002:map', 'tag:yaml.org,2002:seq']);

/**
 * Why a node's explicit tag is refused, or null: the CLI's `yaml.safe_load` raises on any other tag it has no
 * constructor for (`!!python/object`, `!foo`) and makes bytes, sets or dates of the rest, where we would read text.
 */
function explicitTag(node: unknown): string | null {
  const tag = (node as { tag?: unknown }).tag;
  if (typeof tag !== 'string' || HARMLESS_TAGS.has(tag)) return null;
  return `has the explicit YAML tag ${escapeForDisplay(JSON.stringify(tag))}, which the spec-kit CLI's YAML reader (safe_load) refuses or reads as no string; remove it`;
}

/** Links a catalog shows are followed by people: http(s) URLs only (no `javascript:`, `file:` or `data:`). */
function checkLinks(info: unknown, at: string, check: Checker): void {
  if (!isObject(info)) return;
  for (const key of LINKS) {
    const value = info[key];
    if (value === undefined || value === null) continue;
    let url: URL | null = null;
    try {
      url = typeof value === 'string' ? new URL(value) : null;
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) check.fail(`${at}/${key}`, 'must be an https: (or http:) URL');
  }
}

const escapePointer = (key: string) => escapeForDisplay(key.replaceAll('~', '~0').replaceAll('/', '~1'));

/** C0 controls but tab and newline, DEL, C1 controls (ESC, CSI and OSC among them): what a terminal obeys instead of showing. */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
/** The same, with tab and newline: for one-line fields. */
const CONTROL_OR_BREAK = /[\u0000-\u001f\u007f-\u009f]/;
/** Marks that reorder how text is shown (Trojan Source): the displayed name is not the one read. */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
/** The manifests' own blocks, whose fields the catalog shows. */
const CATALOG_BLOCKS = new Set(['/extension', '/preset', '/workflow', '/step', '/bundle', '/integration']);
/** Keys of the extension/preset/workflow block whose text may span lines; the rest are shown on one line. */
const MULTILINE_KEYS = new Set(['description']);

/**
 * Every string of the manifest (keys too) is text some client shows, in a terminal or a page: no control
 * characters (newline and tab only in text that may span lines), no escape sequences, no bidi controls.
 */
function checkText(value: unknown, pointer: string, check: Checker, oneLine = false): void {
  if (typeof value === 'string') {
    const control = (oneLine ? CONTROL_OR_BREAK : CONTROL).exec(value);
    const bidi = BIDI.exec(value);
    const code = (c: string) => `U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
    if (control) {
      const what = control[0] === '\u001b' || control[0] === '\u009b' || control[0] === '\u009d' ? 'a terminal escape sequence' : oneLine && (control[0] === '\n' || control[0] === '\t') ? 'a line break or tab' : 'a control character';
      check.fail(pointer, `contains ${what} (${code(control[0])})`);
    } else if (bidi) check.fail(pointer, `contains a bidirectional text control (${code(bidi[0])}), which makes text show other than it reads`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkText(item, `${pointer}/${i}`, check, oneLine));
    return;
  }
  if (!isObject(value)) return;
  const depth = pointer.split('/').length - 1;
  for (const [key, item] of Object.entries(value)) {
    const at = `${pointer}/${escapePointer(key)}`;
    checkText(key, at, check, true);
    const catalogField = (depth === 1 && CATALOG_BLOCKS.has(pointer)) || at === '/tags' || pointer.startsWith('/requires');
    checkText(item, at, check, oneLine || (catalogField && !MULTILINE_KEYS.has(key)));
  }
}

function checkExtension(root: Json, check: Checker): CatalogMetadata | null {
  for (const key of ['extension', 'requires', 'provides']) if (!(key in root)) check.fail(`/${key}`, 'is required');
  const info = check.object(root, 'extension', '/extension');
  const id = check.id(info, '/extension', ID, 'extension');
  const version = check.version(info, '/extension/version');
  const requires = checkRequires(root, check, true);
  const provides = check.object(root, 'provides', '/provides') ?? {};
  const effect = info?.effect;
  if (effect !== undefined && !EFFECTS.has(effect as string)) check.fail('/extension/effect', 'must be read-only or read-write');

  const names = new Set<string>();
  const commands = check.list(provides, 'commands', '/provides/commands');
  commands.forEach((command, i) => {
    const at = `/provides/commands/${i}`;
    const name = check.string(command, 'name', `${at}/name`, true);
    const match = name === undefined ? null : COMMAND.exec(name);
    if (name !== undefined && !match) check.fail(`${at}/name`, `"${name}" must look like speckit.${id ?? '<id>'}.<command>`);
    else if (match && id && match[1] !== id) check.fail(`${at}/name`, `"${name}" must name this extension: speckit.${id}.${match[2]}`);
    if (name !== undefined) check.unique(names, name, `${at}/name`);
    check.file(command, 'file', `${at}/file`);
    check.list(command, 'aliases', `${at}/aliases`).forEach((alias, j) => {
      if (typeof alias !== 'string') check.fail(`${at}/aliases/${j}`, 'must be a string');
      else check.unique(names, alias, `${at}/aliases/${j}`);
    });
  });
  const templates = check.list(provides, 'templates', '/provides/templates');
  const templateNames = new Set<string>();
  templates.forEach((t, i) => {
    check.name(t, `/provides/templates/${i}`, templateNames);
    check.file(t, 'file', `/provides/templates/${i}/file`);
    if (isObject(t) && 'strategy' in t) check.fail(`/provides/templates/${i}/strategy`, 'is not allowed in an extension (presets have strategies)');
  });
  const scripts = check.list(provides, 'scripts', '/provides/scripts');
  const scriptNames = new Set<string>();
  scripts.forEach((s, i) => {
    check.name(s, `/provides/scripts/${i}`, scriptNames);
    check.file(s, 'file', `/provides/scripts/${i}/file`);
    check.list(s, 'runtimes', `/provides/scripts/${i}/runtimes`).forEach((r, j) => {
      if (!RUNTIMES.has(r as string)) check.fail(`/provides/scripts/${i}/runtimes/${j}`, 'must be bash, powershell or python');
    });
  });
  check.list(provides, 'config', '/provides/config').forEach((c, i) => {
    if (isObject(c) && c.template !== undefined) check.file(c, 'template', `/provides/config/${i}/template`);
  });
  const hooks = check.object(root, 'hooks', '/hooks') ?? {};
  for (const [event, hook] of Object.entries(hooks)) {
    if (!isObject(hook)) {
      check.fail(`/hooks/${event}`, 'must be a mapping');
      continue;
    }
    check.string(hook, 'command', `/hooks/${event}/command`, true);
    const priority = hook.priority;
    if (priority !== undefined && !(Number.isInteger(priority) && (priority as number) >= 1)) check.fail(`/hooks/${event}/priority`, 'must be an integer of at least 1');
  }
  const events = isObject(root.events) ? Object.keys(root.events).length : Array.isArray(root.events) ? root.events.length : 0;
  if (commands.length + templates.length + scripts.length + Object.keys(hooks).length + events === 0) {
    check.fail('/provides', 'must provide at least one command, hook, event, template or script');
  }
  if (id && (CORE_COMMANDS as readonly string[]).includes(id)) check.fail('/extension/id', `"${id}" is the name of a core spec-kit command`);
  if (!id || !version || !info) return null;
  const contents = [
    ...commands.flatMap((c) => (isObject(c) && typeof c.name === 'string' ? [{ what: 'command', name: c.name }] : [])),
    ...Object.entries(hooks).flatMap(([event, hook]) => (isObject(hook) && typeof hook.command === 'string' ? [{ what: 'hook', name: `${event}: ${hook.command}` }] : [])),
    ...templates.flatMap((t) => (isObject(t) && typeof t.name === 'string' ? [{ what: 'template', name: t.name }] : [])),
    ...scripts.flatMap((t) => (isObject(t) && typeof t.name === 'string' ? [{ what: 'script', name: t.name }] : [])),
  ];
  return metadata(info, root, id, version, requires, { commands: commands.length, hooks: Object.keys(hooks).length }, contents);
}

function checkPreset(root: Json, check: Checker): CatalogMetadata | null {
  for (const key of ['preset', 'requires', 'provides']) if (!(key in root)) check.fail(`/${key}`, 'is required');
  const info = check.object(root, 'preset', '/preset');
  const id = check.id(info, '/preset', ID, 'preset');
  const version = check.version(info, '/preset/version');
  const requires = checkRequires(root, check, true);
  const provides = check.object(root, 'provides', '/provides') ?? {};
  const templates = check.list(provides, 'templates', '/provides/templates');
  if (templates.length === 0) check.fail('/provides/templates', 'must list at least one template');
  const seen = new Set<string>();
  const counts = { templates: 0, commands: 0, scripts: 0 };
  templates.forEach((t, i) => {
    const at = `/provides/templates/${i}`;
    const type = check.string(t, 'type', `${at}/type`, true);
    if (type !== undefined && !PRESET_TYPES.has(type)) check.fail(`${at}/type`, 'must be template, command or script');
    const name = check.string(t, 'name', `${at}/name`, true);
    if (name !== undefined && !(type === 'command' ? PRESET_COMMAND : ID).test(name)) check.fail(`${at}/name`, `"${name}" is not a valid ${type ?? 'template'} name`);
    if (name !== undefined && type !== undefined) check.unique(seen, `${type} ${name}`, `${at}/name`, `${type} "${name}" is listed twice`);
    check.file(t, 'file', `${at}/file`);
    const strategy = isObject(t) ? t.strategy : undefined;
    if (strategy !== undefined && !STRATEGIES.has(strategy as string)) check.fail(`${at}/strategy`, 'must be replace, prepend, append or wrap');
    else if (type === 'script' && strategy !== undefined && strategy !== 'replace' && strategy !== 'wrap') check.fail(`${at}/strategy`, 'a script may only replace or wrap');
    if (type === 'template' || type === 'command' || type === 'script') counts[`${type}s`] += 1;
  });
  if (!id || !version || !info) return null;
  const contents = templates.flatMap((t) => (isObject(t) && typeof t.name === 'string' && typeof t.type === 'string' ? [{ what: t.type, name: t.name }] : []));
  return metadata(info, root, id, version, requires, counts, contents);
}

function checkWorkflow(root: Json, check: Checker): CatalogMetadata | null {
  const info = check.object(root, 'workflow', '/workflow');
  if (!info) check.fail('/workflow', 'is required');
  const id = check.id(info, '/workflow', WORKFLOW_ID, 'workflow');
  const version = check.string(info, 'version', '/workflow/version', true);
  if (version !== undefined && !STRICT_VERSION.test(version)) check.fail('/workflow/version', `"${version}" must be X.Y.Z`);
  const steps = check.list(root, 'steps', '/steps');
  if (steps.length === 0) check.fail('/steps', 'must list at least one step');
  const requires = checkRequires(root, check, false);
  if (!id || !version || !info || !STRICT_VERSION.test(version)) return null;
  const contents = steps.flatMap((step) => {
    const name = isObject(step) ? (typeof step.id === 'string' ? step.id : typeof step.command === 'string' ? step.command : null) : null;
    return name === null ? [] : [{ what: 'step', name }];
  });
  return metadata(info, root, id, version, requires, { steps: steps.length }, contents);
}

/**
 * A step's `step.yml` (upstream `workflow step add` and `load_custom_steps`): a mapping whose `step:` mapping
 * holds `type_key`, the id the catalog lists it under and the directory it installs into. The CLI reads
 * `name`, `version`, `description` and `author` from it when the catalog entry lacks them; we require `name`,
 * `version` (PEP 440) and `description` so that the catalog has them. A step.yml has no `schema_version`.
 */
function checkStep(root: Json, check: Checker): CatalogMetadata | null {
  const info = check.object(root, 'step', '/step');
  if (!info) check.fail('/step', 'is required: a step.yml holds a `step:` mapping');
  if (!info) return null;
  const id = check.string(info, 'type_key', '/step/type_key', true);
  let validId = id !== undefined;
  if (id !== undefined) {
    const unsafe = unsafeEntryNameReason(id);
    if (!STEP_ID.test(id) || id.length > MAX_STEP_ID) {
      check.fail('/step/type_key', `"${id}" must match ${STEP_ID.source} and have at most ${MAX_STEP_ID} characters`);
      validId = false;
    } else if (RESERVED_IDS.step.includes(id)) {
      check.fail('/step/type_key', `"${id}" is reserved: it is a step type built into the spec-kit CLI, which refuses to install a step with its name`);
      validId = false;
    } else if (unsafe) {
      check.fail('/step/type_key', `"${id}" cannot be a directory name on every system: ${unsafe}`);
      validId = false;
    }
  }
  check.string(info, 'name', '/step/name', true);
  check.string(info, 'description', '/step/description', true);
  const version = check.version(info, '/step/version');
  const requires = checkRequires(root, check, false);
  if (!id || !validId || !version) return null;
  return metadata(info, root, id, version, requires, null, []);
}

/**
 * A `bundle.yml`, by upstream's structural rules (`bundler/models/manifest.py`, `from_dict` and
 * `structural_errors`), each problem reported (upstream stops at the first shape error): schema_version "1.0";
 * bundle id (a slug), name, version (SemVer, an optional leading `v`), role, description, author and license;
 * requires.speckit_version; `provides.{extensions,presets,steps,workflows}` lists of mappings with an `id` and a
 * SemVer `version` (steps may be unpinned), presets with an integer `priority` and a `strategy`; `tags`,
 * `requires.tools` and `requires.mcp` lists of strings; `integration` a mapping. Whether each pin exists on this
 * server is the service's check, not this one.
 */
function checkBundle(root: Json, check: Checker): CatalogMetadata | null {
  const info = check.object(root, 'bundle', '/bundle');
  if (!info) check.fail('/bundle', 'is required: a bundle.yml holds a `bundle:` mapping');
  const fields: Record<string, string | undefined> = {};
  for (const key of ['id', 'name', 'version', 'role', 'description', 'author', 'license']) fields[key] = check.string(info ?? {}, key, `/bundle/${key}`, info !== undefined);
  const { id, version } = fields;
  let valid = true;
  if (id !== undefined && !BUNDLE_ID.test(id)) {
    check.fail('/bundle/id', `"${id}" must be a slug matching ${BUNDLE_ID.source}`);
    valid = false;
  }
  if (version !== undefined && !isBundleSemver(version)) {
    check.fail('/bundle/version', `"${version}" is not SemVer (X.Y.Z, an optional leading v)`);
    valid = false;
  }
  const requiresBlock = check.object(root, 'requires', '/requires');
  if (!requiresBlock) check.fail('/requires/speckit_version', 'is required');
  const speckit = check.string(requiresBlock ?? {}, 'speckit_version', '/requires/speckit_version', requiresBlock !== undefined);
  if (speckit !== undefined && !isPep440Specifier(speckit)) check.fail('/requires/speckit_version', `"${speckit}" is not a PEP 440 version specifier`);
  stringList(requiresBlock, 'tools', '/requires/tools', check);
  stringList(requiresBlock, 'mcp', '/requires/mcp', check);
  const tags = stringList(root, 'tags', '/tags', check);
  const integration = check.object(root, 'integration', '/integration');
  const integrationId = integration && typeof integration.id === 'string' && integration.id.trim() !== '' ? integration.id.trim() : undefined;
  if (integration && integration.id !== undefined && integration.id !== null && integrationId === undefined) check.fail('/integration/id', 'must be a non-empty string');

  const provides = check.object(root, 'provides', '/provides') ?? {};
  const components: BundleComponent[] = [];
  const counts: Record<string, number> = {};
  for (const [section, kind] of Object.entries(BUNDLE_COMPONENT_KINDS)) {
    const items = check.list(provides, section, `/provides/${section}`);
    counts[section] = items.length;
    items.forEach((item, i) => {
      const rawId = isObject(item) ? item.id : undefined;
      const shownId = typeof rawId === 'string' && rawId.trim() !== '' ? rawId.trim() : undefined;
      const at = `provides.${section}[${i}]${shownId ? ` (${escapeForDisplay(shownId)})` : ''}`;
      const fail = (message: string) => check.failAt(at, message);
      if (!isObject(item)) return fail('must be a mapping with an id');
      if (shownId === undefined) fail(rawId === undefined || rawId === null || rawId === '' ? 'has no id' : 'its id must be a non-empty string');
      const rawVersion = item.version;
      let pinned: string | undefined;
      if (rawVersion === undefined || rawVersion === null || rawVersion === '') {
        if (kind !== 'step') fail(`must be pinned to a version: the spec-kit CLI installs a bundle's ${section} only at a pinned SemVer version`);
      } else if (typeof rawVersion !== 'string') {
        fail(`its version must be a SemVer string, not ${typeof rawVersion === 'number' ? `the number ${rawVersion} (quote it)` : typeof rawVersion}`);
      } else if (!isBundleSemver(rawVersion.trim())) {
        fail(`its version "${rawVersion}" is not SemVer (X.Y.Z, an optional leading v)`);
      } else pinned = rawVersion.trim();
      if (kind === 'preset') {
        const priority = item.priority;
        const integer = (typeof priority === 'number' && Number.isInteger(priority)) || (typeof priority === 'string' && /^\s*[+-]?\d+\s*$/.test(priority));
        if (priority === undefined || priority === null) fail('a preset must declare an integer priority');
        else if (!integer) fail(`its priority must be an integer, not ${JSON.stringify(priority)}`);
        const strategy = typeof item.strategy === 'string' ? item.strategy.trim() : item.strategy;
        if (typeof strategy !== 'string' || !STRATEGIES.has(strategy)) fail(`its strategy ${strategy === undefined || strategy === null || strategy === '' ? 'is missing' : JSON.stringify(strategy)}; a preset's strategy must be replace, prepend, append or wrap`);
      }
      if (shownId !== undefined) components.push({ kind, id: shownId, ...(pinned !== undefined ? { version: pinned } : {}) });
    });
  }
  if (!info || id === undefined || version === undefined || !valid) return null;
  const contents = [
    ...components.map((c) => ({ what: c.kind, name: c.version ? `${c.id}@${c.version}` : c.id })),
    ...(integrationId ? [{ what: 'integration', name: integrationId }] : []),
  ];
  const meta = metadata(info, root, id, version, speckit !== undefined ? { speckit_version: speckit } : undefined, counts, contents);
  delete meta.category;
  delete meta.effect;
  return { ...meta, ...(fields.role ? { role: fields.role } : {}), ...(tags.length ? { tags } : {}), components };
}

/**
 * An `integration.yml` (upstream `integrations/catalog.py` `IntegrationDescriptor._validate`, and
 * integrations/CONTRIBUTING.md): schema_version "1.0"; integration id (`^[a-z0-9-]+$`), name, version (PEP 440),
 * description, and, as the catalog needs them, author, repository and license; requires.speckit_version; provides
 * at least one command (name and a relative file) or script (a relative path). Inside an archive, each command's
 * file must be in it; a bare integration.yml has no files to check.
 */
function checkIntegration(root: Json, check: Checker): CatalogMetadata | null {
  for (const key of ['integration', 'requires', 'provides']) if (!(key in root)) check.fail(`/${key}`, 'is required');
  const info = check.object(root, 'integration', '/integration');
  const id = check.id(info, '/integration', ID, 'integration');
  const version = check.version(info, '/integration/version');
  for (const key of ['author', 'repository', 'license']) check.string(info ?? {}, key, `/integration/${key}`, info !== undefined);
  const requires = checkRequires(root, check, true);
  const provides = check.object(root, 'provides', '/provides') ?? {};
  const commands = check.list(provides, 'commands', '/provides/commands');
  const scripts = check.list(provides, 'scripts', '/provides/scripts');
  if (commands.length + scripts.length === 0) check.fail('/provides', 'must provide at least one command or script');
  const names = new Set<string>();
  commands.forEach((command, i) => {
    const at = `/provides/commands/${i}`;
    if (!isObject(command)) return check.fail(at, 'must be a mapping with a name and a file');
    const name = check.string(command, 'name', `${at}/name`, true);
    if (name !== undefined) check.unique(names, name, `${at}/name`);
    check.file(command, 'file', `${at}/file`);
  });
  scripts.forEach((script, i) => {
    if (typeof script !== 'string' || script.trim() === '') return check.fail(`/provides/scripts/${i}`, 'must be a non-empty string (a relative path)');
    // Scripts are named relative to the integration's own layout, which the descriptor does not pin down: only
    // their form is checked, as upstream does.
    const normalized = script.replaceAll('\\', '/');
    if (normalized.startsWith('/') || /^[A-Za-z]:/.test(normalized) || normalized.split('/').includes('..')) check.fail(`/provides/scripts/${i}`, `"${script}" must be a relative path without ".."`);
  });
  if (!id || !version || !info) return null;
  const contents = [
    ...commands.flatMap((c) => (isObject(c) && typeof c.name === 'string' ? [{ what: 'command', name: c.name }] : [])),
    ...scripts.flatMap((s) => (typeof s === 'string' ? [{ what: 'script', name: s }] : [])),
  ];
  return metadata(info, root, id, version, requires, { commands: commands.length, scripts: scripts.length }, contents);
}

/** A list of strings, when present (upstream `_parse_str_list`); [] when absent or wrong (with a violation). */
function stringList(parent: Json | undefined, key: string, at: string, check: Checker): string[] {
  const value = parent?.[key];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    check.fail(at, 'must be a list of strings');
    return [];
  }
  return value as string[];
}

/** What a package page lists of a manifest's commands, hooks, templates, scripts or steps, at most. */
const MAX_CONTENTS = 200;

function checkRequires(root: Json, check: Checker, required: boolean): CatalogMetadata['requires'] {
  const requires = check.object(root, 'requires', '/requires');
  if (!requires) return undefined;
  const speckit = check.string(requires, 'speckit_version', '/requires/speckit_version', required);
  if (speckit !== undefined && !isPep440Specifier(speckit)) check.fail('/requires/speckit_version', `"${speckit}" is not a PEP 440 version specifier`);
  const tools = check.list(requires, 'tools', '/requires/tools').flatMap((tool, i) => {
    const name = check.string(tool, 'name', `/requires/tools/${i}/name`, true);
    if (name === undefined || !isObject(tool)) return [];
    return [{ name, ...(typeof tool.version === 'string' ? { version: tool.version } : {}), ...(typeof tool.required === 'boolean' ? { required: tool.required } : {}) }];
  });
  const integrations = check.list(requires, 'integrations', '/requires/integrations').filter((i): i is string => typeof i === 'string');
  return {
    ...(speckit !== undefined ? { speckit_version: speckit } : {}),
    ...(tools.length ? { tools } : {}),
    ...(integrations.length ? { integrations } : {}),
  };
}

/** What the catalog shows: the manifest's own words, the optional ones only when they are strings. */
function metadata(
  info: Json,
  root: Json,
  id: string,
  version: string,
  requires: CatalogMetadata['requires'],
  provides: Record<string, number> | null,
  contents: NonNullable<CatalogMetadata['contents']>,
): CatalogMetadata {
  const text = (key: string) => (typeof info[key] === 'string' && info[key] !== '' ? { [key]: info[key] as string } : {});
  const tagSource = Array.isArray(info.tags) ? info.tags : Array.isArray(root.tags) ? root.tags : [];
  const tags = tagSource.filter((t): t is string => typeof t === 'string');
  return {
    id,
    version,
    name: typeof info.name === 'string' ? info.name : id,
    description: typeof info.description === 'string' ? info.description : '',
    ...text('author'),
    ...text('license'),
    ...text('category'),
    ...text('effect'),
    ...(tags.length ? { tags } : {}),
    ...(requires && Object.keys(requires).length ? { requires } : {}),
    ...(provides ? { provides } : {}),
    ...(contents.length ? { contents: contents.slice(0, MAX_CONTENTS) } : {}),
    ...Object.assign({}, ...LINKS.map(text)),
  };
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Collects violations with the manifest's path and a JSON pointer into it. */
class Checker {
  readonly violations: Violation[] = [];
  private readonly dir: string;

  constructor(private readonly facts: ManifestFacts) {
    const slash = facts.path.lastIndexOf('/');
    this.dir = slash < 0 ? '' : facts.path.slice(0, slash + 1);
  }

  fail(pointer: string, message: string): void {
    this.violations.push({ path: `${this.facts.path}${pointer ? `#${pointer}` : ''}`, message: escapeForDisplay(message) });
  }

  /** A violation at a place named in words (`provides.extensions[1] (acme-hello)`) rather than a JSON pointer. */
  failAt(place: string, message: string): void {
    this.violations.push({ path: `${this.facts.path}#${place}`, message: escapeForDisplay(message) });
  }

  object(parent: Json | undefined, key: string, at: string): Json | undefined {
    const value = parent?.[key];
    if (value === undefined || value === null) return undefined;
    if (!isObject(value)) {
      this.fail(at, 'must be a mapping');
      return undefined;
    }
    return value;
  }

  list(parent: unknown, key: string, at: string): unknown[] {
    const value = isObject(parent) ? parent[key] : undefined;
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.fail(at, 'must be a list');
      return [];
    }
    return value;
  }

  string(parent: unknown, key: string, at: string, required: boolean): string | undefined {
    const value = isObject(parent) ? parent[key] : undefined;
    if (value === undefined || value === null) {
      if (required) this.fail(at, 'is required');
      return undefined;
    }
    if (typeof value !== 'string' || value.trim() === '') {
      this.fail(at, typeof value === 'string' ? 'must not be empty' : `must be a string, not ${typeof value === 'number' ? `the number ${value} (quote it)` : typeof value}`);
      return undefined;
    }
    return value;
  }

  id(info: Json | undefined, at: string, pattern: RegExp, kind: CatalogKind): string | undefined {
    if (!info) return undefined;
    this.string(info, 'name', `${at}/name`, true);
    if (kind !== 'workflow') this.string(info, 'description', `${at}/description`, true);
    const id = this.string(info, 'id', `${at}/id`, true);
    if (id === undefined) return undefined;
    if (!pattern.test(id)) {
      this.fail(`${at}/id`, `"${id}" must match ${pattern.source}`);
      return undefined;
    }
    const reserved = RESERVED_IDS[kind];
    if (reserved.includes(id)) {
      this.fail(`${at}/id`, `"${id}" is reserved: the spec-kit CLI resolves it locally and never asks a catalog`);
      return undefined;
    }
    return id;
  }

  version(info: Json | undefined, at: string): string | undefined {
    if (!info) return undefined;
    const version = this.string(info, 'version', at, true);
    if (version !== undefined && !isPep440Version(version)) {
      this.fail(at, `"${version}" is not a PEP 440 version`);
      return undefined;
    }
    return version;
  }

  name(item: unknown, at: string, seen: Set<string>): void {
    const name = this.string(item, 'name', `${at}/name`, true);
    if (name === undefined) return;
    if (!ID.test(name)) this.fail(`${at}/name`, `"${name}" must match ${ID.source}`);
    this.unique(seen, name, `${at}/name`);
  }

  unique(seen: Set<string>, value: string, at: string, message = `"${value}" is listed twice`): void {
    if (seen.has(value)) this.fail(at, message);
    seen.add(value);
  }

  /** A relative, portable path that names a file of the package (when the package has files: not a bare manifest). */
  file(item: unknown, key: string, at: string): void {
    const file = this.string(item, key, at, true);
    if (file === undefined) return;
    this.relativePath(file, at);
  }

  relativePath(file: string, at: string): void {
    const normalized = file.replaceAll('\\', '/').replace(/^(\.\/)+/, '');
    if (normalized.startsWith('/') || /^[A-Za-z]:/.test(normalized) || normalized.split('/').includes('..')) {
      this.fail(at, `"${file}" must be a relative path inside the package`);
    } else if (this.facts.files && !this.facts.files.has(this.dir + normalized)) {
      this.fail(at, `"${file}" is not in the package`);
    }
  }
}
