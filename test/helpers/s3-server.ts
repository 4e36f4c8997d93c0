import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

const script = new URL('../../scripts/s3-test-server.sh', import.meta.url).pathname;

declare module 'vitest' {
  export interface ProvidedContext {
    /** How to reach the throwaway S3 server: S3_ENDPOINT, S3_REGION, S3_FORCE_PATH_STYLE and AWS credentials. */
    s3: Record<string, string>;
  }
}

/**
 * vitest globalSetup of the s3 project: a real S3 server (Ceph RGW, scripts/s3-test-server.sh) for the whole run,
 * stopped at the end. Tests read its address with inject('s3') and make a bucket of their own.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'rs-rgw-'));
  const { stdout } = await promisify(execFile)('bash', [script, 'start', dir], { timeout: 240_000 });
  const env = Object.fromEntries(stdout.trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
  project.provide('s3', env);
  return async () => {
    await promisify(execFile)('bash', [script, 'stop', dir], { timeout: 60_000 });
  };
}
