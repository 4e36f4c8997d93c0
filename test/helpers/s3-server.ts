import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { applyEntry, checkpointProblem, emptyState, type JournalState } from '../../src/storage/journal.js';
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

/** An SDK client on the test S3 server (`inject('s3')`), for tests that look into buckets themselves. */
export function testS3Client(s3: Record<string, string>): S3Client {
  return new S3Client({
    endpoint: s3.S3_ENDPOINT,
    region: s3.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.AWS_SECRET_ACCESS_KEY! },
    // RGW refuses the SDK's default aws-chunked bodies (see src/storage/s3.ts).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/**
 * What a bucket's index says, read as a starting replica reads it: the newest checkpoint under `<prefix>checkpoints/`
 * (or the legacy `<prefix>index.json` when there is none), then every journal entry after it.
 */
export async function bucketIndex(client: S3Client, bucket: string, prefix: string): Promise<JournalState> {
  const keys = async (folder: string): Promise<string[]> => {
    const all: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}${folder}/`, ContinuationToken: token }));
      all.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return all.sort();
  };
  const text = async (key: string) => (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
  const state = emptyState();
  const newest = (await keys('checkpoints')).at(-1);
  if (newest) {
    const seq = Number(/(\d{12})\.json$/.exec(newest)![1]);
    const parsed = checkpointProblem(await text(newest), seq);
    if ('problem' in parsed) throw new Error(`${newest}: ${parsed.problem}`);
    const { checkpoint } = parsed;
    Object.assign(state, { seq, lastId: checkpoint.lastId, records: new Map(checkpoint.records.map((r) => [r.name, r])), invalid: checkpoint.invalidRecords ?? [], countBatches: checkpoint.countBatches ?? [], retired: checkpoint.retired ?? [] });
  }
  for (const key of await keys('journal')) {
    const entry = JSON.parse(await text(key));
    if (entry.seq > state.seq) applyEntry(state, entry);
  }
  return state;
}
