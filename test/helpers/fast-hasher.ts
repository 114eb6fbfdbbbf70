import { createHash, timingSafeEqual } from 'node:crypto';
import type { Hasher } from '../../src/keys/hasher.js';

/**
 * In-memory Hasher for unit tests: SHA-256 instead of argon2id, so tests stay fast.
 * Counts calls, and can be held open to test single flight and the pool bound.
 */
export class FastHasher implements Hasher {
  verifyCalls = 0;
  hashCalls = 0;
  gate: Promise<void> | undefined;

  async hash(key: string): Promise<string> {
    this.hashCalls++;
    return `$fake$${createHash('sha256').update(key).digest('hex')}`;
  }

  async verify(phc: string, key: string): Promise<boolean> {
    this.verifyCalls++;
    if (this.gate) await this.gate;
    const expected = Buffer.from(phc);
    const actual = Buffer.from(`$fake$${createHash('sha256').update(key).digest('hex')}`);
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
}
