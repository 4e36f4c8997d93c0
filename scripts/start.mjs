#!/usr/bin/env node
// `npm start`: builds quietly (its output is shown only when it fails), then runs the server in this very process,
// so the signals npm passes on (SIGTERM, SIGINT) reach the server itself and it shuts down cleanly.
import { spawnSync } from 'node:child_process';

const build = spawnSync('npm', ['run', '-s', 'build'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
if (build.status !== 0) {
  process.stderr.write(`${build.stdout}${build.stderr}\nnpm start: the build failed (exit ${build.status ?? build.signal}); nothing was started\n`);
  process.exit(1);
}
await import('../dist/main.js');
