import { KeygateError } from '../../errors.js';
import {
  ceilSeconds,
  type RateDecision,
  type RateLimit,
  type RateLimiter,
} from '../../policy/rate-limiter.js';
import type { RedisClient } from './client.js';

// One fixed window per account (see RateLimiter), decided in ONE atomic script, so two
// replicas can never both take the last slot. KEYS[1]: the account's counter for this window
// length; ARGV: requests allowed, window length in ms. Returns {allowed 0|1, count, ms left}.
// The window's end is the key's expiry, kept by Redis's own clock: replicas' clocks play no
// part (no TIME is needed, and no timestamp crosses the network). A counter without an expiry
// (never written so, but a stray SET would make one) or on its last millisecond opens a new
// window rather than blocking the account for ever. Refused requests are not counted.
const TAKE = `
local limit = tonumber(ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then
  redis.call('SET', KEYS[1], 1, 'PX', ARGV[2])
  return {1, 1, tonumber(ARGV[2])}
end
local n = tonumber(redis.call('GET', KEYS[1]))
if n >= limit then return {0, n, ttl} end
return {1, redis.call('INCR', KEYS[1]), ttl}`;

interface RateLimitCommands {
  kgRateLimitTake(
    key: string,
    requests: string,
    windowMs: string,
  ): Promise<[number, number, number]>;
}

/**
 * The Redis store's limiter: shared by every replica on the same Redis. Key
 * `<keyPrefix>rl:{<account>}:<perSeconds>`: the hash tag puts every counter of an account on
 * one Cluster slot, and the script touches that one key only, so it runs on Cluster as on a
 * single Redis. Account names are `[a-z0-9-]` (ACCOUNT_NAME), so no name can close the tag.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly commands: RateLimitCommands;

  constructor(
    client: RedisClient,
    private readonly prefix: string,
  ) {
    client.defineCommand('kgRateLimitTake', { numberOfKeys: 1, lua: TAKE });
    // defineCommand adds the method at run time; ioredis cannot type it.
    this.commands = client as unknown as RateLimitCommands;
  }

  counterKey(account: string, limit: RateLimit): string {
    return `${this.prefix}rl:{${account}}:${limit.perSeconds}`;
  }

  async take(account: string, limit: RateLimit): Promise<RateDecision> {
    let answer: [number, number, number];
    try {
      answer = await this.commands.kgRateLimitTake(
        this.counterKey(account, limit),
        String(limit.requests),
        String(limit.perSeconds * 1000),
      );
    } catch (err) {
      throw new KeygateError('store_unavailable', 'rate limit store unavailable', { cause: err });
    }
    const [allowed, count, msLeft] = answer;
    return {
      allowed: allowed === 1,
      limit,
      remaining: allowed === 1 ? Math.max(0, limit.requests - count) : 0,
      resetSeconds: ceilSeconds(msLeft),
    };
  }
}
