import { describe, expect, it, vi } from 'vitest';

// A later express-openapi-validator without the file the route-lookup patch locates path-to-regexp from: the patch
// is to do nothing then (the library only slower), never stop the server from starting.
vi.mock('node:module', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:module')>();
  const createRequire: typeof original.createRequire = (from) => {
    const real = original.createRequire(from);
    const resolve = ((id: string, options?: { paths?: string[] }) => {
      if (id.includes('openapi.metadata')) throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
      return real.resolve(id, options);
    }) as NodeJS.RequireResolve;
    resolve.paths = real.resolve.paths;
    return Object.assign((id: string) => real(id), real, { resolve }) as NodeJS.Require;
  };
  return { ...original, default: { ...original, createRequire }, createRequire };
});

describe('the validator patches', () => {
  it('do nothing, without throwing, when the validator no longer has a module they patch', async () => {
    const { patchValidator } = await import('../../../src/http/validator-patches.js');
    expect(() => patchValidator()).not.toThrow();
  });
});
