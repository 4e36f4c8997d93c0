import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { authJson, catalogUrl, clientSetup, hostName, setupFile, SETUP_FORMATS, TOKEN_ENV, type ClientSetupInput } from '../../src/setup/client-setup.js';
import { authAttempts, bundleSources, catalogStack, CONFIG_FILE, ENV_VAR, loadAuthConfig, speckitConfig, STACK_KINDS, type StackKind } from '../helpers/speckit-config.js';

const SECTION: Record<StackKind | 'bundle', string> = { extension: 'extensions', preset: 'presets', workflow: 'workflows', step: 'steps', integration: 'integrations', bundle: 'bundles' };
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'client-setup-'));
  dirs.push(dir);
  return dir;
}

/** Writes every generated `*-catalogs.yml` (and auth.json) into `<dir>/.specify/`, as the page tells users to. */
async function install(input: ClientSetupInput, dir: string): Promise<void> {
  await mkdir(join(dir, '.specify'), { recursive: true });
  for (const file of clientSetup(input).files) if (file.format !== 'env') await writeFile(join(dir, '.specify', file.fileName), file.text, { mode: 0o600 });
}

/** What `source env` would export: each `export NAME='value'` line. */
function sourceEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^export ([A-Z_]+)='([^']*)'$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

const servers: { label: string; input: ClientSetupInput; expectedRoot: string }[] = [
  { label: 'public, live', input: { base: 'https://specs.acme.example', snapshot: null, privateServer: false, host: 'specs.acme.example' }, expectedRoot: 'https://specs.acme.example/catalogs' },
  { label: 'public, snapshot', input: { base: 'https://specs.acme.example/', snapshot: '2026-12', privateServer: false, host: 'specs.acme.example' }, expectedRoot: 'https://specs.acme.example/catalogs/snapshots/2026-12' },
  { label: 'private, live, path prefix and port', input: { base: 'https://Internal.Acme.example:8443/rs', snapshot: null, privateServer: true, host: 'Internal.Acme.example:8443' }, expectedRoot: 'https://Internal.Acme.example:8443/rs/catalogs' },
  { label: 'private, snapshot, loopback', input: { base: 'http://127.0.0.1:4010', snapshot: 'stable', privateServer: true, host: '127.0.0.1:4010' }, expectedRoot: 'http://127.0.0.1:4010/catalogs/snapshots/stable' },
];

