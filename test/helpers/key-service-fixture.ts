import { type AuditEntry, KeyService } from '../../src/keys/key-service.js';
import { VerifyPool } from '../../src/keys/verify-pool.js';
import type { Invalidation } from '../../src/store/invalidation-bus.js';
import { FakeClock } from './fake-clock.js';
import { FastHasher } from './fast-hasher.js';
import { MemoryKeyStore } from './memory-key-store.js';

export interface KeyServiceFixture {
  store: MemoryKeyStore;
  clock: FakeClock;
  service: KeyService;
  /** Every invalidation the service published, in order. */
  events: Invalidation[];
  /** Every audit line the service wrote, in order. */
  audit: AuditEntry[];
}

/**
 * A KeyService on a memory store, a fake clock and a fast hasher, recording what it publishes
 * and audits: the unit tests' one way to build the service layer.
 */
export function keyServiceFixture(roles: Record<string, string[]>): KeyServiceFixture {
  const store = new MemoryKeyStore();
  const clock = new FakeClock();
  const events: Invalidation[] = [];
  const audit: AuditEntry[] = [];
  const service = new KeyService({
    store,
    hasher: new FastHasher(),
    pool: new VerifyPool(2, 8),
    clock,
    prefix: 'kg',
    roles,
    invalidate: async (event) => {
      events.push(event);
    },
    audit: (entry) => audit.push(entry),
  });
  return { store, clock, service, events, audit };
}
