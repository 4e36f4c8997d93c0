import { execFile } from 'node:child_process';
import { chmod, chown, cp, mkdir, mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../helpers/server.js';
import { upload } from '../helpers/upload.js';
import { makeZip } from '../helpers/zip.js';

const repo = new URL('../../', import.meta.url).pathname;
const run = promisify(execFile);

interface RuntimeStage {
  env: Record<string, string>;
  copies: { from: string; to: string }[];
  npmRuns: string[];
  user: { uid: number; gid: number };
  cmd: string[];
}

/** The runtime stage of the Dockerfile, read the way Docker reads it (for the instructions it uses). */
async function runtimeStage(): Promise<RuntimeStage> {
  const text = (await readFile(join(repo, 'Dockerfile'), 'utf8')).replace(/\\\n\s*/g, ' ');
  const stage = text.slice(text.lastIndexOf('\nFROM '));
  const result: RuntimeStage = { env: {}, copies: [], npmRuns: [], user: { uid: -1, gid: -1 }, cmd: [] };
  for (const line of stage.split('\n').map((l) => l.trim())) {
    const [instruction, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (instruction === 'ENV') for (const [, k, v] of args.matchAll(/(\w+)=(\S+)/g)) result.env[k!] = v!;
    if (instruction === 'COPY') {
      const parts = rest.filter((p) => !p.startsWith('--'));
      const to = parts.pop()!;
      // --from=build copies the build stage's output, which is what `npm run build` leaves in this checkout.
      for (const from of parts) result.copies.push({ from: from.replace(/^\/app\//, ''), to });
    }
    if (instruction === 'RUN') for (const cmd of args.split('&&').map((c) => c.trim())) if (cmd.startsWith('npm ')) result.npmRuns.push(cmd);
    if (instruction === 'USER') {
      const [uid, gid] = args.split(':').map(Number);
      result.user = { uid: uid!, gid: gid ?? uid! };
    }
    if (instruction === 'CMD') result.cmd = JSON.parse(args) as string[];
  }
  return result;
}

let stage: RuntimeStage;
let server: RunningServer;
let app: string;

describe('the Dockerfile runtime stage, without Docker', () => {
  beforeAll(async () => {
    stage = await runtimeStage();
    const root = await mkdtemp(join(tmpdir(), 'rs-runtime-'));
    app = join(root, 'app');
    await mkdir(app);
    for (const { from, to } of stage.copies) {
      const target = to === './' ? join(app, from.split('/').pop()!) : join(app, to);
      await cp(join(repo, from), target, { recursive: true });
    }
    for (const cmd of stage.npmRuns) await run('bash', ['-c', cmd], { cwd: app, env: { ...process.env, NODE_ENV: 'production' } });
    // A read-only copy of the app, as under readOnlyRootFilesystem.
    await run('chmod', ['-R', 'a-w', app]);
    const data = join(root, 'data');
    await mkdir(data);
    const asRoot = process.getuid?.() === 0;
    if (asRoot) await chown(data, stage.user.uid, stage.user.gid);
    await chmod(root, 0o755);
    server = await startServer({
      storagePath: data,
      cwd: app,
      // Drop to the image's numeric user when we can; otherwise this process already is unprivileged.
      command: asRoot ? ['setpriv', `--reuid=${stage.user.uid}`, `--regid=${stage.user.gid}`, '--clear-groups', ...commandOf(stage.cmd)] : commandOf(stage.cmd),
      // The image's environment, but a free loopback port and a temporary /data, as a test needs.
      env: { ...withoutKeys(stage.env, ['PORT', 'HOST', 'STORAGE_PATH', 'CONFIG_PATH']), HOME: '/nonexistent', TMPDIR: '/tmp' },
    });
  }, 300_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('installs production dependencies only', async () => {
    expect(stage.npmRuns.some((c) => c.includes('npm ci --omit=dev'))).toBe(true);
    const modules = await readdir(join(app, 'node_modules'));
    expect(modules).toContain('express');
    for (const devOnly of ['vitest', 'typescript', '@redocly', 'openapi-typescript', 'playwright-core']) expect(modules).not.toContain(devOnly);
  });

  it('runs as a non-root numeric user with NODE_ENV=production and STORAGE_PATH=/data', () => {
    expect(stage.user.uid).toBeGreaterThan(0);
    expect(stage.env).toMatchObject({ NODE_ENV: 'production', STORAGE_PATH: '/data' });
    expect(stage.cmd).toEqual(['node', 'dist/main.js']);
  });

  it('is ready, and round-trips an upload and a download, from a read-only copy of the app', async () => {
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const zip = await makeZip({ 'README.md': 'runtime stage' });
    expect((await upload(server.url, 'spec-kit-template-claude-sh-v1.0.0.zip', zip)).status).toBe(201);
    const res = await fetch(`${server.url}/assets/spec-kit-template-claude-sh-v1.0.0.zip`);
    expect(Buffer.from(await res.arrayBuffer()).equals(zip)).toBe(true);
    expect((await fetch(`${server.url}/docs`)).status).toBe(200);
    expect((await fetch(`${server.url}/openapi.yaml`)).status).toBe(200);
    // The server's user really cannot write to the app's files.
    if (process.getuid?.() === 0) {
      await expect(run('setpriv', [`--reuid=${stage.user.uid}`, `--regid=${stage.user.gid}`, '--clear-groups', 'touch', join(app, 'dist', 'probe')])).rejects.toThrow();
    }
  });
});

/** CMD ["node", ...] runs the same Node as the tests. */
function commandOf(cmd: string[]): string[] {
  return cmd[0] === 'node' ? [process.execPath, ...cmd.slice(1)] : cmd;
}

function withoutKeys(env: Record<string, string>, keys: string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !keys.includes(key)));
}

describe('the Dockerfile build stage, without Docker', () => {
  it('builds from exactly the files it copies', async () => {
    const text = (await readFile(join(repo, 'Dockerfile'), 'utf8')).replace(/\\\n\s*/g, ' ');
    const stage = text.slice(text.indexOf('FROM '), text.indexOf('\nFROM ', text.indexOf('FROM ') + 1));
    const dir = await mkdtemp(join(tmpdir(), 'rs-build-stage-'));
    const dockerignore = (await readFile(join(repo, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const runs: string[] = [];
    for (const line of stage.split('\n').map((l) => l.trim())) {
      const [instruction, ...rest] = line.split(/\s+/);
      if (instruction === 'COPY') {
        const parts = rest.filter((p) => !p.startsWith('--'));
        const to = parts.pop()!;
        for (const from of parts) {
          expect(ignoredByDocker(from, dockerignore), `${from} is excluded by .dockerignore`).toBe(false);
          const target = to.endsWith('/') && parts.length > 1 ? join(dir, to, from.split('/').pop()!) : to === './' ? join(dir, from.split('/').pop()!) : join(dir, to);
          await cp(join(repo, from), target, { recursive: true });
        }
      }
      if (instruction === 'RUN') runs.push(rest.join(' '));
    }
    expect(runs).toContain('npm run build');
    // `npm ci` would install what the repository's node_modules holds; link it rather than download it again.
    const { symlink } = await import('node:fs/promises');
    await symlink(join(repo, 'node_modules'), join(dir, 'node_modules'));
    await run('npm', ['run', 'build'], { cwd: dir });
    for (const built of ['dist/main.js', 'dist/openapi.json', 'dist/docs/index.html', 'dist/web/packages.mustache']) {
      await expect(readFile(join(dir, built))).resolves.toBeDefined();
    }
  }, 120_000);
});

/** .dockerignore's rules as used here: a path, a `dir/*` glob, and `!path` exceptions; the last match wins. */
function ignoredByDocker(path: string, rules: string[]): boolean {
  let ignored = false;
  for (const rule of rules) {
    const negated = rule.startsWith('!');
    const pattern = negated ? rule.slice(1) : rule;
    const matches = pattern.endsWith('/*') ? path.startsWith(pattern.slice(0, -1)) : path === pattern || path.startsWith(`${pattern}/`);
    if (matches) ignored = !negated;
  }
  return ignored;
}
