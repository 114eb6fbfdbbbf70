import { loadConfig, resolveConfigPath } from '../config/load.js';
import { redactUrl } from '../shared/redact-url.js';
import { printJson } from './output.js';

/** `keygate config check [FILE]`: validates the config and prints a summary without secrets. */
export function configCheck(file: string | undefined, json: boolean): number {
  const path = resolveConfigPath({ file });
  const loaded = loadConfig({ file: path });
  // Absent only in mode authz, which forwards nothing; proxy-mode output is unchanged.
  const upstream = loaded.upstream === undefined ? undefined : redactUrl(loaded.upstream.url);
  if (json) {
    // A summary only: the upstream URL without its user info, no credential, no store URL.
    printJson({
      ok: true,
      path,
      store: loaded.store.type,
      upstream: upstream ?? null,
      ...(loaded.mode === 'proxy' ? {} : { mode: loaded.mode }),
      routes: loaded.routes.length,
      roles: Object.keys(loaded.roles),
    });
    return 0;
  }
  console.error(
    `${path}: ok (store ${loaded.store.type}, upstream ${upstream ?? `none (mode ${loaded.mode})`}, ${loaded.routes.length} routes, roles ${Object.keys(loaded.roles).join(', ')})`,
  );
  const credential = loaded.upstream?.credential;
  // Where the credential comes from, never the value: the file is not even opened here (it
  // is a Secret mounted only where keygate runs; `serve` refuses to start without it).
  if (credential !== undefined) {
    console.error(`upstream credential: ${credential.header} from ${credential.file}`);
  }
  return 0;
}
