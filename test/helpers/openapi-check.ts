import { basename } from 'node:path';
import { afterAll, expect } from 'vitest';
import { adminAnswers, checkAdminAnswer } from './openapi-answers.js';

/**
 * Runs after every integration file (setupFiles): each admin API answer the file's tests
 * received must be one the OpenAPI document describes (documented status, matching body,
 * required headers). Suite-wide, so a new admin test is checked without asking for it.
 */
// Files that exercise the admin API: here an empty record means the recording is unhooked,
// which would make this check pass vacuously.
const ADMIN_FILES = /^(admin-[a-z-]+|cli-api-parity)\.test\.ts$/;

afterAll((suite) => {
  const file = basename((suite as { filepath?: string }).filepath ?? '');
  if (ADMIN_FILES.test(file)) {
    expect(adminAnswers.length, `${file}: no admin answers were recorded`).toBeGreaterThan(0);
  }
  const problems = adminAnswers.flatMap(checkAdminAnswer);
  expect(problems, `admin answers that the OpenAPI document does not describe`).toEqual([]);
});
