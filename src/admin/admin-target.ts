import type { IncomingMessage, ServerResponse } from 'node:http';
import { KeygateError } from '../errors.js';
import type { KeyService } from '../keys/key-service.js';
import type { Principal } from '../keys/principal.js';
import { ADMIN_API_PREFIX, isUnder } from '../shared/keygate-prefix.js';
import { handleAdmin } from './admin-api.js';

/** The admin API as a target of the request path: a normalised path under KEYGATE_PREFIX. */
export interface AdminTarget {
  readonly kind: 'admin';
  readonly path: string;
}

/** The route name requests to the admin API are counted and logged under. */
export const ADMIN_ROUTE_NAME = 'admin';

/**
 * Admission to the admin API: the admin scope, whatever the endpoint or version (a key
 * without it learns nothing about which endpoints exist).
 */
export function admitAdmin(principal: Principal, path: string): AdminTarget {
  if (!principal.scopes.has('admin')) {
    throw new KeygateError('insufficient_scope', 'the keygate API needs the admin scope');
  }
  return { kind: 'admin', path };
}

/**
 * Serves an admitted admin request: only ADMIN_API_PREFIX is a version that exists (else 404).
 * `100 Continue` goes out only here, once the request was admitted and the endpoint exists.
 */
export async function serveAdmin(
  req: IncomingMessage,
  res: ServerResponse,
  target: AdminTarget,
  principal: Principal,
  keys: KeyService,
  requestId: string,
  expectsContinue: boolean,
): Promise<void> {
  if (!isUnder(target.path, ADMIN_API_PREFIX)) {
    throw new KeygateError('not_found', 'no such keygate API endpoint');
  }
  if (expectsContinue) res.writeContinue();
  await handleAdmin(req, res, target.path, principal, keys, requestId);
}
