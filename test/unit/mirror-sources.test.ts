import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { FailureGate, catalogTimeoutSeconds, credentialHosts, parseDuration, parseSources, resolveHeaders, SOURCE_DEFAULTS } from '../../src/mirror/sources.js';

const dir = mkdtempSync(join(tmpdir(), 'rs-unit-sources-'));
const file = (content: string): string => {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, content);
  return path;
};
const community = { name: 'community', catalogs: { extension: 'https://raw.githubusercontent.com/github/spec-kit/main/extensions/catalog.community.json' } };

describe('sources in the config file', () => {
  it('is an empty list by default, and a YAML list gives sources with the doc\'s limits as defaults', () => {
    expect(loadConfig({ CONFIG_PATH: join(dir, 'missing.yaml') }).sources).toEqual([]);
    const path = file(`
sources:
  - name: community
    catalogs:
      extension: https://raw.githubusercontent.com/github/spec-kit/main/extensions/catalog.community.json
      presets: https://raw.githubusercontent.com/github/spec-kit/main/presets/catalog.community.json
    headers:
      Authorization: {env: GH_CATALOG_TOKEN, prefix: "Bearer "}
    deny: ["evil-*"]
    sync_interval: 6h
  - name: internal
    catalogs: {step: "http://127.0.0.1:8080/steps.json"}
    max_file_bytes: 10MiB
    max_total_bytes: 1GiB
    concurrency: 2
    timeout_seconds: 30
    catalog_timeout_seconds: 5
    max_fails: 3
    fail_timeout: 1h30m
`);
    const config = loadConfig({ CONFIG_PATH: path, GH_CATALOG_TOKEN: 'ghp_secret' });
    expect(config.sources).toEqual([
      {
        name: 'community',
        catalogs: {
          extension: 'https://raw.githubusercontent.com/github/spec-kit/main/extensions/catalog.community.json',
          preset: 'https://raw.githubusercontent.com/github/spec-kit/main/presets/catalog.community.json',
        },
        headers: { Authorization: { env: 'GH_CATALOG_TOKEN', prefix: 'Bearer ' } },
        allow: ['*'],
        deny: ['evil-*'],
        syncIntervalSeconds: 6 * 3600,
        maxFileBytes: 50 * 1024 ** 2,
        maxTotalBytes: 2 * 1024 ** 3,
        concurrency: 4,
        timeoutSeconds: 60,
        catalogTimeoutSeconds: null,
        maxFails: 2,
        failTimeoutSeconds: 300,
        autoApprove: { ids: [], verified: false },
      },
      {
        name: 'internal',
        catalogs: { step: 'http://127.0.0.1:8080/steps.json' },
        headers: {},
        allow: ['*'],
        deny: [],
        syncIntervalSeconds: null,
        maxFileBytes: 10 * 1024 ** 2,
        maxTotalBytes: 1024 ** 3,
        concurrency: 2,
        timeoutSeconds: 30,
        catalogTimeoutSeconds: 5,
        maxFails: 3,
        failTimeoutSeconds: 5400,
        autoApprove: { ids: [], verified: false },
      },
    ]);
    // No secret is in the parsed config: only where to read it.
    expect(JSON.stringify(config)).not.toContain('ghp_secret');
    expect(resolveHeaders(config.sources[0]!, { GH_CATALOG_TOKEN: 'ghp_secret' })).toEqual({ Authorization: 'Bearer ghp_secret' });
    expect(credentialHosts(config.sources[0]!)).toEqual(['raw.githubusercontent.com']);
    expect(catalogTimeoutSeconds(config.sources[0]!, 'extension')).toBe(10);
    expect(catalogTimeoutSeconds(config.sources[0]!, 'workflow')).toBe(30);
    expect(catalogTimeoutSeconds(config.sources[1]!, 'step')).toBe(5);
    expect(SOURCE_DEFAULTS.maxFileBytes).toBe(50 * 1024 * 1024);
  });

  it('has no environment form: a SOURCES variable is not read', () => {
    expect(loadConfig({ CONFIG_PATH: join(dir, 'missing.yaml'), SOURCES: JSON.stringify([community]) }).sources).toEqual([]);
  });

  it('reads a header from a file each time it is resolved, so a rotated secret is used', () => {
    const secret = join(dir, 'token');
    writeFileSync(secret, 'first-token\n');
    const [source] = parseSources([{ ...community, headers: { 'X-Catalog-Token': { file: secret } } }], {});
    expect(resolveHeaders(source!, {})).toEqual({ 'X-Catalog-Token': 'first-token' });
    writeFileSync(secret, 'second-token\n');
    expect(resolveHeaders(source!, {})).toEqual({ 'X-Catalog-Token': 'second-token' });
  });

  it.each([
    [[{ catalogs: community.catalogs }], 'source #1: name is missing'],
    [[{ ...community, name: 'Community' }], 'source "Community": name "Community" must be a slug'],
    [[community, community], 'source "community": name is used by another source'],
    [[{ name: 'a' }], 'source "a": catalogs is missing'],
    [[{ name: 'a', catalogs: {} }], 'source "a": catalogs must name at least one kind'],
    [[{ name: 'a', catalogs: { template: 'https://x.example/c.json' } }], 'source "a": catalogs.template is not a catalog kind'],
    [[{ name: 'a', catalogs: { extension: 'http://catalogs.example/c.json' } }], 'source "a": catalogs.extension must be https (plain http only on loopback)'],
    [[{ name: 'a', catalogs: { extension: 'ftp://x.example/c.json' } }], 'source "a": catalogs.extension must be an https URL, not ftp'],
    [[{ name: 'a', catalogs: { extension: 'https://user:pw@x.example/c.json' } }], 'source "a": catalogs.extension must not carry credentials in the URL'],
    [[{ ...community, headers: { Authorization: 'Bearer ghp_x' } }], 'source "community": headers.Authorization must be {env: VARIABLE} or {file: /path}'],
    [[{ ...community, headers: { Authorization: { env: 'NOT_SET_ANYWHERE' } } }], 'source "community": headers.Authorization reads the environment variable NOT_SET_ANYWHERE, which is not set'],
    [[{ ...community, headers: { Authorization: { file: '/no/such/secret' } } }], 'source "community": headers.Authorization reads /no/such/secret, which cannot be read (ENOENT)'],
    [[{ ...community, headers: { Host: { env: 'PATH' } } }], 'source "community": headers.Host is set by the fetcher itself'],
    [[{ ...community, allow: ['[a-z]*'] }], 'source "community": allow "[a-z]*" is not an id glob'],
    [[{ ...community, deny: 'evil/*' }], 'source "community": deny "evil/*" is not an id glob'],
    [[{ ...community, sync_interval: '10s' }], 'source "community": sync_interval "10s" must be at least 60 s'],
    [[{ ...community, sync_interval: 'daily' }], 'source "community": sync_interval "daily" must be a duration'],
    [[{ ...community, max_file_bytes: '50 parsecs' }], 'source "community": max_file_bytes "50 parsecs" must be a positive number of bytes'],
    [[{ ...community, concurrency: 0 }], 'source "community": concurrency 0 must be a whole number from 1 to 64'],
    [[{ ...community, fail_timeout: 'soon' }], 'source "community": fail_timeout "soon" must be a duration'],
    [[{ ...community, schedule: '6h' }], 'source "community": unknown key "schedule"'],
    [{ name: 'a' }, 'must be a list of sources'],
  ])('refuses %j with one line naming the source and key', (raw, message) => {
    let thrown: Error | null = null;
    try {
      parseSources(raw, { PATH: '/bin' });
    } catch (err) {
      thrown = err as Error;
    }
    expect(thrown?.message).toContain(message);
    expect(thrown?.message).not.toContain('\n');
  });

  it('wraps the error in a ConfigError naming the file, without echoing the value', () => {
    const path = file('sources:\n  - name: community\n    catalogs: {extension: "http://catalogs.example/c.json"}\n    headers: {Authorization: {env: TOKEN}}\n');
    expect(() => loadConfig({ CONFIG_PATH: path, TOKEN: 'very-secret-value' })).toThrow(
      `sources in ${path}: source "community": catalogs.extension must be https (plain http only on loopback)`,
    );
  });

  it('takes sync_interval off, durations in any unit, and a bare number as seconds', () => {
    expect(parseSources([{ ...community, sync_interval: 'off' }], {})[0]!.syncIntervalSeconds).toBeNull();
    expect(parseDuration('1d')).toBe(86_400);
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration(120)).toBe(120);
    expect(() => parseDuration('1.5h')).toThrow('must be a duration');
  });
});

