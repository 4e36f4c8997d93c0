import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { catalogZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { bundleInstall, catalogAdd, integrationInfo, stepAdd } from '../helpers/speckit-catalog-client.js';
import { specifyInit } from '../helpers/specify-client.js';
import { speckitConfig } from '../helpers/speckit-config.js';
import { upload } from '../helpers/upload.js';
import { buildUpstreamFixture, startUpstreamCatalog } from '../helpers/upstream-catalog.js';
import { makeZip } from '../helpers/zip.js';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.stop();
});

it("runs the README's curl examples as written, each succeeding", async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const api = readme.slice(readme.indexOf('## API'));
  const block = /```sh\n([\s\S]*?)```/.exec(api)![1]!;
  expect(block).toContain('/upload');
  const dir = await mkdtemp(join(tmpdir(), 'rs-readme-'));
  await writeFile(join(dir, 'spec-kit-template-claude-sh-v0.2.0.zip'), await makeZip({ 'README.md': 'template' }));
  const script = [
    'set -euo pipefail',
    // every curl must get a 2xx: --fail-with-body turns any 4xx/5xx into a failing exit code
    'curl() { command curl --fail-with-body "$@"; }',
    block.replace(/^export RS=.*$/m, `export RS=${server.url} TOKEN=${TOKEN}`),
  ].join('\n');
  const { stdout } = await promisify(execFile)('bash', ['-c', script], { cwd: dir });
  expect(stdout).toContain('"name":"spec-kit-template-claude-sh-v0.2.0.zip"');
  expect(await readdir(dir)).toContain('spec-kit-template-claude-sh-v0.2.0.zip');
  // the last example deleted the package
  expect((await fetch(`${server.url}/assets/spec-kit-template-claude-sh-v0.2.0.zip`)).status).toBe(404);
});

it("runs the README's private-server commands as written", async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('Using a private server'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  const dir = await mkdtemp(join(tmpdir(), 'rs-private-'));
  const readToken = 'read-only-token-0123456789abc';
  const { createHash } = await import('node:crypto');
  await writeFile(join(dir, 'tokens.yaml'), `- name: reader\n  scopes: [read]\n  sha256: ${createHash('sha256').update(readToken).digest('hex')}\n`);
  const priv = await startServer({ env: { READ_ACCESS: 'token', TOKENS_FILE: join(dir, 'tokens.yaml') } });
  try {
    await upload(priv.url, 'spec-kit-template-claude-sh-v0.2.0.zip', await makeZip({ 'README.md': 'private template' }));
    // The specify line, by the test client that does what the fork's CLI does with GH_TOKEN.
    const specify = /^GH_TOKEN=\$READ_TOKEN specify init my-project --template-url \$RS(\/\S+) --ai (\S+) --script (\S+)$/m.exec(block)!;
    expect(specify).not.toBeNull();
    await expect(specifyInit(`${priv.url}${specify[1]}`, specify[2]!, specify[3]!)).rejects.toThrow(/401/);
    const result = await specifyInit(`${priv.url}${specify[1]}`, specify[2]!, specify[3]!, readToken);
    expect(result.asset).toBe('spec-kit-template-claude-sh-v0.2.0.zip');
    // The rest (auth.json and curl) runs in bash, with HOME in a temporary directory.
    const rest = block.split('\n').filter((line) => !line.startsWith('GH_TOKEN=')).join('\n');
    const { stdout } = await promisify(execFile)('bash', ['-c', `set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n${rest}`], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir, RS: priv.url, READ_TOKEN: readToken },
    });
    expect(JSON.parse(stdout)[0].name).toBe('spec-kit-template-claude-sh-v0.2.0.zip');
    const auth = JSON.parse(await readFile(join(dir, '.specify', 'auth.json'), 'utf8'));
    expect(auth.providers[0]).toMatchObject({ provider: 'azure-devops', auth: 'bearer', token_env: 'RELEASE_SERVER_TOKEN' });
  } finally {
    await priv.stop();
  }
});

it("runs the README's catalog commands as written, and installs with its specify lines", async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## spec-kit catalogs'), readme.indexOf('## Versions and retention'));
  const [publish, install] = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const dir = await mkdtemp(join(tmpdir(), 'rs-catalog-'));
  await writeFile(join(dir, 'acme-hello.zip'), await catalogZip('extension', { id: 'acme-hello' }));
  const script = ['set -euo pipefail', 'curl() { command curl --fail-with-body "$@"; }', publish!.replace(/^export RS=.*$/m, `export RS=${server.url} TOKEN=${TOKEN}`)].join('\n');
  const { stdout } = await promisify(execFile)('bash', ['-c', script], { cwd: dir });
  expect(stdout).toContain('"name":"extension-acme-hello-1.0.0.zip"');
  expect(stdout).toContain('"catalog_url":');
  expect(stdout).toContain('"versions":[{"version":"1.0.0"');

  await upload(server.url, 'p.zip', await catalogZip('preset', { id: 'acme-preset' }));
  await upload(server.url, 'w.zip', await catalogZip('workflow', { id: 'acme-flow' }));
  const lines = install!.trim().split('\n');
  expect(lines).toHaveLength(3);
  for (const line of lines) {
    const [, , path, kind, id] = /^(SPECKIT_\w+)=\$RS(\S+) specify (extension|preset|workflow) add (\S+)$/.exec(line)!;
    const project = await mkdtemp(join(tmpdir(), 'rs-project-'));
    const installed = await catalogAdd(`${server.url}${path}`, kind as 'extension', id!, project);
    expect(installed.entry.id).toBe(id);
  }
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
  const config = parse(yaml) as { catalogs: { url: string; install_allowed: boolean; priority: number }[] };
  expect(new URL(config.catalogs[0]!.url).pathname).toBe('/catalogs/extensions.json');
  expect(config.catalogs[0]).toMatchObject({ install_allowed: true, priority: 1 });
});

