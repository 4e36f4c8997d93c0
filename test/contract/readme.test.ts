import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
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
