import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { onlyInternalRefs, patchValidator } from '../../../src/http/validator-patches.js';

// The validator's own framework module, and the ref-parser it resolves.
const require = createRequire(new URL('../../../node_modules/express-openapi-validator/dist/framework/index.js', import.meta.url));
type Framework = { loadSpec(spec: unknown, options?: { mode?: string }): Promise<unknown> };
const { OpenAPIFramework } = require('./index.js') as { OpenAPIFramework: new (args: object) => Framework };
const $RefParser = require('@apidevtools/json-schema-ref-parser') as { bundle(spec: unknown): Promise<unknown> };
const bundle = $RefParser.bundle.bind($RefParser);

const contract = async () => parse(await readFile(new URL('../../../contracts/openapi.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;

describe('the validator loads the contract without bundling it', () => {
  it('hands back what bundling the contract would, as a copy of its own', async () => {
    patchValidator();
    const spec = await contract();
    expect(onlyInternalRefs(spec)).toBe(true);
    // The bundler is not asked at all.
    $RefParser.bundle = () => Promise.reject(new Error('bundled'));
    let loaded: Record<string, unknown>;
    try {
      loaded = (await new OpenAPIFramework({}).loadSpec(spec)) as Record<string, unknown>;
    } finally {
      $RefParser.bundle = bundle;
    }
    expect(loaded).toEqual(await bundle(await contract()));
    expect(loaded).not.toBe(spec);
    (loaded.info as Record<string, unknown>).title = 'changed';
    expect((spec.info as Record<string, unknown>).title).not.toBe('changed');
  });

  it('leaves a document with any other reference to the library', async () => {
    patchValidator();
    expect(onlyInternalRefs({ paths: { '/a': { get: { responses: { 200: { $ref: 'other.yaml#/x' } } } } } })).toBe(false);
    expect(onlyInternalRefs({ a: [{ b: { $ref: 5 } }] })).toBe(false);
    expect(onlyInternalRefs({ properties: { $ref: { type: 'string' } } })).toBe(false);
    // The library resolves the file, and fails on one that is not there.
    const external = { openapi: '3.0.3', info: { title: 't', version: '1' }, paths: { '/a': { $ref: './no-such-file.yaml' } } };
    await expect(new OpenAPIFramework({}).loadSpec(external)).rejects.toThrow(/no-such-file/);
  });
});
