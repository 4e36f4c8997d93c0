import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RouteTable } from '../../src/http/routes.js';

interface Operation {
  operationId: string;
}

const contract = JSON.parse(readFileSync(new URL('../../dist/openapi.json', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, Operation>> };
const routes = new RouteTable<Operation>(contract);
const idOf = (method: string, path: string) => routes.matchAll(method, path)[0]?.operation.operationId ?? null;

describe('the contract\'s paths, compiled once', () => {
  it('finds every operation of the contract at its own path, with its parameters', () => {
    for (const [path, item] of Object.entries(contract.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        if (!['get', 'head', 'post', 'put', 'delete', 'patch'].includes(method)) continue;
        const concrete = path.replace(/\{(\w+)\}/g, (_, name: string) => `v-${name}`);
        const found = routes.matchAll(method.toUpperCase(), concrete)[0];
        expect(found?.operation.operationId, `${method} ${concrete}`).toBe(operation.operationId);
        for (const name of path.match(/\{(\w+)\}/g) ?? []) expect(found!.params[name.slice(1, -1)]).toBe(`v-${name.slice(1, -1)}`);
      }
    }
  });

  it('matches as Express does: any letter case, one trailing slash, HEAD as GET where the contract has no HEAD', () => {
    expect(idOf('GET', '/LATEST')).toBe('getLatestRelease');
    expect(idOf('GET', '/latest/')).toBe('getLatestRelease');
    expect(idOf('GET', '/latest//')).toBeNull();
    expect(idOf('HEAD', '/latest')).toBe('getLatestRelease');
    expect(idOf('HEAD', '/assets/a.zip')).toBe(contract.paths['/assets/{filename}']!.head!.operationId);
    expect(idOf('DELETE', '/Assets/a.zip/')).toBe('deleteAsset');
  });

  it('takes a parameter as one non-empty segment, percent-decoded (or as sent when it does not decode)', () => {
    expect(routes.matchAll('GET', '/assets/%D0%BF%D0%B0%D0%BA%D0%B5%D1%82.zip')[0]?.params).toEqual({ filename: 'пакет.zip' });
    expect(routes.matchAll('GET', '/assets/..%2fsecret')[0]?.params).toEqual({ filename: '../secret' });
    expect(routes.matchAll('GET', '/assets/%E0%A4%A')[0]?.params).toEqual({ filename: '%E0%A4%A' });
    expect(idOf('GET', '/assets/')).toBeNull();
    expect(idOf('GET', '/assets/a/b.zip')).toBeNull();
  });

  it('names no operation for a method or a path the contract does not have', () => {
    expect(idOf('POST', '/latest')).toBeNull();
    expect(idOf('GET', '/upload')).toBeNull();
    expect(idOf('GET', '/no/such/path')).toBeNull();
    expect(idOf('PUT', '/assets/a.zip')).toBeNull();
  });

  it('gives authorization every operation a path fits, whatever order a router would try them in', () => {
    const overlapping = new RouteTable<Operation>({
      paths: { '/a/{x}': { get: { operationId: 'anyA' } }, '/a/b': { get: { operationId: 'justB' } }, '/{y}/b': { get: { operationId: 'anyB' }, post: { operationId: 'postB' } } },
    });
    expect(overlapping.matchAll('GET', '/a/b').map((m) => m.operation.operationId)).toEqual(['justB', 'anyA', 'anyB']);
    expect(overlapping.matchAll('POST', '/a/b').map((m) => m.operation.operationId)).toEqual(['postB']);
    expect(overlapping.matchAll('GET', '/a/b')[0]?.operation.operationId).toBe('justB');
  });
});
