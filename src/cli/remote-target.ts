import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../config/load.js';
import { str, UsageError, type Values } from './args.js';

/** A running keygate's admin API, as the remote CLI reaches it. */
export interface RemoteTarget {
  /** The base URL (scheme, host, optional path prefix), without a trailing "/". */
  readonly base: string;
  /** The URL as it may be printed: never userinfo (refused anyway), never the key. */
  readonly shown: string;
  readonly apiKey: string;
}

/** An API key is a header value: visible ASCII only, so fetch can never echo it in a refusal. */
const HEADER_SAFE = /^[\x21-\x7e]{1,1024}$/;

const cliConfigSchema = z.strictObject({
  url: z.string().optional(),
  api_key: z.string().optional(),
  api_key_file: z.string().optional(),
});

interface Found {
  value: string;
  /** Where it came from, for error messages: "--url", "KEYGATE_URL", "FILE: url". */
  from: string;
}

/**
 * Decides between local and remote mode and, for remote, where to and with which key.
 * Precedence, field by field: flags (--url, --api-key / --api-key-file) over the environment
 * (KEYGATE_URL, KEYGATE_API_KEY / KEYGATE_API_KEY_FILE) over the --cli-config file. Any of them
 * means remote mode, which then needs both a URL and a key: a key without a URL is refused
 * rather than ignored, so an operator who meant a remote keygate never edits a local store.
 * Undefined: local mode.
 */
export function resolveRemote(
  values: Values,
  env: NodeJS.ProcessEnv,
  warn: (line: string) => void,
): RemoteTarget | undefined {
  const file = readCliConfig(str(values['cli-config']));
  const flagKey = keyFrom(
    str(values['api-key']),
    str(values['api-key-file']),
    '--api-key',
    '--api-key-file',
  );
  const envKey = keyFrom(
    nonEmpty(env.KEYGATE_API_KEY),
    nonEmpty(env.KEYGATE_API_KEY_FILE),
    'KEYGATE_API_KEY',
    'KEYGATE_API_KEY_FILE',
  );
  const urlFlag = str(values.url);
  const urlEnv = nonEmpty(env.KEYGATE_URL);
  const url: Found | undefined =
    urlFlag !== undefined
      ? { value: urlFlag, from: '--url' }
      : urlEnv !== undefined
        ? { value: urlEnv, from: 'KEYGATE_URL' }
        : file?.url;
  const key = flagKey ?? envKey ?? file?.key;
  if (url === undefined && key === undefined && file === undefined) return undefined;
  if (str(values.config) !== undefined) {
    throw new UsageError(
      '--config (a local store) and remote mode (--url, KEYGATE_URL, --cli-config) exclude each other',
    );
  }
  if (url === undefined) {
    throw new UsageError(
      'remote mode needs the keygate URL: --url URL, KEYGATE_URL or url: in --cli-config',
    );
  }
  if (key === undefined) {
    throw new UsageError(
      'remote mode needs an API key: --api-key-file FILE, KEYGATE_API_KEY(_FILE), api_key_file: in --cli-config, or --api-key KEY (visible in ps)',
    );
  }
  const base = checkUrl(url);
  const apiKey = readKey(key);
  if (base.protocol === 'http:' && !isLoopback(base.hostname)) {
    // Not refused: an in-cluster Service is often plain http behind a NetworkPolicy.
    warn(
      `keygate: warning: sending the API key over plain http to ${base.host}; anyone on the path can read it (use https outside a trusted network)`,
    );
  }
  const text = base.toString().replace(/\/+$/, '');
  return { base: text, shown: text, apiKey };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

type KeySource = { inline: string; from: string } | { path: string; from: string };

function keyFrom(
  inline: string | undefined,
  path: string | undefined,
  inlineName: string,
  fileName: string,
): KeySource | undefined {
  if (inline !== undefined && path !== undefined) {
    throw new UsageError(`use either ${inlineName} or ${fileName}`);
  }
  if (inline !== undefined) return { inline, from: inlineName };
  if (path !== undefined) return { path, from: fileName };
  return undefined;
}

function readKey(source: KeySource): string {
  let key: string;
  if ('inline' in source) key = source.inline;
  else {
    try {
      // One trailing newline (or CRLF) is what `echo` and editors leave; nothing else is trimmed.
      key = readFileSync(source.path, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new UsageError(
        `${source.from}: cannot read ${source.path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }
  // The key itself is never echoed: only where it came from.
  if (!HEADER_SAFE.test(key)) {
    throw new UsageError(
      `${source.from}: the API key must be 1-1024 visible ASCII characters (no spaces or line breaks)`,
    );
  }
  return key;
}

function checkUrl(found: Found): URL {
  // An unparseable value is not echoed: it may be a key pasted into the wrong place.
  if (!URL.canParse(found.value)) throw new UsageError(`${found.from}: not a URL`);
  const url = new URL(found.value);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${found.from}: expected an http:// or https:// URL`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new UsageError(
      `${found.from}: the URL must not carry user info; give the key with --api-key-file or KEYGATE_API_KEY`,
    );
  }
  if (url.search !== '' || url.hash !== '') {
    throw new UsageError(`${found.from}: the URL must not carry a query or a fragment`);
  }
  return url;
}

/** Hosts where plain http never leaves the machine. */
function isLoopback(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

/** The --cli-config file: `{url, api_key | api_key_file}`; anything wrong is exit 2 naming it. */
function readCliConfig(
  path: string | undefined,
): { url: Found | undefined; key: KeySource | undefined } | undefined {
  if (path === undefined) return undefined;
  const fail = (message: string): never => {
    throw new ConfigError(path, [{ path: '', message }]);
  };
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    fail(`cannot read the CLI config file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch {
    // The parser's message quotes the line, which may hold api_key: not shown.
    fail('not valid YAML');
  }
  const parsed = cliConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    throw new ConfigError(
      path,
      parsed.error.issues.map((i) => ({
        path: i.path.join('.'),
        // zod's messages name types and keys, never the values.
        message: i.message,
      })),
    );
  }
  const { url, api_key, api_key_file } = parsed.data;
  if (api_key !== undefined && api_key_file !== undefined)
    fail('use either api_key or api_key_file');
  return {
    url: url === undefined ? undefined : { value: url, from: `${path}: url` },
    key:
      api_key !== undefined
        ? { inline: api_key, from: `${path}: api_key` }
        : api_key_file !== undefined
          ? // Relative to the file, so a config and its key file can travel together.
            { path: resolve(dirname(path), api_key_file), from: `${path}: api_key_file` }
          : undefined,
  };
}
