import type { RedisClient } from './client.js';

// Creates a hash only if it does not exist yet: one round trip, atomic, single key (Cluster-safe).
const CREATE_HASH = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`;

// Compare-and-set on a key record. ARGV: expected generation, EXPIREAT time (0 = leave),
// "1" to refuse a key already replaced by rotation, then field/value pairs.
// Returns the new generation, -1 missing, -2 stale generation, -3 already rotated.
const UPDATE_KEY = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local gen = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if ARGV[3] == '1' and (redis.call('HGET', KEYS[1], 'replaced_by') or '') ~= '' then return -3 end
if gen ~= tonumber(ARGV[1]) then return -2 end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
redis.call('HSET', KEYS[1], 'generation', gen + 1)
local at = tonumber(ARGV[2])
if at > 0 then redis.call('EXPIREAT', KEYS[1], at) end
return gen + 1`;

// Raises last_used_at, never lowers it, and never recreates a deleted record.
const TOUCH_KEY = `
local current = redis.call('HGET', KEYS[1], 'last_used_at')
if not current then return 0 end
if tonumber(ARGV[1]) > tonumber(current) then
  redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1])
  return 1
end
return 0`;

// Adds to a key's request count; like TOUCH_KEY, never recreates a deleted (or expired) record:
// HINCRBY alone would make a hash holding nothing but request_count.
const ADD_KEY_USES = `
if redis.call('HEXISTS', KEYS[1], 'id') == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'request_count', ARGV[1])
return 1`;

// Updates fields of an existing hash only.
const UPDATE_HASH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`;

/** UPDATE_KEY's negative answers. */
export const UPDATE_KEY_MISSING = -1;
export const UPDATE_KEY_STALE = -2;
export const UPDATE_KEY_ROTATED = -3;

/** The store's Lua scripts as typed commands on its client. */
export interface StoreScripts {
  kgCreateHash(key: string, ...fieldsAndValues: string[]): Promise<number>;
  kgUpdateKey(key: string, ...args: string[]): Promise<number>;
  kgTouchKey(key: string, lastUsedAt: string): Promise<number>;
  kgAddKeyUses(key: string, count: string): Promise<number>;
  kgUpdateHash(key: string, ...fieldsAndValues: string[]): Promise<number>;
}

/** Registers the scripts (EVALSHA with EVAL fallback, per ioredis) and returns them typed. */
export function defineScripts(client: RedisClient): StoreScripts {
  client.defineCommand('kgCreateHash', { numberOfKeys: 1, lua: CREATE_HASH });
  client.defineCommand('kgUpdateKey', { numberOfKeys: 1, lua: UPDATE_KEY });
  client.defineCommand('kgTouchKey', { numberOfKeys: 1, lua: TOUCH_KEY });
  client.defineCommand('kgAddKeyUses', { numberOfKeys: 1, lua: ADD_KEY_USES });
  client.defineCommand('kgUpdateHash', { numberOfKeys: 1, lua: UPDATE_HASH });
  // defineCommand adds the methods at run time; ioredis cannot type them.
  return client as unknown as StoreScripts;
}
