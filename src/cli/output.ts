import type { KeyView } from '../keys/key-service.js';

/** Output shared by the commands: JSON lines, aligned tables, stored times. */

export function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}

export function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const row of [header, ...rows]) {
    console.log(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
  }
}

export function keyTable(items: KeyView[]): void {
  table(KEY_COLUMNS, items.map(keyRow));
}

/** `keys list --expiring`: the same columns, after the account each key belongs to. */
export function expiringKeyTable(items: Array<KeyView & { account: string }>): void {
  table(
    ['ACCOUNT', ...KEY_COLUMNS],
    items.map((k) => [k.account, ...keyRow(k)]),
  );
}

const KEY_COLUMNS = [
  'ID',
  'STATUS',
  'DESCRIPTION',
  'SCOPES',
  'CREATED',
  'EXPIRES',
  'LAST USED',
  'REQUESTS',
];

function keyRow(k: KeyView): string[] {
  return [
    k.id,
    k.status === 'rotating' ? `rotating → ${k.replaced_by}` : k.status,
    k.description,
    k.scopes?.join(',') ?? '(role)',
    time(k.created_at),
    k.expires_at === 0 ? 'never' : time(k.expires_at),
    k.last_used_at === 0 ? 'never' : time(k.last_used_at),
    String(k.request_count),
  ];
}

/**
 * Renders a stored time. Never throws: a record may hold a value written before expiries were
 * bounded (or by hand), and one odd key must not stop `keys list` from showing the others.
 */
export function time(seconds: number): string {
  const date = new Date(seconds * 1000);
  // Outside ±8.64e15 ms a Date is invalid and toISOString throws; past year 9999 it is not RFC 3339.
  if (!Number.isFinite(date.getTime()) || date.getUTCFullYear() > 9999 || seconds < 0) {
    return `${String(seconds)} (Unix seconds)`;
  }
  return date.toISOString().replace('.000Z', 'Z');
}
