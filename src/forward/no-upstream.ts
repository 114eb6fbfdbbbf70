import { KeygateError } from '../errors.js';
import type { UpstreamClient } from './upstream-client.js';

/**
 * The upstream of a keygate in authz mode, which has none: admission never makes a forward
 * target there (non-keygate paths are 404 before any key is verified), so this is only a last
 * guard that fails closed — with the same 404 — should that ever change.
 */
export const NO_UPSTREAM: UpstreamClient = {
  forward: async () => {
    throw new KeygateError('not_found', 'keygate runs in authz mode: nothing is proxied');
  },
  close: async () => {},
};
