#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createKeyServices } from './app.js';
import { parseDurationMs } from './config/duration.js';
import { ConfigError, loadConfig, resolveConfigPath } from './config/load.js';
import type { Config } from './config/schema.js';
import { KeygateError } from './errors.js';
import type { Actor, IssuedKey, KeyService, KeyView } from './keys/key-service.js';
import { serve } from './serve.js';
import { systemClock } from './shared/clock.js';
import { redactUrl } from './shared/redact-url.js';
import { StoreLockedError } from './store/file-key-store.js';
import { openStore } from './store/open-store.js';
import { createLogger } from './telemetry/logger.js';

const USAGE = `usage: keygate <command> [options]

  serve                                        run the proxy
  config check [FILE]                          validate a config file and exit
  accounts create NAME --role ROLE [--description TEXT]
  accounts list
  accounts show NAME                           the account and its keys
  accounts update NAME [--role ROLE] [--description TEXT] [--disable | --enable]
  accounts delete NAME                         deletes the account and all its keys
  keys create ACCOUNT [--description TEXT] [--expires-in 90d | --expires-at TIME] [--scopes a,b]
  keys list ACCOUNT
  keys revoke ACCOUNT KEY_ID
  keys rotate ACCOUNT KEY_ID [--grace 24h]     new key now, old key works until the grace ends
  version                                      print the version

Every command takes --config FILE (default: $KEYGATE_CONFIG or config/keygate.yaml) and honours
the KEYGATE_* environment overrides. Without --json, "keys create" and "keys rotate" print the key
alone on stdout and everything else on stderr. With --json every command prints one JSON object on
stdout (create and rotate: the key with its metadata), and an error is one JSON object on stderr:
{"error": CODE, "message": TEXT}.
Exit codes: 0 ok, 1 failure, 2 bad usage or config.`;

class UsageError extends Error {}

