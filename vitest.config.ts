import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      // Renders the Helm chart with a real helm binary (scripts/fetch-helm.sh) and validates every object.
      { test: { name: 'chart', include: ['test/chart/**/*.test.ts'], testTimeout: 60_000 } },
      {
        // Each file starts its own server processes from dist/; they talk HTTP to them over loopback.
        test: { name: 'contract', include: ['test/contract/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 },
      },
      {
        // Against a real S3 server (Ceph RGW from Debian) that scripts/s3-test-server.sh starts for the run.
        test: { name: 's3', include: ['test/s3/**/*.test.ts'], globalSetup: ['test/helpers/s3-server.ts'], testTimeout: 60_000, hookTimeout: 60_000 },
      },
    ],
  },
});