it("builds and publishes the README's first package of each kind as written, and each installs", async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Your first package of each kind'), readme.indexOf('## Versions and retention'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  const fresh = await startServer({ env: { MAX_PACKAGES: '0' } });
  try {
    const dir = await mkdtemp(join(tmpdir(), 'rs-first-'));
    const script = ['set -euo pipefail', 'curl() { command curl --fail-with-body "$@"; }', block.replace(/^export RS=.*$/m, `export RS=${fresh.url} TOKEN=${TOKEN}`)].join('\n');
    const { stdout } = await promisify(execFile)('bash', ['-c', script], { cwd: dir });
    const answers = stdout.trim().split('\n').map((line) => JSON.parse(line) as { name: string; kind: string });
    expect(answers.map((a) => [a.name, a.kind])).toEqual([
      ['extension-acme-hello-1.0.0.zip', 'extension'],
      ['preset-acme-preset-1.0.0.zip', 'preset'],
      ['workflow-acme-flow-1.0.0.zip', 'workflow'],
      ['step-acme-lint-1.0.0.zip', 'step'],
      ['integration-acme-agent-1.0.0.yml', 'integration'],
      ['bundle-acme-team-1.0.0.yml', 'bundle'],
      ['spec-kit-template-claude-sh-v1.0.0.zip', 'template'],
    ]);
    for (const [kind, id] of [['extension', 'acme-hello'], ['preset', 'acme-preset'], ['workflow', 'acme-flow']] as const) {
      const project = await mkdtemp(join(tmpdir(), 'rs-first-project-'));
      const installed = await catalogAdd(`${fresh.url}/catalogs/${kind}s.json`, kind, id, project);
      expect(installed.entry.id).toBe(id);
    }
    const step = await stepAdd(`${fresh.url}/catalogs/steps.json`, 'acme-lint', await mkdtemp(join(tmpdir(), 'rs-first-project-')));
    expect(step.stepYml).toMatchObject({ step: { type_key: 'acme-lint' } });
    expect(await integrationInfo(`${fresh.url}/catalogs/integrations.json`, 'acme-agent')).toMatchObject({ name: 'Acme Agent' });
    const catalogs = (section: string) => `${fresh.url}/catalogs/${section}.json`;
    const bundle = await bundleInstall('acme-team', await mkdtemp(join(tmpdir(), 'rs-first-project-')), {
      sources: catalogs('bundles'),
      stacks: { extension: catalogs('extensions'), preset: catalogs('presets'), workflow: catalogs('workflows'), step: catalogs('steps') },
    });
    expect(bundle.components.map((c) => `${c.kind} ${c.id} ${c.version ?? ''}`.trim())).toEqual(['extensions acme-hello 1.0.0', 'presets acme-preset 1.0.0', 'steps acme-lint', 'workflows acme-flow 1.0.0']);
    const init = await specifyInit(`${fresh.url}/latest`, 'claude', 'sh');
    expect(init.asset).toBe('spec-kit-template-claude-sh-v1.0.0.zip');
  } finally {
    await fresh.stop();
  }
});

it("runs the README's snapshot and set-up commands as written, and the CLI configuration they write points at the snapshot", async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const snapshots = blocks.find((b) => b.includes('"$RS/catalogs/snapshots"'))!;
  const setup = blocks.find((b) => b.includes('setup?format='))!;
  const fresh = await startServer({ env: { MAX_PACKAGES: '0' } });
  try {
    await upload(fresh.url, 'e.zip', await catalogZip('extension', { id: 'acme-hello' }));
    const home = await mkdtemp(join(tmpdir(), 'rs-readme-home-'));
    const env = { ...process.env, HOME: home, RS: fresh.url, TOKEN };
    // Every curl fails on an error status: the README's own -f, or --fail-with-body where it has none.
    const run = (block: string) => promisify(execFile)('bash', ['-c', ['set -euo pipefail', block.includes('curl -f') ? '' : 'curl() { command curl --fail-with-body "$@"; }', block].join('\n')], { env });
    const { stdout } = await run(snapshots);
    expect(stdout).toContain('"name":"2026-12"');
    expect(stdout).toContain('"acme-hello":"1.0.0"');
    const { stdout: lines } = await run(setup);
    expect(lines).toContain(`export SPECKIT_CATALOG_URL='${fresh.url}/catalogs/extensions.json'`);
    const config = await speckitConfig({ home, project: null, env: {} });
    expect(config.stacks.extension[0]).toMatchObject({ url: `${fresh.url}/catalogs/snapshots/2026-12/extensions.json`, installAllowed: true });
    expect(config.bundleSources.find((s) => s.id === 'community')?.url).toBe(`${fresh.url}/catalogs/snapshots/2026-12/bundles.json`);
  } finally {
    await fresh.stop();
  }
});

