import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'rs-unit-config-'));
const file = (content: string): string => {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, content);
  return path;
};
const noFile = { CONFIG_PATH: join(dir, 'missing.yaml') };

describe('loadConfig', () => {
  it('has defaults that make a laptop start useful', () => {
    expect(loadConfig(noFile)).toEqual({
      configFile: null,
      port: 8000,
      host: '0.0.0.0',
      storageBackend: 'filesystem',
      storagePath: './data',
      s3: null,
      indexRefreshSeconds: 2,
      downloadRedirectSeconds: null,
      maxPackages: 0,
      maxReleases: 5,
      maxVersionsPerPackage: 10,
      approveUploads: true,
      authToken: null,
      tokensFile: null,
      readAccess: 'public',
      authFailuresPerMinute: 10,
      maxUploadBytes: 512 * 1024 * 1024,
      publicUrl: null,
      trustProxy: 'loopback, linklocal, uniquelocal',
      maxConnections: 4096,
      maxConnectionsPerAddress: 256,
      headersTimeoutSeconds: 30,
      idleTimeoutSeconds: 120,
      logLevel: 'info',
      validateResponses: true,
      workers: 1,
      sources: [],
    });
  });

  it('reads every key from the file and lets the environment override it', () => {
    const path = file(
      'port: 9000\nhost: 127.0.0.1\nstorage_path: /srv/data\nmax_packages: 0\nmax_versions_per_package: 3\nauth_token: file-token-0123456789\nmax_upload_bytes: 100MiB\npublic_url: https://r.example/\ntrust_proxy: false\nlog_level: debug\n',
    );
    expect(loadConfig({ CONFIG_PATH: path })).toMatchObject({
      configFile: path,
      port: 9000,
      host: '127.0.0.1',
      storagePath: '/srv/data',
      maxPackages: 0,
      maxVersionsPerPackage: 3,
      authToken: 'file-token-0123456789',
      maxUploadBytes: 100 * 1024 * 1024,
      publicUrl: 'https://r.example',
      trustProxy: false,
      logLevel: 'debug',
    });
    expect(loadConfig({ CONFIG_PATH: path, PORT: '9100', MAX_PACKAGES: '4', MAX_VERSIONS_PER_PACKAGE: '0', TRUST_PROXY: 'loopback, 10.0.0.0/8', LOG_LEVEL: 'WARN' })).toMatchObject({
      port: 9100,
      maxPackages: 4,
      maxVersionsPerPackage: 0,
      trustProxy: 'loopback, 10.0.0.0/8',
      logLevel: 'warn',
    });
  });

  it('takes the s3 backend with its settings, normalising the key prefix, and needs a bucket', () => {
    expect(loadConfig({ ...noFile, STORAGE_BACKEND: 's3', S3_BUCKET: 'packages', S3_PREFIX: '/release-server', S3_ENDPOINT: 'http://127.0.0.1:7480/', S3_FORCE_PATH_STYLE: 'true' })).toMatchObject({
      storageBackend: 's3',
      s3: { bucket: 'packages', prefix: 'release-server/', endpoint: 'http://127.0.0.1:7480', region: 'us-east-1', forcePathStyle: true },
    });
    expect(loadConfig({ ...noFile, STORAGE_BACKEND: 's3', S3_BUCKET: 'b' }).s3).toEqual({ bucket: 'b', prefix: '', endpoint: null, region: 'us-east-1', forcePathStyle: false });
    expect(() => loadConfig({ ...noFile, STORAGE_BACKEND: 's3' })).toThrow('STORAGE_BACKEND=s3 needs a bucket: set S3_BUCKET (s3_bucket)');
    expect(() => loadConfig({ ...noFile, STORAGE_BACKEND: 'ftp' })).toThrow(/^STORAGE_BACKEND="ftp" must be filesystem or s3/);
    expect(loadConfig({ ...noFile, STORAGE_BACKEND: 's3', S3_BUCKET: 'b', DOWNLOAD_REDIRECT: 'true' }).downloadRedirectSeconds).toBe(900);
    expect(loadConfig({ ...noFile, STORAGE_BACKEND: 's3', S3_BUCKET: 'b', DOWNLOAD_REDIRECT: 'true', DOWNLOAD_REDIRECT_EXPIRY_SECONDS: '60' }).downloadRedirectSeconds).toBe(60);
    expect(() => loadConfig({ ...noFile, DOWNLOAD_REDIRECT: 'true' })).toThrow('DOWNLOAD_REDIRECT=true needs STORAGE_BACKEND=s3');
    // Workers share a filesystem store as they share a bucket.
    expect(loadConfig({ ...noFile, WORKERS: '2' })).toMatchObject({ storageBackend: 'filesystem', workers: 2 });
    expect(() => loadConfig({ ...noFile, STORAGE_BACKEND: 's3', S3_BUCKET: 'b', S3_ENDPOINT: 'not a url' })).toThrow(/^S3_ENDPOINT="not a url" must be an http or https URL/);
  });

  it('treats an empty environment variable as unset', () => {
    expect(loadConfig({ ...noFile, PORT: '' }).port).toBe(8000);
  });

  it.each([
    [{ MAX_PACKAGES: 'abc' }, /^MAX_PACKAGES="abc" must be a whole number/],
    [{ MAX_PACKAGES: '-1' }, /^MAX_PACKAGES="-1"/],
    [{ MAX_VERSIONS_PER_PACKAGE: 'all' }, /^MAX_VERSIONS_PER_PACKAGE="all" must be a whole number/],
    [{ MAX_UPLOAD_BYTES: '0' }, /^MAX_UPLOAD_BYTES="0" must be a positive number of bytes/],
    [{ MAX_UPLOAD_BYTES: '10 parsecs' }, /^MAX_UPLOAD_BYTES="10 parsecs"/],
    [{ PORT: '1.5' }, /^PORT="1.5"/],
    [{ TRUST_PROXY: 'maybe?' }, /^TRUST_PROXY="maybe\?"/],
    [{ TRUST_PROXY: 'maybe' }, /^TRUST_PROXY="maybe" must be true, false, a hop count, or a comma-separated list/],
    [{ TRUST_PROXY: '10.0.0.0/33' }, /^TRUST_PROXY="10\.0\.0\.0\/33"/],
    [{ PUBLIC_URL: 'ftp://x.example' }, /^PUBLIC_URL="ftp:\/\/x.example" must be an absolute http\(s\) URL/],
    [{ PUBLIC_URL: 'https://x.example/?a=1' }, /must not have a query/],
  ])('refuses %j', (env, message) => {
    expect(() => loadConfig({ ...noFile, ...env })).toThrow(ConfigError);
    expect(() => loadConfig({ ...noFile, ...env })).toThrow(message);
  });

  it('refuses unknown keys, non-mappings and a token given twice', () => {
    expect(() => loadConfig({ CONFIG_PATH: file('prot: 1\n') })).toThrow(/unknown key "prot"/);
    expect(() => loadConfig({ CONFIG_PATH: file('- a\n- b\n') })).toThrow(/must hold a mapping/);
    const token = file('secret-from-file-0123\n');
    expect(loadConfig({ ...noFile, AUTH_TOKEN_FILE: token }).authToken).toBe('secret-from-file-0123');
    expect(() => loadConfig({ ...noFile, AUTH_TOKEN: 'short' })).toThrow(/AUTH_TOKEN=\(hidden\) is shorter than 16 characters/);
    expect(() => loadConfig({ ...noFile, AUTH_TOKEN_FILE: file('short\n') })).toThrow(/shorter than 16/);
    expect(() => loadConfig({ ...noFile, READ_ACCESS: 'private' })).toThrow(/READ_ACCESS="private" must be public or token/);
    expect(() => loadConfig({ ...noFile, AUTH_TOKEN_FILE: token, AUTH_TOKEN: 'also-a-token-0123456' })).toThrow(/keep one/);
    expect(() => loadConfig({ ...noFile, AUTH_TOKEN_FILE: file('  \n') })).toThrow(/is empty/);
  });

  it('accepts an empty file', () => {
    expect(loadConfig({ CONFIG_PATH: file('') }).port).toBe(8000);
  });

  it('returns a frozen object', () => {
    expect(Object.isFrozen(loadConfig(noFile))).toBe(true);
  });
});
