import type { AccountFilters } from './account-filters.js';

/** Who a verified key speaks for: what the policy and the identity headers need, no secrets. */
export interface Principal {
  readonly keyId: string;
  readonly account: string;
  readonly role: string;
  readonly scopes: ReadonlySet<string>;
  /** Unix seconds; 0 = never. */
  readonly expiresAt: number;
  /** The account's data filters (frozen), or undefined when it sees every team's data. */
  readonly filters: AccountFilters | undefined;
  /** The account's own quota (DESIGN §16); undefined: its role's default from config, if any. */
  readonly rateLimit: { readonly requests: number; readonly perSeconds: number } | undefined;
}
