import { parseDurationMs } from '../config/duration.js';
import type { KeyManagement } from '../keys/key-management.js';
import type { Actor, IssuedKey } from '../keys/key-service.js';
import { systemClock } from '../shared/clock.js';
import { need, str, UsageError, type Values } from './args.js';
import { expiringKeyTable, keyTable, printJson, time } from './output.js';

/** `keygate keys create|list|revoke|rotate`. */
export async function keysCommand(
  sub: string | undefined,
  args: string[],
  values: Values,
  keys: KeyManagement,
  actor: Actor,
): Promise<number> {
  switch (sub) {
    case 'create': {
      const [account] = need(args, 1, 'keys create ACCOUNT') as [string];
      const scopes = str(values.scopes)
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const issued = await keys.createKey(actor, account, {
        description:
          str(values.description) ??
          `created by keygate CLI on ${new Date().toISOString().slice(0, 10)}`,
        expiresAt: parseExpiry(values),
        scopes,
      });
      printIssued(issued, values, 'created');
      return 0;
    }
    case 'list': {
      const expiring = str(values.expiring);
      if (expiring !== undefined) {
        // Across all accounts unless one is named: which jobs break this week?
        const ms = parseDurationMs(expiring);
        if (ms === undefined || ms <= 0)
          throw new UsageError(
            `--expiring: expected a duration such as 7d or 24h, got "${expiring}"`,
          );
        if (args.length > 1)
          throw new UsageError('usage: keygate keys list [ACCOUNT] --expiring 7d');
        const items = await keys.listExpiringKeys(actor, args[0], Math.ceil(ms / 1000));
        if (values.json) printJson({ items });
        else expiringKeyTable(items);
        return 0;
      }
      const [account] = need(args, 1, 'keys list ACCOUNT') as [string];
      const items = await keys.listKeys(actor, account);
      if (values.json) printJson({ items });
      else keyTable(items);
      return 0;
    }
    case 'revoke': {
      const [account, id] = need(args, 2, 'keys revoke ACCOUNT KEY_ID') as [string, string];
      await keys.revokeKey(actor, account, id);
      if (values.json) printJson({ revoked: id, account });
      else console.error(`revoked key ${id} of "${account}"`);
      return 0;
    }
    case 'rotate': {
      const [account, id] = need(args, 2, 'keys rotate ACCOUNT KEY_ID [--grace 24h]') as [
        string,
        string,
      ];
      let grace: number | undefined;
      const graceText = str(values.grace);
      if (graceText !== undefined) {
        const ms = parseDurationMs(graceText);
        if (ms === undefined)
          throw new UsageError(`--grace: expected a duration such as 24h or 0, got "${graceText}"`);
        grace = Math.round(ms / 1000);
      }
      const issued = await keys.rotateKey(actor, account, id, grace);
      printIssued(issued, values, `rotated ${id} into`);
      return 0;
    }
    default:
      throw new UsageError(`unknown keys command "${sub ?? ''}"`);
  }
}

/**
 * The key alone on stdout, so `KEY=$(keygate keys create ci)` works, and the rest on stderr; with
 * --json one object on stdout, key included (the admin API's answer); stderr keeps only audit lines.
 */
function printIssued(issued: IssuedKey, values: Values, verb: string): void {
  if (values.json) {
    printJson(issued);
    return;
  }
  console.log(issued.key);
  console.error(
    `${verb} key ${issued.id} for "${issued.account}" (expires ${issued.expires_at === 0 ? 'never' : time(issued.expires_at)}); it is shown only once`,
  );
}

export function parseExpiry(values: Values): number | undefined {
  const expiresIn = str(values['expires-in']);
  const expiresAt = str(values['expires-at']);
  if (expiresIn !== undefined && expiresAt !== undefined)
    throw new UsageError('use either --expires-in or --expires-at');
  if (expiresIn !== undefined) {
    const ms = parseDurationMs(expiresIn);
    if (ms === undefined || ms <= 0)
      throw new UsageError(`--expires-in: expected a duration such as 90d, got "${expiresIn}"`);
    return Math.floor((systemClock.now() + ms) / 1000);
  }
  if (expiresAt !== undefined) {
    if (/^\d+$/.test(expiresAt)) return Number(expiresAt);
    const ms = Date.parse(expiresAt);
    if (Number.isNaN(ms))
      throw new UsageError(`--expires-at: expected RFC 3339 or Unix seconds, got "${expiresAt}"`);
    return Math.floor(ms / 1000);
  }
  return undefined;
}
