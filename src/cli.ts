#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createKeyServices } from './app.js';
import { parseDurationMs } from './config/duration.js';
import { ConfigError, loadConfig, resolveConfigPath } from './config/load.js';
import type { Config } from './config/schema.js';
import { KeygateError } from './errors.js';
import { serve } from './serve.js';
import { systemClock } from './shared/clock.js';
import { StoreLockedError } from './store/file-key-store.js';
import type { KeyStore } from './store/key-store.js';
import { openStore } from './store/open-store.js';

const USAGE = `usage: keygate <command> [options]

  serve                                   run the proxy
  config check [FILE]                     validate a config file and exit
  accounts create NAME --role ROLE [--description TEXT]
  keys create ACCOUNT [--description TEXT] [--expires-in 90d | --expires-at TIME] [--scopes a,b]
  version                                 print the version

Every command takes --config FILE (default: $KEYGATE_CONFIG or config/keygate.yaml)
and honours the KEYGATE_* environment overrides. Exit codes: 0 ok, 1 failure, 2 bad usage or config.`;

class UsageError extends Error {}

const OPTIONS = {
  config: { type: 'string' },
  role: { type: 'string' },
  description: { type: 'string' },
  'expires-in': { type: 'string' },
  'expires-at': { type: 'string' },
  scopes: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, sub, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  try {
    switch (command) {
      case 'version':
        console.log(version());
        return 0;
      case 'serve':
        await serve(config(values.config), resolveConfigPath({ file: values.config }));
        return -1; // keeps running until a signal
      case 'config':
        if (sub !== 'check') throw new UsageError(`unknown config command "${sub ?? ''}"`);
        return configCheck(rest[0] ?? values.config);
      case 'accounts':
        if (sub !== 'create') throw new UsageError(`unknown accounts command "${sub ?? ''}"`);
        return await accountsCreate(rest, values);
      case 'keys':
        if (sub !== 'create') throw new UsageError(`unknown keys command "${sub ?? ''}"`);
        return await keysCreate(rest, values);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    return report(err);
  }
}

function config(file: string | undefined): Readonly<Config> {
  return loadConfig({ file });
}

function configCheck(file: string | undefined): number {
  const path = resolveConfigPath({ file });
  const loaded = loadConfig({ file: path });
  console.error(
    `${path}: ok (store ${loaded.store.type}, upstream ${loaded.upstream.url}, ${loaded.routes.length} routes, roles ${Object.keys(loaded.roles).join(', ')})`,
  );
  return 0;
}

type Values = Partial<Record<keyof typeof OPTIONS, string | boolean>>;

async function withServices<T>(
  values: Values,
  run: (services: ReturnType<typeof createKeyServices>, store: KeyStore) => Promise<T>,
): Promise<T> {
  const loaded = config(values.config as string | undefined);
  const store = await openStore(loaded.store, { requireConnection: true });
  const services = createKeyServices(loaded, store, systemClock);
  try {
    return await run(services, store);
  } finally {
    await store.close();
    await services.hasher.close?.();
  }
}

async function accountsCreate(args: string[], values: Values): Promise<number> {
  const [name, ...extra] = args;
  if (name === undefined || extra.length > 0)
    throw new UsageError('accounts create needs exactly one NAME');
  if (typeof values.role !== 'string') throw new UsageError('accounts create needs --role ROLE');
  const role = values.role;
  const account = await withServices(values, ({ keys }) =>
    keys.createAccount({ name, role, description: values.description as string | undefined }),
  );
  if (values.json) console.log(JSON.stringify(account));
  else console.error(`created service account "${account.name}" with role ${account.role}`);
  return 0;
}

async function keysCreate(args: string[], values: Values): Promise<number> {
  const [account, ...extra] = args;
  if (account === undefined || extra.length > 0)
    throw new UsageError('keys create needs exactly one ACCOUNT');
  const expiresAt = parseExpiry(values);
  const scopes =
    typeof values.scopes === 'string'
      ? values.scopes
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : undefined;
  const issued = await withServices(values, ({ keys }) =>
    keys.createKey(account, {
      description:
        (values.description as string | undefined) ??
        `created by keygate CLI on ${new Date().toISOString().slice(0, 10)}`,
      expiresAt,
      scopes,
    }),
  );
  // The key alone on stdout, so `KEY=$(keygate keys create ci)` works; everything else on stderr.
  console.log(issued.key);
  const { key: _key, ...metadata } = issued;
  console.error(
    values.json
      ? JSON.stringify(metadata)
      : `created key ${issued.id} for "${issued.account}" (expires ${issued.expires_at === 0 ? 'never' : new Date(issued.expires_at * 1000).toISOString()}); it is shown only once`,
  );
  return 0;
}

function parseExpiry(values: Values): number | undefined {
  const expiresIn = values['expires-in'];
  const expiresAtRaw = values['expires-at'];
  if (typeof expiresIn === 'string' && typeof expiresAtRaw === 'string') {
    throw new UsageError('use either --expires-in or --expires-at');
  }
  if (typeof expiresIn === 'string') {
    const ms = parseDurationMs(expiresIn);
    if (ms === undefined || ms <= 0)
      throw new UsageError(`--expires-in: expected a duration such as 90d, got "${expiresIn}"`);
    return Math.floor((systemClock.now() + ms) / 1000);
  }
  if (typeof expiresAtRaw === 'string') {
    if (/^\d+$/.test(expiresAtRaw)) return Number(expiresAtRaw);
    const ms = Date.parse(expiresAtRaw);
    if (Number.isNaN(ms))
      throw new UsageError(
        `--expires-at: expected RFC 3339 or Unix seconds, got "${expiresAtRaw}"`,
      );
    return Math.floor(ms / 1000);
  }
  return undefined;
}

function usage(message: string): number {
  console.error(`keygate: ${message}\n\n${USAGE}`);
  return 2;
}

function report(err: unknown): number {
  if (err instanceof UsageError) return usage(err.message);
  if (err instanceof ConfigError) {
    console.error(`keygate: ${err.message}`);
    return 2;
  }
  if (err instanceof KeygateError) {
    console.error(`keygate: ${err.code}: ${err.message}`);
    return err.code === 'bad_request' ? 2 : 1;
  }
  if (err instanceof StoreLockedError) {
    console.error(`keygate: ${err.message}`);
    return 1;
  }
  console.error(`keygate: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return `keygate ${pkg.version} (node ${process.version})`;
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
