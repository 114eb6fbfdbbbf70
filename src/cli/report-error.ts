import { ConfigError } from '../config/load.js';
import { KeygateError } from '../errors.js';
import { StoreLockedError } from '../store/file-key-store.js';
import { UsageError } from './args.js';
import { RemoteError } from './remote-key-management.js';
import { USAGE } from './usage.js';

/**
 * Prints an error and picks the exit code: 2 for bad usage or config, 1 for any other failure.
 * With --json the error is one object on stderr, `{"error": code, "message": text}`, where code
 * is the admin API's error code (KeygateError) or usage, config, store_locked, remote (the remote
CLI got no answer it can trust from the admin API), failed.
 */
export function reportError(err: unknown, json: boolean, secret?: string): number {
  const [code, raw, exit] = describeError(err);
  // The remote CLI's API key, should any message carry it (a positional pasted by mistake).
  const message = secret ? raw.replaceAll(secret, '***') : raw;
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
  if (err instanceof RemoteError) return ['remote', err.message, 1];
  return ['failed', err instanceof Error ? err.message : String(err), 1];
}
