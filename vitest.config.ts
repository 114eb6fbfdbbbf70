import { defineConfig } from 'vitest/config';

// Two projects: unit tests never open a port or touch Redis; integration tests start a real
// redis-server and a real upstream per file, so they run in forks with longer timeouts.
export default defineConfig({
  test: {
    // One file at a time: the latency and RSS measurements must not share 2 cores with other suites.
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
    ],
  },
});
