import { formatRateLimit, parseRateLimitFlag } from '../keys/account-rate-limit.js';
import type { KeyManagement } from '../keys/key-management.js';
import type { Actor } from '../keys/key-service.js';
import type { AccountRateLimit } from '../store/key-store.js';
import { need, str, UsageError, type Values } from './args.js';
import { editFilters, filterEdits, filterKinds, filterLines } from './filter-options.js';
import { keyTable, printJson, table, time } from './output.js';

/** `keygate accounts create|list|show|update|delete`. */
export async function accountsCommand(
  sub: string | undefined,
  args: string[],
  values: Values,
  keys: KeyManagement,
  actor: Actor,
): Promise<number> {
  switch (sub) {
    case 'create': {
      const [name] = need(args, 1, 'accounts create NAME --role ROLE') as [string];
      const role = str(values.role);
      if (role === undefined) throw new UsageError('accounts create needs --role ROLE');
      const rateLimit = rateLimitOption(values);
      if (values['clear-filters'])
        throw new UsageError('--clear-filters is for accounts update (a new account has none)');
      const edits = filterEdits(values);
      const account = await keys.createAccount(actor, {
        name,
        role,
        description: str(values.description),
        ...(rateLimit ? { rateLimit } : {}),
        ...(edits.length > 0 ? { filters: editFilters({}, edits) } : {}),
      });
      if (values.json) printJson(account);
      else console.error(`created service account "${account.name}" with role ${account.role}`);
      return 0;
    }
    case 'list': {
      need(args, 0, 'accounts list');
      const items = await keys.listAccounts(actor);
      if (values.json) printJson({ items });
      else
        table(
          ['NAME', 'ROLE', 'DISABLED', 'FILTERS', 'CREATED', 'DESCRIPTION'],
          items.map((a) => [
            a.name,
            a.role,
            a.disabled ? 'yes' : 'no',
            filterKinds(a.filters),
            time(a.created_at),
            a.description,
          ]),
        );
      return 0;
    }
    case 'show': {
      const [name] = need(args, 1, 'accounts show NAME') as [string];
      const account = await keys.getAccount(actor, name);
      if (values.json) {
        printJson(account);
        return 0;
      }
      console.log(
        `name: ${account.name}\nrole: ${account.role}\ndisabled: ${account.disabled ? 'yes' : 'no'}\n` +
          `description: ${account.description}\nrate limit: ${formatRateLimit(account.rate_limit)}\n` +
          `created: ${time(account.created_at)}\nupdated: ${time(account.updated_at)}\n` +
          `${filterLines(account.filters)}\n`,
      );
      keyTable(account.keys);
      return 0;
    }
    case 'update': {
      const [name] = need(
        args,
        1,
        'accounts update NAME [--role R] [--description D] [--disable|--enable] [--filter KIND=EXPR]... [--clear-filters]',
      ) as [string];
      if (values.disable && values.enable) throw new UsageError('use either --disable or --enable');
      const edits = filterEdits(values);
      // The API replaces the whole set, so editing some kinds starts from what is stored now
      // (a read, then the write: a concurrent edit of the same account's filters may be lost;
      // --clear-filters with every --filter wanted sets them all in one write).
      const filters = values['clear-filters']
        ? editFilters({}, edits)
        : edits.length > 0
          ? editFilters((await keys.getAccount(actor, name)).filters, edits)
          : undefined;
      const change = {
        role: str(values.role),
        description: str(values.description),
        disabled: values.disable ? true : values.enable ? false : undefined,
        rateLimit: rateLimitOption(values),
        filters,
      };
      if (Object.values(change).every((v) => v === undefined)) {
        throw new UsageError(
          'accounts update needs --role, --description, --disable, --enable, --rate-limit, --filter or --clear-filters',
        );
      }
      const account = await keys.updateAccount(actor, name, change);
      if (values.json) printJson(account);
      else
        console.error(
          `updated service account "${account.name}": role ${account.role}, ${account.disabled ? 'disabled' : 'enabled'}`,
        );
      return 0;
    }
    case 'delete': {
      const [name] = need(args, 1, 'accounts delete NAME') as [string];
      await keys.deleteAccount(actor, name);
      if (values.json) printJson({ deleted: name });
      else console.error(`deleted service account "${name}" and all its keys`);
      return 0;
    }
    default:
      throw new UsageError(`unknown accounts command "${sub ?? ''}"`);
  }
}

/** `--rate-limit 100/1m` or `none` (null: clear); undefined when not given. */
function rateLimitOption(values: Values): AccountRateLimit | null | undefined {
  const text = str(values['rate-limit']);
  if (text === undefined) return undefined;
  const limit = parseRateLimitFlag(text);
  if (limit === undefined)
    throw new UsageError(
      `--rate-limit: expected N/DURATION such as 100/1m or 5000/1h (whole seconds), or none`,
    );
  return limit;
}
