import type { CredentialSource } from '../credentials/extract.js';
import type { ErrorCode } from '../errors.js';
import type { Principal } from '../keys/principal.js';

export type Decision = 'allow' | 'deny' | 'error';

/** What one request learned on its way through the stages; read once, by the access log. */
export interface RequestContext {
  readonly requestId: string;
  readonly startedAt: number;
  /** Read at the start: the socket may be detached by the time the response closes. */
  readonly remoteAddress: string;
  credentialSource?: CredentialSource;
  principal?: Principal;
  /** Whose key record an expired/revoked/disabled refusal named; not proven (no argon2 ran). */
  refusedKey?: { keyId: string; account: string };
  route?: string;
  decision?: Decision;
  /** "allow", or the code that refused the request at the credential, key or policy stage. */
  auth?: string;
  errorCode?: ErrorCode;
  upstreamStatus?: number;
  upstreamMs?: number;
}
