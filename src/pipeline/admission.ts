import type { CredentialSource } from '../credentials/extract.js';
import type { KeygateError } from '../errors.js';
import type { Principal } from '../keys/principal.js';
import type { Target } from './target.js';

/** A request allowed through: who is asking, where it goes, and how its body is framed. */
export interface Admission {
  readonly admitted: true;
  readonly credential: CredentialSource;
  readonly principal: Principal;
  readonly target: Target;
  readonly hasBody: boolean;
  /** `Expect: 100-continue`: 100 is sent only once the body is wanted (forward or admin). */
  readonly expectsContinue: boolean;
  /** Frees the account's in-flight slot (forward targets only); idempotent. */
  readonly release: (() => void) | undefined;
}

/** A key record an expired/revoked/disabled refusal named: a claim, not proof (no argon2 ran). */
export interface RefusedKey {
  readonly keyId: string;
  readonly account: string;
}

/** A request refused before it was allowed, with whatever admission had learned by then. */
export interface Refusal {
  readonly admitted: false;
  readonly error: KeygateError;
  readonly credential: CredentialSource | undefined;
  readonly principal: Principal | undefined;
  readonly refusedKey: RefusedKey | undefined;
  /** The rule (or "admin") the request matched before it was refused, if any. */
  readonly route: string | undefined;
}
