import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogZip } from '../helpers/packages.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { upload } from '../helpers/upload.js';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ env: { MAX_PACKAGES: '0' } });
});
afterAll(async () => {
  await server.stop();
});

/** The value of one sample, e.g. `release_server_uploads_total{kind="extension"}`; 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('GET /metrics', () => {
  it('counts requests by operationId and status, bytes, uploads and downloads by kind, and storage operations by backend', async () => {
    const secretName = 'private-customer-name-v1.0.0.zip';
    await upload(server.url, secretName, 'template');
    await upload(server.url, 'e.zip', await catalogZip('extension', { id: 'metered' }));
    await (await fetch(`${server.url}/assets/${secretName}`)).arrayBuffer();
    await (await fetch(`${server.url}/assets/extension-metered-1.0.0.zip`)).arrayBuffer();
    await (await fetch(`${server.url}/assets/extension-metered-1.0.0.zip`)).arrayBuffer();
    await fetch(`${server.url}/assets/no-such-package.zip`);
    await fetch(`${server.url}/catalogs/extensions.json`);
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(sample(text, 'release_server_http_requests_total{operation="uploadPackage",status="201"}')).toBe(2);
    expect(sample(text, 'release_server_http_requests_total{operation="downloadAsset",status="200"}')).toBe(3);
    expect(sample(text, 'release_server_http_requests_total{operation="downloadAsset",status="404"}')).toBe(1);
    expect(sample(text, 'release_server_http_requests_total{operation="getExtensionCatalog",status="200"}')).toBe(1);
    expect(sample(text, 'release_server_uploads_total{kind="template"}')).toBe(1);
    expect(sample(text, 'release_server_uploads_total{kind="extension"}')).toBe(1);
    expect(sample(text, 'release_server_downloads_total{kind="extension"}')).toBe(2);
    expect(sample(text, 'release_server_downloads_total{kind="template"}')).toBe(1);
    expect(sample(text, 'release_server_http_request_bytes_total{operation="uploadPackage"}')).toBeGreaterThan(0);
    expect(sample(text, 'release_server_http_response_bytes_total{operation="downloadAsset"}')).toBeGreaterThan(0);
    expect(sample(text, 'release_server_http_request_duration_seconds_count{operation="downloadAsset"}')).toBe(4);
    expect(sample(text, 'release_server_storage_operation_duration_seconds_count{operation="publish",backend="filesystem"}')).toBe(2);
    expect(sample(text, 'release_server_storage_errors_total{operation="read",backend="filesystem"}')).toBe(0);
    expect(sample(text, 'release_server_index_packages')).toBe(2);
    expect(sample(text, 'release_server_index_refresh_lag_seconds')).toBe(0);
    expect(text).toContain('process_resident_memory_bytes');
    // Bounded labels: nothing a client chose, and no secret.
    expect(text).not.toContain('private-customer-name');
    expect(text).not.toContain('no-such-package');
    expect(text).not.toContain(TOKEN);
    const labels = new Set([...text.matchAll(/(\w+)="/g)].map((m) => m[1]));
    for (const label of labels) expect(['operation', 'status', 'kind', 'backend', 'le', 'version', 'major', 'minor', 'patch', 'type', 'space', 'kind']).toContain(label);
  });
});
