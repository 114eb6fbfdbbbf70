import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { type Config, configSchema } from './schema.js';

const DEFAULT_CONFIG_PATH = 'config/keygate.yaml';

export interface ConfigProblem {
  /** Dotted path into the config, e.g. `routes[3].methods[0]`. */
  path: string;
  message: string;
}

/** A configuration that cannot be used. The CLI turns it into exit code 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(
      `invalid configuration (${source}):\n${problems.map((p) => `  ${p.path || '(root)'}: ${p.message}`).join('\n')}`,
    );
  }
}

/** Env variables that override one config path each (what differs per deployment or is secret). */
/** The config keys an override walks: a closed set, so indexing the raw config by them is safe. */
type OverridePathKey =
  | 'mode'
  | 'listen'
  | 'ops'
  | 'port'
  | 'upstream'
  | 'url'
  | 'credential'
  | 'store'
  | 'type'
  | 'redis'
  | 'file'
  | 'path'
  | 'log'
  | 'level';
const ENV_OVERRIDES: ReadonlyArray<{
  env: string;
  path: readonly OverridePathKey[];
  numeric?: boolean;
}> = [
  { env: 'KEYGATE_MODE', path: ['mode'] },
  { env: 'KEYGATE_PORT', path: ['listen', 'port'], numeric: true },
  { env: 'KEYGATE_OPS_PORT', path: ['ops', 'port'], numeric: true },
  { env: 'KEYGATE_UPSTREAM_URL', path: ['upstream', 'url'] },
  // Alone, it turns the upstream credential on with the default header (X-API-KEY).
  { env: 'KEYGATE_UPSTREAM_CREDENTIAL_FILE', path: ['upstream', 'credential', 'file'] },
  { env: 'KEYGATE_STORE', path: ['store', 'type'] },
  { env: 'KEYGATE_REDIS_URL', path: ['store', 'redis', 'url'] },
  { env: 'KEYGATE_FILE_PATH', path: ['store', 'file', 'path'] },
  { env: 'KEYGATE_LOG_LEVEL', path: ['log', 'level'] },
];

export interface LoadOptions {
  /** Explicit file; otherwise KEYGATE_CONFIG, otherwise DEFAULT_CONFIG_PATH. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export function resolveConfigPath(options: LoadOptions = {}): string {
  const env = options.env ?? process.env;
  return options.file ?? env.KEYGATE_CONFIG ?? DEFAULT_CONFIG_PATH;
}

/** Reads, overrides, validates and freezes the configuration: once, at start-up. */
export function loadConfig(options: LoadOptions = {}): Readonly<Config> {
  return loadConfigWithText(options).config;
}

/** loadConfig, with the text it parsed (serve hashes it, so a reload knows what is running). */
export function loadConfigWithText(options: LoadOptions = {}): {
  config: Readonly<Config>;
  text: string;
} {
  const env = options.env ?? process.env;
  const file = resolveConfigPath(options);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason =
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(err);
    throw new ConfigError(file, [{ path: '', message: reason }]);
  }
  return { config: parseConfig(text, file, env), text };
}

export function parseConfig(
  text: string,
  source: string,
  env: NodeJS.ProcessEnv = {},
): Readonly<Config> {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true }) ?? {};
  } catch (err) {
    const message = err instanceof YAMLParseError ? err.message.split('\n')[0] : String(err);
    throw new ConfigError(source, [{ path: '', message: `YAML: ${message}` }]);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '', message: 'expected a YAML mapping' }]);
  }
  const fromEnv = applyEnvOverrides(raw as Record<string, unknown>, env);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(source, toProblems(result.error, fromEnv));
  }
  return deepFreeze(result.data);
}

function applyEnvOverrides(
  raw: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): Map<string, string> {
  const applied = new Map<string, string>();
  for (const { env: name, path, numeric } of ENV_OVERRIDES) {
    const value = env[name]; // own-key: names from the closed ENV_OVERRIDES table
    if (value === undefined || value === '') continue;
    let node = raw;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (typeof next !== 'object' || next === null) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    const leaf = path[path.length - 1] as OverridePathKey;
    node[leaf] = numeric && /^\d+$/.test(value) ? Number(value) : value;
    applied.set(path.join('.'), name);
  }
  return applied;
}

function toProblems(error: z.ZodError, fromEnv: Map<string, string>): ConfigProblem[] {
  return error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        path: formatPath([...issue.path, key]),
        message: 'unknown key (check the spelling against the config reference)',
      }));
    }
    const envName = fromEnv.get(issue.path.join('.'));
    const message =
      issue.code === 'invalid_value' ? `expected one of ${issue.values.join(', ')}` : issue.message;
    return [
      {
        path: formatPath(issue.path),
        message: envName ? `${message} (set by ${envName})` : message,
      },
    ];
  });
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
