import { existsSync } from 'node:fs';
import { stringify } from 'yaml';
import { loadConfig, parseConfig, resolveConfigPath } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { KeygateError } from '../errors.js';
import { ACCOUNT_NAME, MAX_DESCRIPTION } from '../keys/accounts-file.js';
import { WorkerArgon2Hasher } from '../keys/argon2-workers.js';
import { generateKey } from '../keys/key-format.js';
import { MAX_EXPIRES_AT } from '../keys/key-service.js';
import { need, str, type Values } from './args.js';
import { parseExpiry } from './keys.js';

/**
 * `keygate keys mint ACCOUNT --offline`: a key made exactly as `keys create` makes one (the
 * configured prefix and argon2id parameters), touching no store. The key goes to stdout for
 * the consumer's secret store; its record, with only the hash, to stderr for the accounts file.
 */
export async function mintOffline(
  args: string[],
  values: Values,
  configFile: string | undefined,
): Promise<number> {
  const [account] = need(args, 1, 'keys mint ACCOUNT --offline') as [string];
  if (!ACCOUNT_NAME.test(account))
    throw new KeygateError(
      'bad_request',
      'name: expected 1-63 lower-case letters, digits or "-", starting with a letter or digit',
    );
  const config = mintConfig(configFile);
  const description = (
    str(values.description) ?? `minted by keygate CLI on ${new Date().toISOString().slice(0, 10)}`
  ).trim();
  if (description.length > MAX_DESCRIPTION)
    throw new KeygateError('bad_request', `description: at most ${MAX_DESCRIPTION} characters`);
  const expiresAt = parseExpiry(values) ?? 0;
  if (
    !Number.isSafeInteger(expiresAt) ||
    expiresAt < 0 ||
    expiresAt > MAX_EXPIRES_AT ||
    (expiresAt !== 0 && expiresAt <= Math.floor(Date.now() / 1000))
  )
    throw new KeygateError(
      'bad_request',
      `expires_at: expected a time in the future up to ${MAX_EXPIRES_AT} (9999-12-31T23:59:59Z)`,
    );
  const scopes = str(values.scopes)
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const generated = generateKey(config.keys.prefix);
  const hasher = new WorkerArgon2Hasher(config.keys.argon2, 1);
  let hash: string;
  try {
    hash = await hasher.hash(generated.full);
  } finally {
    await hasher.close();
  }
  const record = {
    id: generated.id,
    hash,
    description,
    ...(expiresAt !== 0 ? { expires_at: expiresAt } : {}),
    ...(scopes !== undefined ? { scopes: [...new Set(scopes)] } : {}),
  };
  console.log(generated.full);
  process.stderr.write(
    `# key ${generated.id} for account ${account}: add this item under its keys:\n${stringify([record])}`,
  );
  return 0;
}

/** The config if one is given or present, else the defaults: minting needs no deployment. */
function mintConfig(configFile: string | undefined): Readonly<Config> {
  if (
    configFile !== undefined ||
    process.env.KEYGATE_CONFIG !== undefined ||
    existsSync(resolveConfigPath())
  )
    return loadConfig({ file: configFile });
  // The defaults of keys.*; authz mode only because it is the one mode needing no upstream.
  return parseConfig('mode: authz\n', '(defaults)', process.env);
}
