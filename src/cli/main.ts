import { parseArgs } from 'node:util';
import { accountsCommand } from './accounts.js';
import { applyCommand } from './apply.js';
import { OPTIONS, str, UsageError, type Values } from './args.js';
import { configCheck } from './config-check.js';
import { withKeys } from './key-session.js';
import { keysCommand } from './keys.js';
import { mintOffline } from './mint.js';
import { printJson } from './output.js';
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
        return await withKeys(configFile, (keys, actor) =>
          accountsCommand(sub, rest, values, keys, actor),
        );
      case 'apply':
        if (sub !== undefined)
          throw new UsageError('usage: keygate apply -f FILE [--dry-run] [--prune]');
        return await applyCommand(values, configFile);
      case 'keys':
        // Offline minting needs no store: it must work where no keygate or Redis is reachable.
        if (sub === 'mint') {
          if (!values.offline)
            throw new UsageError(
              'keys mint needs --offline (use keys create to issue a key into the store)',
            );
          return await mintOffline(rest, values, configFile);
        }
        return await withKeys(configFile, (keys, actor) =>
          keysCommand(sub, rest, values, keys, actor),
        );
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    return reportError(err, json);
  }
}
