import { type ErrorCode, KeygateError } from '../errors.js';

/** Refusals that name a stored key record without proving the caller holds its secret. */
export type AttributedRefusalCode = Extract<
  ErrorCode,
  'expired_key' | 'revoked_key' | 'account_disabled'
>;

/**
 * A 401 for a key id whose record exists and is expired, revoked or whose account is disabled,
 * carrying that record's key id and account so the access log and the request counter can
 * name them (an operator's first question is "whose client is still using a dead key?").
 *
 * These statuses are answered before argon2 (DESIGN §12.6), so the caller has NOT proven it
 * holds the secret: anyone who knows a key id can produce this refusal. The attribution is
 * therefore a claim, logged with `key_proven: false`. invalid_key is never attributed: an
 * unknown id names nobody, and a wrong secret for a live id would let a forger charge its
 * traffic to the victim's account as if the key were in use.
 */
export class AttributedKeyRefusal extends KeygateError {
  constructor(
    code: AttributedRefusalCode,
    message: string,
    readonly keyId: string,
    readonly account: string,
  ) {
    super(code, message);
  }
}
