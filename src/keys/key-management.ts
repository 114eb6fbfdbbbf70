import type { KeyService } from './key-service.js';

/**
 * What the management commands (`keygate accounts …`, `keygate keys …`) need: the seam between
 * the CLI and where accounts live. Implemented by KeyService (local mode: the store itself) and
 * by RemoteKeyManagement (remote mode: a running keygate's admin API), so the commands, their
 * output and their exit codes are the same code in both modes.
 *
 * Picked from KeyService rather than restated, so a signature can never drift between the two;
 * a new command adds its method's name here (and to the HTTP client).
 */
export type KeyManagement = Pick<
  KeyService,
  | 'createAccount'
  | 'listAccounts'
  | 'getAccount'
  | 'updateAccount'
  | 'deleteAccount'
  | 'createKey'
  | 'listKeys'
  | 'listExpiringKeys'
  | 'revokeKey'
  | 'rotateKey'
  | 'applyAccounts'
>;