describe('generated client set-up, read the way the CLI reads it', () => {
  it('builds catalog URLs live and per snapshot, and refuses what is not a snapshot name', () => {
    expect(catalogUrl('https://a.example/', 'step', null)).toBe('https://a.example/catalogs/steps.json');
    expect(catalogUrl('https://a.example', 'bundle', 'v1.2')).toBe('https://a.example/catalogs/snapshots/v1.2/bundles.json');
    expect(() => catalogUrl('https://a.example', 'bundle', '../x')).toThrow(RangeError);
    expect(() => clientSetup({ base: 'https://a.example', snapshot: 'a b', privateServer: false, host: 'a.example' })).toThrow(RangeError);
  });

  for (const { label, input, expectedRoot } of servers) {
    describe(label, () => {
      it('in ~/.specify, resolves every kind to exactly this server’s catalog, install allowed', async () => {
        const home = await tempDir();
        await install(input, home);
        for (const kind of STACK_KINDS) {
          const stack = await catalogStack(kind, { home, project: null, env: {} });
          expect(stack, kind).toEqual([expect.objectContaining({ url: `${expectedRoot}/${SECTION[kind]}.json`, installAllowed: true, origin: 'user', priority: 1 })]);
        }
      });

      it('in a project’s .specify, replaces a user file that points elsewhere', async () => {
        const home = await tempDir();
        const project = await tempDir();
        const elsewhere = { base: 'https://other.example', snapshot: null, privateServer: false, host: 'other.example' };
        await install(elsewhere, home);
        await install(input, project);
        for (const kind of STACK_KINDS) {
          const stack = await catalogStack(kind, { home, project, env: {} });
          expect(stack.map((s) => [s.url, s.installAllowed, s.origin]), kind).toEqual([[`${expectedRoot}/${SECTION[kind]}.json`, true, 'project']]);
        }
        const bundles = await bundleSources({ home, project, env: {} });
        expect(bundles.filter((s) => s.url.includes('other.example'))).toEqual([]);
      });

      it('overrides the built-in community bundle source with this server’s bundle catalog', async () => {
        const home = await tempDir();
        await install(input, home);
        const sources = await bundleSources({ home, project: null, env: {} });
        const bundleCatalog = `${expectedRoot}/bundles.json`;
        const community = sources.find((s) => s.id === 'community');
        expect(community).toEqual(expect.objectContaining({ url: bundleCatalog, scope: 'user', installAllowed: true }));
        // Nothing left that needs the internet: every source is this server or the CLI's offline, empty default.
        expect(sources.filter((s) => s.url !== bundleCatalog).map((s) => s.url)).toEqual(['builtin://default']);
        // Install stops at the first source by priority that holds the id: that is this server, install allowed.
        const firstRemote = sources.find((s) => s.url.startsWith('http'));
        expect(firstRemote).toEqual(expect.objectContaining({ url: bundleCatalog, installAllowed: true, id: 'release-server' }));
      });

      it('as env lines, points each kind that has a variable at this server, replacing any files', async () => {
        const home = await tempDir();
        await install({ base: 'https://other.example', snapshot: null, privateServer: false, host: 'other.example' }, home);
        const env = sourceEnv(setupFile(input, 'env')!.text);
        expect(Object.keys(env).sort()).toEqual(STACK_KINDS.map((k) => ENV_VAR[k]).sort());
        for (const kind of STACK_KINDS) {
          const stack = await catalogStack(kind, { home, project: null, env });
          expect(stack, kind).toEqual([expect.objectContaining({ url: `${expectedRoot}/${SECTION[kind]}.json`, installAllowed: true, origin: 'env' })]);
        }
      });

      it('writes auth.json only for a private server, sending the token to this host and no other', async () => {
        const setup = clientSetup(input);
        expect(setup.files.map((f) => f.format)).toEqual(SETUP_FORMATS.filter((f) => f !== 'auth.json' || input.privateServer));
        const home = await tempDir();
        await install(input, home);
        const env = { [TOKEN_ENV]: 's3cret' };
        const config = await speckitConfig({ home, project: null, env });
        const own = `${expectedRoot}/extensions.json`;
        const other = 'https://evil.example/catalogs/extensions.json';
        if (!input.privateServer) {
          expect(setup.byFormat['auth.json']).toBeUndefined();
          expect(config.auth(own)).toEqual([{}]);
          return;
        }
        expect(await loadAuthConfig({ home })).toHaveLength(1);
        expect(config.auth(own)[0]).toEqual({ Authorization: 'Bearer s3cret' });
        expect(config.auth(own.replace(/:\d+\//, ':1/'))[0]).toEqual({ Authorization: 'Bearer s3cret' }); // the port does not matter
        expect(config.auth(other)).toEqual([{}]);
        // No token in the environment: nothing is sent (the file itself holds no secret).
        expect((await speckitConfig({ home, project: null, env: {} })).auth(own)).toEqual([{}]);
        expect(setup.byFormat['auth.json']!.text).not.toContain('s3cret');
      });
    });
  }

  it('a project pointed at a snapshot replaces a user set-up pointed at the live catalogs, bundles included', async () => {
    const home = await tempDir();
    const project = await tempDir();
    const live = { base: 'https://specs.acme.example', snapshot: null, privateServer: false, host: 'specs.acme.example' };
    await install(live, home);
    await install({ ...live, snapshot: '2026-12' }, project);
    const frozen = 'https://specs.acme.example/catalogs/snapshots/2026-12';
    for (const kind of STACK_KINDS) expect((await catalogStack(kind, { home, project })).map((s) => s.url)).toEqual([`${frozen}/${SECTION[kind]}.json`]);
    const remote = (await bundleSources({ home, project })).filter((s) => s.url.startsWith('http'));
    expect(remote.map((s) => [s.id, s.url, s.scope])).toEqual([
      ['release-server', `${frozen}/bundles.json`, 'project'],
      ['community', `${frozen}/bundles.json`, 'project'],
    ]);
  });

  it('basic-pat sends Basic with an empty user name, to the host only', async () => {
    const home = await tempDir();
    await mkdir(join(home, '.specify'));
    await writeFile(join(home, '.specify', 'auth.json'), authJson('Specs.Acme.example:8443', 'basic-pat'));
    const entries = await loadAuthConfig({ home });
    expect(entries).toEqual([{ hosts: ['specs.acme.example'], provider: 'azure-devops', auth: 'basic-pat', tokenEnv: TOKEN_ENV }]);
    const env = { [TOKEN_ENV]: 's3cret' };
    expect(authAttempts('https://specs.acme.example/catalogs/presets.json', entries, env)).toEqual([{ Authorization: 'Basic OnMzY3JldA==' }, {}]);
    expect(Buffer.from('OnMzY3JldA==', 'base64').toString()).toBe(':s3cret');
    expect(authAttempts('https://x.specs.acme.example/', entries, env)).toEqual([{}]);
    expect(authAttempts('https://acme.example/', entries, env)).toEqual([{}]);
  });

  it('keeps IPv6 hosts unbracketed, as the CLI compares them', () => {
    expect(hostName('[::1]:4010')).toBe('::1');
    expect(authAttempts('http://[::1]:4010/x', [{ hosts: [hostName('http://[::1]:4010')], provider: 'github', auth: 'bearer', token: 't' }])[0]).toEqual({ Authorization: 'Bearer t' });
  });

  it('is deterministic, and each YAML file is a top-level catalogs list of the shape its reader takes', () => {
    const input = servers[3]!.input;
    expect(clientSetup(input)).toEqual(clientSetup({ ...input }));
    for (const kind of [...STACK_KINDS, 'bundle'] as const) {
      const text = setupFile(input, CONFIG_FILE[kind] as never)!.text;
      const data = parse(text) as { catalogs: Record<string, unknown>[] };
      expect(Object.keys(data).filter((k) => k !== 'schema_version')).toEqual(['catalogs']);
      for (const entry of data.catalogs) {
        if (kind === 'bundle') expect(Object.keys(entry).sort()).toEqual(['id', 'install_policy', 'priority', 'url']);
        else expect(entry).toEqual({ name: expect.any(String), url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:4010\//), priority: 1, install_allowed: true, description: expect.any(String) });
      }
      expect(text).toMatch(/~\/\.specify\//);
    }
  });
});

describe('the config reader itself (so the checks above can fail)', () => {
  it('falls back to the built-ins, and reads install_allowed as false when absent', async () => {
    const home = await tempDir();
    expect((await catalogStack('extension', { home, env: {} })).map((s) => [s.name, s.installAllowed])).toEqual([['default', true], ['community', false]]);
    expect((await bundleSources({ home })).map((s) => [s.id, s.url])).toEqual([['default', 'builtin://default'], ['community', 'builtin://community']]);
    await mkdir(join(home, '.specify'));
    await writeFile(join(home, '.specify', 'preset-catalogs.yml'), 'catalogs:\n  - url: https://a.example/p.json\n  - url: https://b.example/p.json\n    priority: 0\n    install_allowed: "yes"\n');
    expect((await catalogStack('preset', { home })).map((s) => [s.url, s.installAllowed, s.name])).toEqual([
      ['https://b.example/p.json', true, 'catalog-2'],
      ['https://a.example/p.json', false, 'catalog-1'],
    ]);
  });

  it('refuses plain http to a remote host, and an empty extension file; skips an empty workflow file', async () => {
    const home = await tempDir();
    await mkdir(join(home, '.specify'));
    await writeFile(join(home, '.specify', 'step-catalogs.yml'), 'catalogs:\n  - url: http://a.example/s.json\n');
    await expect(catalogStack('step', { home })).rejects.toThrow(/HTTPS/);
    await writeFile(join(home, '.specify', 'extension-catalogs.yml'), '');
    await expect(catalogStack('extension', { home })).rejects.toThrow(/no 'catalogs'/);
    await writeFile(join(home, '.specify', 'workflow-catalogs.yml'), 'catalogs: []\n');
    expect((await catalogStack('workflow', { home }))[0]!.origin).toBe('built-in');
  });
});