describe('FailureGate (max_fails, fail_timeout)', () => {
  it('sets a source aside after max_fails failures in a row, for fail_timeout, and a success clears the count', () => {
    let now = 1_000_000;
    const gate = new FailureGate({ maxFails: 2, failTimeoutSeconds: 300 }, () => now);
    gate.failed();
    expect(gate.available()).toBe(true);
    gate.succeeded();
    gate.failed();
    expect(gate.available()).toBe(true);
    gate.failed();
    expect(gate.available()).toBe(false);
    expect(gate.setAsideUntil()).toBe(1_000_000 + 300_000);
    now += 299_999;
    expect(gate.available()).toBe(false);
    now += 1;
    expect(gate.available()).toBe(true);
    expect(gate.setAsideUntil()).toBeNull();
  });
});

describe('auto_approve', () => {
  const base = { name: 'community', catalogs: { extension: 'https://example.com/c.json' } };
  it('takes id globs and verified, and refuses anything else, naming the source and key', () => {
    expect(parseSources([{ ...base, auto_approve: { ids: ['acme-*'], verified: true } }], {})[0]!.autoApprove).toEqual({ ids: ['acme-*'], verified: true });
    expect(parseSources([base], {})[0]!.autoApprove).toEqual({ ids: [], verified: false });
    expect(() => parseSources([{ ...base, auto_approve: { everything: true } }], {})).toThrow(/community.*auto_approve has an unknown key "everything"/);
    expect(() => parseSources([{ ...base, auto_approve: { verified: 'yes' } }], {})).toThrow(/auto_approve verified must be true or false/);
  });
});
