import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, it } from 'vitest';
import { ERROR_STATUS } from '../../src/errors.js';

/**
 * Users script against the error codes, and the README's Errors table is where they read
 * them: it must list exactly the codes of src/errors.ts, each with its status.
 */
const README = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');

function errorTable(): Array<{ status: number; code: string }> {
  const section = README.split(/^## /m).find((s) => s.startsWith('Errors\n'));
  if (section === undefined) throw new Error('README has no "## Errors" section');
  const rows: Array<{ status: number; code: string }> = [];
  for (const line of section.split('\n')) {
    const cells = /^\|\s*(\d{3})\s*\|([^|]*)\|/.exec(line);
    if (!cells) continue;
    for (const code of (cells[2] as string).matchAll(/`([a-z_]+)`/g))
      rows.push({ status: Number(cells[1]), code: code[1] as string });
  }
  return rows;
}

it('the README Errors table lists every code of ERROR_STATUS, with its status, and no other', () => {
  const table = errorTable();
  const expected = Object.entries(ERROR_STATUS)
    .map(([code, status]) => ({ status, code }))
    .sort((a, b) => a.code.localeCompare(b.code));
  expect([...table].sort((a, b) => a.code.localeCompare(b.code))).toEqual(expected);
});

it('the table is in status order, so a reader finds a status where it belongs', () => {
  const statuses = errorTable().map((r) => r.status);
  expect(statuses).toEqual([...statuses].sort((a, b) => a - b));
});
