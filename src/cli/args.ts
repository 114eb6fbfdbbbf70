/** The command line's options, and the small helpers every command uses to read them. */

/** Bad usage: reported with the usage text, exit code 2. */
export class UsageError extends Error {}

export const OPTIONS = {
  config: { type: 'string' },
  // Remote mode (remote-target.ts): a running keygate's admin API instead of the store.
  url: { type: 'string' },
  'api-key': { type: 'string' },
  'api-key-file': { type: 'string' },
  'cli-config': { type: 'string' },
  role: { type: 'string' },
  description: { type: 'string' },
  'rate-limit': { type: 'string' },
  'expires-in': { type: 'string' },
  'expires-at': { type: 'string' },
  scopes: { type: 'string' },
  grace: { type: 'string' },
  expiring: { type: 'string' },
  file: { type: 'string', short: 'f' },
  'dry-run': { type: 'boolean' },
  prune: { type: 'boolean' },
  offline: { type: 'boolean' },
  // accounts create|update: `--filter KIND=EXPR`, once per kind (filter-options.ts).
  filter: { type: 'string', multiple: true },
  'clear-filters': { type: 'boolean' },
  disable: { type: 'boolean' },
  enable: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type Values = Partial<Record<keyof typeof OPTIONS, string | boolean | string[]>>;

export function str(value: string | boolean | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Exactly `count` positional arguments, or a usage error naming the expected form. */
export function need(args: string[], count: number, what: string): string[] {
  if (args.length !== count) throw new UsageError(`expected ${what}`);
  return args;
}
