import { open } from 'node:fs/promises';
import { KeygateError } from '../errors.js';
import { MAX_FILE_BYTES, parseAccountsYaml } from '../keys/accounts-file.js';
import type { ApplyChange } from '../keys/apply-accounts.js';
import type { KeyManagement } from '../keys/key-management.js';
import type { Actor } from '../keys/key-service.js';
import { str, UsageError, type Values } from './args.js';
import { printJson } from './output.js';

/** Runs a command on the configured store, or on a running keygate's admin API (remote mode). */
type Manage = (run: (keys: KeyManagement, actor: Actor) => Promise<number>) => Promise<number>;

/**
 * `keygate apply -f FILE [--dry-run] [--prune] [--json]`. The file is read and parsed before
 * the store is opened; KeyService.applyAccounts validates it whole before reading the store.
 * The diff goes to stdout (one line per change, or "no changes"), warnings to stderr. In remote
 * mode the parsed file goes to POST /_keygate/v1/apply, which runs the same KeyService code.
 */
export async function applyCommand(values: Values, manage: Manage): Promise<number> {
  const file = str(values.file);
  if (file === undefined)
    throw new UsageError('usage: keygate apply -f FILE [--dry-run] [--prune]');
  let source: string;
  try {
    source = await readAtMost(file, MAX_FILE_BYTES + 1);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new KeygateError('bad_request', `(file): cannot read ${file} (${code})`);
  }
  const desired = parseAccountsYaml(source);
  const dryRun = values['dry-run'] === true;
  return manage(async (keys, actor) => {
    const { changes, warnings } = await keys.applyAccounts(actor, desired, {
      dryRun,
      prune: values.prune === true,
    });
    for (const warning of warnings) console.error(`keygate: warning: ${warning}`);
    if (values.json) {
      printJson({ changes, ...(dryRun ? { dry_run: true } : {}) });
      return 0;
    }
    if (changes.length === 0) {
      console.log('no changes');
      return 0;
    }
    for (const change of changes) console.log(describeChange(change));
    const count = `${changes.length} change${changes.length === 1 ? '' : 's'}`;
    console.log(dryRun ? `${count} planned (dry run: nothing written)` : `${count} applied`);
    return 0;
  });
}

const SIGN: Readonly<Record<ApplyChange['action'], string>> = {
  'account.create': '+',
  'account.update': '~',
  'account.delete': '-',
  'key.import': '+',
  'key.update': '~',
  'key.revoke': '-',
};

function shown(value: unknown): string {
  return value === null ? '(role)' : Array.isArray(value) ? value.join(',') : JSON.stringify(value);
}

/** `~ key ci/AbC…: expires_at 0 → 1798761600`; creations list what they set. */
export function describeChange(change: ApplyChange): string {
  const subject =
    change.key_id === undefined
      ? `account ${change.account}`
      : `key ${change.account}/${change.key_id}`;
  const sign = SIGN[change.action];
  if (change.action === 'account.delete') return `${sign} ${subject} (deleted with all its keys)`;
  if (change.action === 'key.revoke') return `${sign} ${subject} (revoked)`;
  const fields = (change.diff ?? []).map((d) =>
    sign === '+' ? `${d.field} ${shown(d.to)}` : `${d.field} ${shown(d.from)} → ${shown(d.to)}`,
  );
  return `${sign} ${subject}${fields.length > 0 ? `: ${fields.join(', ')}` : ''}`;
}

/**
 * Reads at most `limit` bytes: `-f /dev/zero` or a huge file must end in the size error, not in
 * reading forever. One byte over the bound is enough for parseAccountsYaml to refuse it.
 */
async function readAtMost(path: string, limit: number): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(limit);
    let length = 0;
    while (length < limit) {
      const { bytesRead } = await handle.read(buffer, length, limit - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    await handle.close();
  }
}