const OPTIONS = {
  config: { type: 'string' },
  role: { type: 'string' },
  description: { type: 'string' },
  'expires-in': { type: 'string' },
  'expires-at': { type: 'string' },
  scopes: { type: 'string' },
  grace: { type: 'string' },
  disable: { type: 'boolean' },
  enable: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = Partial<Record<keyof typeof OPTIONS, string | boolean>>;

export async function main(argv: string[]): Promise<number> {
  // Known before parsing, so even an unknown option is reported as JSON to a script that asked.
  const json = argv.includes('--json');
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    return report(new UsageError((err as Error).message), json);
  }
  const [command, sub, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  try {
    switch (command) {
      case 'version':
        if (json) printJson(version());
        else console.log(`keygate ${version().version} (node ${process.version})`);
        return 0;
      case 'serve':
        await serve(
          loadConfig({ file: str(values.config) }),
          resolveConfigPath({ file: str(values.config) }),
        );
        return -1; // keeps running until a signal
      case 'config':
        if (sub !== 'check') throw new UsageError(`unknown config command "${sub ?? ''}"`);
        return configCheck(rest[0] ?? str(values.config), json);
      case 'accounts':
        return await withKeys(values, (keys, actor) => accounts(sub, rest, values, keys, actor));
      case 'keys':
        return await withKeys(values, (keys, actor) => keysCommand(sub, rest, values, keys, actor));
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    return report(err, json);
  }
}

function str(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function configCheck(file: string | undefined, json: boolean): number {
  const path = resolveConfigPath({ file });
  const loaded = loadConfig({ file: path });
  if (json) {
    // A summary only: the upstream URL without its user info, no credential, no store URL.
    printJson({
      ok: true,
      path,
      store: loaded.store.type,
      upstream: redactUrl(loaded.upstream.url),
      routes: loaded.routes.length,
      roles: Object.keys(loaded.roles),
    });
    return 0;
  }
  console.error(
    `${path}: ok (store ${loaded.store.type}, upstream ${redactUrl(loaded.upstream.url)}, ${loaded.routes.length} routes, roles ${Object.keys(loaded.roles).join(', ')})`,
  );
  const credential = loaded.upstream.credential;
  // Where the credential comes from, never the value: the file is not even opened here (it
  // is a Secret mounted only where keygate runs; `serve` refuses to start without it).
  if (credential !== undefined) {
    console.error(`upstream credential: ${credential.header} from ${credential.file}`);
  }
  return 0;
}

/** Opens the configured store, runs one management command through the service layer, closes. */
async function withKeys(
  values: Values,
  run: (keys: KeyService, actor: Actor) => Promise<number>,
): Promise<number> {
  const config: Readonly<Config> = loadConfig({ file: str(values.config) });
  // Audit lines go to stderr, synchronously: stdout stays clean for keys and --json output.
  const logger = createLogger(config.log.level, pino.destination({ dest: 2, sync: true }));
  const store = await openStore(config.store, { requireConnection: true });
  const services = createKeyServices(config, store, systemClock, { logger });
  try {
    return await run(services.keys, { kind: 'cli', user: cliUser() });
  } finally {
    await services.close();
    await store.close();
  }
}

function cliUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

function need(args: string[], count: number, what: string): string[] {
  if (args.length !== count) throw new UsageError(`expected ${what}`);
  return args;
}

async function accounts(
  sub: string | undefined,
  args: string[],
  values: Values,
  keys: KeyService,
  actor: Actor,
) {
  switch (sub) {
    case 'create': {
      const [name] = need(args, 1, 'accounts create NAME --role ROLE') as [string];
      const role = str(values.role);
      if (role === undefined) throw new UsageError('accounts create needs --role ROLE');
      const account = await keys.createAccount(actor, {
        name,
        role,
        description: str(values.description),
      });
      if (values.json) console.log(JSON.stringify(account));
      else console.error(`created service account "${account.name}" with role ${account.role}`);
      return 0;
    }
    case 'list': {
      need(args, 0, 'accounts list');
      const items = await keys.listAccounts(actor);
      if (values.json) console.log(JSON.stringify({ items }));
      else
        table(
          ['NAME', 'ROLE', 'DISABLED', 'CREATED', 'DESCRIPTION'],
          items.map((a) => [
            a.name,
            a.role,
            a.disabled ? 'yes' : 'no',
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
        console.log(JSON.stringify(account));
        return 0;
      }
      console.log(
        `name: ${account.name}\nrole: ${account.role}\ndisabled: ${account.disabled ? 'yes' : 'no'}\n` +
          `description: ${account.description}\ncreated: ${time(account.created_at)}\nupdated: ${time(account.updated_at)}\n`,
      );
      keyTable(account.keys);
      return 0;
    }
    case 'update': {
      const [name] = need(
        args,
        1,
        'accounts update NAME [--role R] [--description D] [--disable|--enable]',
      ) as [string];
      if (values.disable && values.enable) throw new UsageError('use either --disable or --enable');
      const change = {
        role: str(values.role),
        description: str(values.description),
        disabled: values.disable ? true : values.enable ? false : undefined,
      };
      if (Object.values(change).every((v) => v === undefined)) {
        throw new UsageError('accounts update needs --role, --description, --disable or --enable');
      }
      const account = await keys.updateAccount(actor, name, change);
      if (values.json) console.log(JSON.stringify(account));
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

async function keysCommand(
  sub: string | undefined,
  args: string[],
  values: Values,
  keys: KeyService,
  actor: Actor,
) {
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
      const [account] = need(args, 1, 'keys list ACCOUNT') as [string];
      const items = await keys.listKeys(actor, account);
      if (values.json) console.log(JSON.stringify({ items }));
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

function keyTable(items: KeyView[]): void {
  table(
    ['ID', 'STATUS', 'DESCRIPTION', 'SCOPES', 'CREATED', 'EXPIRES', 'LAST USED'],
    items.map((k) => [
      k.id,
      k.status === 'rotating' ? `rotating → ${k.replaced_by}` : k.status,
      k.description,
      k.scopes?.join(',') ?? '(role)',
      time(k.created_at),
      k.expires_at === 0 ? 'never' : time(k.expires_at),
      k.last_used_at === 0 ? 'never' : time(k.last_used_at),
    ]),
  );
}

function table(header: string[], rows: string[][]): void {
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

/**
 * Renders a stored time. Never throws: a record may hold a value written before expiries were
 * bounded (or by hand), and one odd key must not stop `keys list` from showing the others.
 */
function time(seconds: number): string {
  const date = new Date(seconds * 1000);
  // Outside ±8.64e15 ms a Date is invalid and toISOString throws; past year 9999 it is not RFC 3339.
  if (!Number.isFinite(date.getTime()) || date.getUTCFullYear() > 9999 || seconds < 0) {
    return `${String(seconds)} (Unix seconds)`;
  }
  return date.toISOString().replace('.000Z', 'Z');
}

function parseExpiry(values: Values): number | undefined {
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

function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}

/**
 * Prints an error and picks the exit code: 2 for bad usage or config, 1 for any other failure.
 * With --json the error is one object on stderr, `{"error": code, "message": text}`, where code
 * is the admin API's error code (KeygateError) or usage, config, store_locked, failed.
 */
function report(err: unknown, json: boolean): number {
  const [code, message, exit] = describeError(err);
  if (json) console.error(JSON.stringify({ error: code, message }));
  else if (err instanceof UsageError) console.error(`keygate: ${message}\n\n${USAGE}`);
  else if (err instanceof KeygateError) console.error(`keygate: ${code}: ${message}`);
  else console.error(`keygate: ${message}`);
  return exit;
}

function describeError(err: unknown): [code: string, message: string, exit: number] {
  if (err instanceof UsageError) return ['usage', err.message, 2];
  if (err instanceof ConfigError) return ['config', err.message, 2];
  if (err instanceof KeygateError)
    return [err.code, err.message, err.code === 'bad_request' ? 2 : 1];
  if (err instanceof StoreLockedError) return ['store_locked', err.message, 1];
  return ['failed', err instanceof Error ? err.message : String(err), 1];
}

function version(): { version: string; node: string } {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return { version: pkg.version, node: process.version };
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
