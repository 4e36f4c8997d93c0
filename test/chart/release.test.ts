import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const run = promisify(execFile);
const repo = new URL('../../', import.meta.url).pathname;

describe('scripts/release.sh', () => {
  it('packages the chart, contract and docs with checksums, versioned like package.json', async () => {
    const version = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')).version as string;
    const { stdout } = await run(join(repo, 'scripts/release.sh'), ['--version', `v${version}`], { cwd: repo });
    const out = join(repo, stdout.split('\n')[0]!);
    expect(out.endsWith(`release/${version}`)).toBe(true);
    expect((await readdir(out)).sort()).toEqual(
      ['SHA256SUMS', 'image.txt', `release-server-${version}.tgz`, `release-server-api-docs-${version}.html`, `release-server-openapi-${version}.yaml`].sort(),
    );
    await run('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out });
    const helm = (await run(join(repo, 'scripts/fetch-helm.sh'))).stdout.trim();
    const chart = parseYaml((await run(helm, ['show', 'chart', join(out, `release-server-${version}.tgz`)])).stdout);
    expect(chart).toMatchObject({ name: 'release-server', version, appVersion: version });
    expect((await readFile(join(out, 'image.txt'), 'utf8')).trim()).toBe(`ghcr.io/release-server/release-server:${version}`);
  }, 120_000);

  it('refuses a version that does not match package.json', async () => {
    await expect(run(join(repo, 'scripts/release.sh'), ['--version', '99.0.0'], { cwd: repo })).rejects.toThrow(/must equal package.json/);
  });
});

describe('release workflow', () => {
  it('runs only scripts that exist, on v* tags', async () => {
    const workflow = parseYaml(await readFile(join(repo, '.github/workflows/release.yml'), 'utf8'));
    expect(workflow.on.push.tags).toEqual(['v*']);
    const steps = Object.values(workflow.jobs as Record<string, { steps: { run?: string }[] }>).flatMap((job) => job.steps);
    const scripts = new Set(steps.flatMap((s) => [...(s.run ?? '').matchAll(/(scripts\/[\w.-]+\.sh|\.ci\/run)/g)].map((m) => m[1]!)));
    expect([...scripts].sort()).toEqual(['.ci/run', 'scripts/build.sh', 'scripts/fetch-helm.sh', 'scripts/release.sh']);
    for (const script of scripts) await expect(readFile(join(repo, script))).resolves.toBeDefined();
  });
});
