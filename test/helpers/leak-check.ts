import { afterAll, expect } from 'vitest';
import { capturedLogs, leakedKeys } from './captured-logs.js';

// Runs after every test file (setupFiles): no captured log line anywhere in the suite may
// contain a key. A suite-wide check, so a new test cannot forget to make it.
afterAll(() => {
  const leaked = leakedKeys();
  expect(leaked, `keys found in ${capturedLogs.length} captured log chunks`).toEqual([]);
});