it("runs the README's curation commands as written: pending, approved, rejected", async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Curation'), readme.indexOf('### Your first package of each kind'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  const fresh = await startServer({ env: { APPROVE_UPLOADS: 'false', MAX_VERSIONS_PER_PACKAGE: '0' } });
  try {
    await upload(fresh.url, 'a.zip', await catalogZip('extension', { id: 'acme-hello', version: '1.0.0' }));
    await upload(fresh.url, 'b.zip', await catalogZip('extension', { id: 'acme-hello', version: '0.9.0' }));
    const env = { ...process.env, RS: fresh.url, TOKEN };
    const { stdout } = await promisify(execFile)('bash', ['-c', ['set -euo pipefail', 'curl() { command curl --fail-with-body "$@"; }', block].join('\n')], { env });
    expect(stdout).toContain('"acme-hello":{');
    expect(stdout).toContain('"state":"pending"');
    expect(stdout).toContain('"state":"rejected"');
    const catalog = await (await fetch(`${fresh.url}/catalogs/extensions.json`)).json();
    expect(catalog.extensions['acme-hello'].version).toBe('1.0.0');
    expect((await fetch(`${fresh.url}/assets/extension-acme-hello-0.9.0.zip`)).status).toBe(403);
  } finally {
    await fresh.stop();
  }
});

it("mirrors with the README's sources configuration and commands as written (catalog URLs pointed at a loopback upstream)", async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Mirroring public catalogs'), readme.indexOf('### Your first package of each kind'));
  const yamlBlock = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  const upstream = await startUpstreamCatalog();
  try {
    const fixture = await buildUpstreamFixture(upstream);
    const config = parse(yamlBlock) as { sources: { catalogs: Record<string, string> }[] };
    for (const kind of Object.keys(config.sources[0]!.catalogs)) config.sources[0]!.catalogs[kind] = fixture.catalogUrls[kind as 'extension'];
    const dir = await mkdtemp(join(tmpdir(), 'rs-readme-mirror-'));
    await writeFile(join(dir, 'config.yaml'), stringify(config));
    const fresh = await startServer({ env: { CONFIG_PATH: join(dir, 'config.yaml'), GH_CATALOG_TOKEN: 'a-catalog-token' } });
    try {
      const env = { ...process.env, RS: fresh.url, TOKEN };
      const run = () => promisify(execFile)('bash', ['-c', ['set -euo pipefail', 'curl() { command curl --fail-with-body "$@"; }', block].join('\n')], { env });
      await run();
      await expect.poll(async () => ((await (await fetch(`${fresh.url}/sources/community`)).json()) as { last: { finished_at: string | null } }).last.finished_at, { timeout: 20_000 }).not.toBeNull();
      const discovery = (await (await fetch(`${fresh.url}/discovery/extensions.json`)).json()) as { extensions: Record<string, unknown> };
      expect(Object.keys(discovery.extensions)).toContain('tag-archive');
      // The header the README configures reached the upstream, and never the log.
      const log = (await upstream.stats()).log;
      expect(log.some((r) => r.headers.authorization === 'Bearer a-catalog-token')).toBe(true);
      expect(fresh.stdout.join('\n')).not.toContain('a-catalog-token');
    } finally {
      await fresh.stop();
    }
  } finally {
    await upstream.stop();
  }
});

it("carries a snapshot across an air gap with the README's commands as written", async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Across an air gap'), readme.indexOf('### Your first package of each kind'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  const [exporting, importing] = block.split(/^# on the air-gapped one.*$/m);
  const connected = await startServer();
  const gapped = await startServer();
  try {
    await upload(connected.url, 'e.zip', await catalogZip('extension', { id: 'acme-hello' }));
    const made = await fetch(`${connected.url}/catalogs/snapshots`, { method: 'POST', body: '{"name":"2026-12"}', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });
    expect(made.status).toBe(201);
    const dir = await mkdtemp(join(tmpdir(), 'rs-readme-gap-'));
    const run = (script: string, base: string) => promisify(execFile)('bash', ['-c', `set -euo pipefail\n${script}`], { cwd: dir, env: { ...process.env, RS: base, TOKEN } });
    await run(exporting!, connected.url);
    const { stdout } = await run(importing!, gapped.url);
    expect(JSON.parse(stdout)).toEqual({ imported: ['extension-acme-hello-1.0.0.zip'], unchanged: [], snapshot: '2026-12' });
    expect(Object.keys(((await (await fetch(`${gapped.url}/catalogs/extensions.json`)).json()) as { extensions: object }).extensions)).toEqual(['acme-hello']);
  } finally {
    await connected.stop();
    await gapped.stop();
  }
});
