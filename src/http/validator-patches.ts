import { createRequire } from 'node:module';
import { dirname } from 'node:path';

const require = createRequire(import.meta.url);

function load(path: string): Record<string, unknown> | null {
  try {
    return require(path) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/**
 * express-openapi-validator's own code, patched where a profile showed it spending time on work that changes nothing
 * it validates. Each patch replaces a method on the library's module objects, which its code reads at call time; when
 * a version of the library no longer has the module or the method, the patch does nothing and the library is only
 * slower, never different.
 */
export function patchValidator(): void {
  trimValidatorStartup();
  loadInternalSpecWithoutBundling();
  compileRoutesOnce();
}

/**
 * Two things express-openapi-validator does at every start that cost time and change nothing it validates, measured
 * with `node --cpu-prof` from spawn to the first `/readyz` 200 with 10,000 packages stored (~600 ms in all):
 *
 * - It builds an ajv validator of the OpenAPI 3 meta-schema also with `validateApiSpec: false`, and never calls it:
 *   ~100 ms of code generation, the largest single item. With the check off, the class is replaced by one that
 *   builds nothing (the contract is linted in CI with redocly, and a test boots the server on it).
 * - Its schema preprocessor looks up each `#/components/schemas/…` reference with `ajv.getSchema`, which compiles
 *   the whole schema only to hand back the object it was given (the preprocessor's own ajv, discarded afterwards;
 *   requests and responses are validated by validators compiled later, per operation): ~50–100 ms. Such a
 *   reference is looked up in the document instead, the same object either way; any other form of reference takes
 *   the library's own path.
 */
function trimValidatorStartup(): void {
  const metaSchema = load('express-openapi-validator/dist/framework/openapi.schema.validator.js');
  if (metaSchema && typeof metaSchema.OpenAPISchemaValidator === 'function') {
    metaSchema.OpenAPISchemaValidator = class NoMetaSchema {
      validate(): { errors: never[] } {
        return { errors: [] };
      }
    };
  }
  const preprocessor = load('express-openapi-validator/dist/middlewares/parsers/schema.preprocessor.js')?.SchemaPreprocessor as
    | { prototype: { resolveSchema?: (schema: unknown) => unknown; __trimmed?: boolean } }
    | undefined;
  const proto = preprocessor?.prototype;
  if (!proto || typeof proto.resolveSchema !== 'function' || proto.__trimmed) return;
  const original = proto.resolveSchema;
  const COMPONENT_SCHEMA = /^#\/components\/schemas\/([A-Za-z0-9._-]+)$/;
  proto.resolveSchema = function (this: { apiDoc?: { components?: { schemas?: Record<string, unknown> } }; resolvedSchemaCache?: Map<string, unknown> }, schema: unknown) {
    const ref = (schema as { $ref?: unknown } | null)?.$ref;
    const name = typeof ref === 'string' ? COMPONENT_SCHEMA.exec(ref)?.[1] : undefined;
    const found = name === undefined ? undefined : this.apiDoc?.components?.schemas?.[name];
    if (found === undefined) return original.call(this, schema);
    this.resolvedSchemaCache?.set(ref as string, found);
    return found;
  };
  proto.__trimmed = true;
}

/**
 * The validator hands the contract (an object) to json-schema-ref-parser's `bundle`, which gathers external
 * references into the document: ~70 ms at every start here (plus ~40 ms to load the parser), for a contract whose
 * every reference is internal (`#/…`), where bundling hands back a copy of the same document (a test compares the two
 * on ours). Such a document is copied instead (~1 ms); a file path, any other reference, or the `dereference` mode
 * takes the library's own path.
 */
function loadInternalSpecWithoutBundling(): void {
  const framework = load('express-openapi-validator/dist/framework/index.js')?.OpenAPIFramework as
    | { prototype: { loadSpec?: (spec: unknown, options?: { mode?: string }) => unknown; __unbundled?: boolean } }
    | undefined;
  const proto = framework?.prototype;
  if (!proto || typeof proto.loadSpec !== 'function' || proto.__unbundled) return;
  const original = proto.loadSpec;
  proto.loadSpec = function (this: unknown, spec: unknown, options?: { mode?: string }) {
    if (options?.mode !== 'dereference' && typeof spec === 'object' && spec !== null && onlyInternalRefs(spec)) {
      return Promise.resolve(JSON.parse(JSON.stringify(spec)) as unknown);
    }
    return original.call(this, spec, options);
  };
  proto.__unbundled = true;
}

/** True when every `$ref` in `value` is a string naming a place in the same document (`#/…`). */
export function onlyInternalRefs(value: unknown): boolean {
  if (Array.isArray(value)) return value.every(onlyInternalRefs);
  if (typeof value !== 'object' || value === null) return true;
  for (const [key, child] of Object.entries(value)) {
    if (key === '$ref' && !(typeof child === 'string' && child.startsWith('#/'))) return false;
    if (!onlyInternalRefs(child)) return false;
  }
  return true;
}

type PathToRegexp = (path: unknown, options?: Record<string, unknown>) => unknown;

/**
 * Per request, the validator's route lookup (middlewares/openapi.metadata.js) compiles a path-to-regexp for every
 * route of the contract until one matches: 17–20% of all CPU of a small request under `node --cpu-prof`. The
 * compiled form depends only on the route and two flags, so each is compiled once and handed back after. Only the
 * validator's form of call is remembered (a string route, options of `sensitive` and `strict` alone); its routes
 * come from the contract, so the map holds at most one entry per contract path and flag pair. The result is read,
 * never changed, by the caller (`regexp.exec`, `keys.map`): sharing it changes nothing.
 */
function compileRoutesOnce(): void {
  const path = pathToRegexpOfValidator();
  const module = path === null ? null : load(path);
  const original = module?.pathToRegexp as (PathToRegexp & { __once?: boolean }) | undefined;
  if (!module || typeof original !== 'function' || original.__once) return;
  const compiled = new Map<string, unknown>();
  const once: PathToRegexp & { __once?: boolean } = (path, options) => {
    const keys = options ? Object.keys(options) : [];
    if (typeof path !== 'string' || compiled.size >= 4096 || !keys.every((k) => k === 'sensitive' || k === 'strict')) {
      return original(path, options);
    }
    const key = `${options?.sensitive ? 's' : '-'}${options?.strict ? 't' : '-'}${path}`;
    let found = compiled.get(key);
    if (found === undefined) compiled.set(key, (found = original(path, options)));
    return found;
  };
  once.__once = true;
  module.pathToRegexp = once;
}

/**
 * The path-to-regexp the validator's code resolves (from its own folder, which may hold a copy of its own); null when
 * this version of the library has no such module, and the patch then does nothing.
 */
function pathToRegexpOfValidator(): string | null {
  try {
    const validatorDirectory = dirname(require.resolve('express-openapi-validator/dist/middlewares/openapi.metadata.js'));
    return require.resolve('path-to-regexp', { paths: [validatorDirectory] });
  } catch {
    return null;
  }
}
