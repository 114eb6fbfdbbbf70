import { defineConfig } from 'vitest/config';

// Four projects: unit tests never open a port or touch Redis; integration tests start a real
// redis-server and a real upstream per file, so they run in forks with longer timeouts. Tests
// that need third-party programs besides redis-server run on their own, so `npm test` (unit and
// integration) needs only Node and redis-server: chart tests render helm/keygate with helm (or
// the helm-render stand-in), `npm run test:chart`; interop tests build a Go net/http upstream
// and run promtool, `npm run test:interop`. CI runs all four.
export default defineConfig({
  test: {
    // One file at a time: the latency and buffering measurements must not share 2 cores with other suites.
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          setupFiles: ['test/helpers/leak-check.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          testTimeout: 60_000,
          hookTimeout: 60_000,
          globalSetup: ['test/helpers/global-setup.ts'],
          // openapi-check: every admin API answer a file received must match the OpenAPI document.
          setupFiles: ['test/helpers/leak-check.ts', 'test/helpers/openapi-check.ts'],
        },
      },
      {
        test: {
          name: 'interop',
          include: ['test/interop/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          testTimeout: 120_000,
          hookTimeout: 120_000,
          globalSetup: ['test/helpers/global-setup.ts'],
          setupFiles: ['test/helpers/leak-check.ts'],
        },
      },
      {
        test: {
          name: 'chart',
          include: ['test/chart/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          testTimeout: 60_000,
          hookTimeout: 60_000,
          globalSetup: ['test/helpers/chart-global-setup.ts'],
          setupFiles: ['test/helpers/leak-check.ts'],
        },
      },
    ],
  },
});
