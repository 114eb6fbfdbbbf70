import { parseArgs } from 'node:util';
import type { KeyManagement } from '../keys/key-management.js';
import type { Actor } from '../keys/key-service.js';
import { accountsCommand } from './accounts.js';
import { applyCommand } from './apply.js';
import { OPTIONS, str, UsageError, type Values } from './args.js';
import { configCheck } from './config-check.js';
import { withKeys } from './key-session.js';
import { keysCommand } from './keys.js';
import { mintOffline } from './mint.js';
import { printJson } from './output.js';
import { RemoteKeyManagement } from './remote-key-management.js';
import { type RemoteTarget, resolveRemote } from './remote-target.js';
import { reportError } from './report-error.js';
import { serveCommand } from './serve-command.js';
import { USAGE } from './usage.js';
import { version } from './version.js';

/**
 * Parses the arguments and runs one command. Resolves with the exit code, or -1 for `serve`,
 * which keeps the process running until a signal.
 */
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
    return reportError(new UsageError((err as Error).message), json);
  }
  const [command, sub, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const configFile = str(values.config);
  // Known once resolved, so no error message (whatever put it there) can print it.
  let remote: RemoteTarget | undefined;
  /** A management command, on the configured store or, in remote mode, on the admin API. */
  const manage = async (
    run: (keys: KeyManagement, actor: Actor) => Promise<number>,
  ): Promise<number> => {
    remote = resolveRemote(values, process.env, (line) => console.error(line));
    if (remote === undefined) return withKeys(configFile, run);
    // Opens no store and reads no keygate config: the server acts, audits and bounds the grant.
    return run(new RemoteKeyManagement(remote), { kind: 'cli', user: 'remote' });
  };
  try {
    switch (command) {
      case 'version':
        if (json) printJson(version());
        else console.log(`keygate ${version().version} (node ${process.version})`);
        return 0;
      case 'serve':
        return await serveCommand(configFile);
      case 'config':
        if (sub !== 'check') throw new UsageError(`unknown config command "${sub ?? ''}"`);
        return configCheck(rest[0] ?? configFile, json);
      case 'accounts':
        return await manage((keys, actor) => accountsCommand(sub, rest, values, keys, actor));
      case 'apply':
        if (sub !== undefined)
          throw new UsageError('usage: keygate apply -f FILE [--dry-run] [--prune]');
        return await applyCommand(values, manage);
      case 'keys':
        // Offline minting needs no store: it must work where no keygate or Redis is reachable.
        if (sub === 'mint') {
          if (!values.offline)
            throw new UsageError(
              'keys mint needs --offline (use keys create to issue a key into the store)',
            );
          return await mintOffline(rest, values, configFile);
        }
        return await manage((keys, actor) => keysCommand(sub, rest, values, keys, actor));
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    return reportError(err, json, remote?.apiKey);
  }
}
