import { createRequire } from 'node:module';

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
 *
 * Both patch the library's module objects, which its code reads at call time. When a version of the library no
 * longer has the module or the method, the patch does nothing and start-up is only slower, never different.
 */
export function trimValidatorStartup(): void {
  const require = createRequire(import.meta.url);
  const load = (path: string): Record<string, unknown> | null => {
    try {
      return require(path) as Record<string, unknown>;
    } catch {
      return null;
    }
  };
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
