import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { overwriteRace } from '../helpers/race.js';
import { startServer, type RunningServer } from '../helpers/server.js';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ env: { MAX_PACKAGES: '0' } });
});
afterAll(async () => {
  await server.stop();
});

describe('downloads during an overwrite', () => {
  it('every 200 carries the headers, ETag, length and bytes of one version (3 s and at least 10 overwrites, against 8 parallel downloads)', async () => {
    const result = await overwriteRace(server.url, 'spec-kit-template-claude-sh-v1.0.0.zip', { ms: 3000, parallel: 8 });
    console.info(`overwrite race: ${result.downloads} downloads, ${result.ok} consistent, ${result.mixed.length} mixed, ${result.overwrites} overwrites, other statuses ${JSON.stringify(result.other)}`);
    expect(result.overwrites).toBeGreaterThanOrEqual(10);
    expect(result.ok).toBeGreaterThan(20);
    expect(result.mixed.slice(0, 5)).toEqual([]);
    expect(result.other).toEqual({});
  });
});
