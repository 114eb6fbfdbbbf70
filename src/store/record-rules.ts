import { KeygateError } from '../errors.js';
import { copyFilters, isFiltered } from '../keys/account-filters.js';
import type { AccountChange, AccountRecord, KeyChange, KeyRecord } from './key-store.js';

/** The write rules every store applies, in one place; Redis applies the same ones in Lua. */

export function missingAccount(name: string): KeygateError {
  return new KeygateError('not_found', `service account "${name}" does not exist`);
}

export function missingKey(id: string): KeygateError {
  return new KeygateError('not_found', `key ${id} does not exist`);
}

export function staleKey(id: string): KeygateError {
  return new KeygateError(
    'conflict',
    `key ${id} was changed by another request; read it again and retry`,
  );
}

export function alreadyRotated(id: string): KeygateError {
  return new KeygateError(
    'conflict',
    `key ${id} has already been rotated; rotate its replacement instead`,
  );
}

export function applyAccountChange(account: AccountRecord, change: AccountChange): AccountRecord {
  // Filters replace the whole set; none is stored as no field at all, never as `{}`. A null
  // rateLimit clears the override. A cleared field goes, so the record reads as one that never had it.
  const { filters, rateLimit, ...base } = account;
  const keptFilters = change.filters === undefined ? filters : change.filters;
  const keptRate = change.rateLimit === undefined ? rateLimit : change.rateLimit;
  return {
    ...base,
    ...(isFiltered(keptFilters) ? { filters: copyFilters(keptFilters) } : {}),
    ...(keptRate ? { rateLimit: { ...keptRate } } : {}),
    ...(change.role !== undefined ? { role: change.role } : {}),
    ...(change.description !== undefined ? { description: change.description } : {}),
    ...(change.disabled !== undefined ? { disabled: change.disabled } : {}),
    updatedAt: change.updatedAt,
  };
}

/** Compare-and-set: the change applies only to the generation the caller read. */
export function applyKeyChange(
  id: string,
  current: KeyRecord | undefined,
  expectedGeneration: number,
  change: KeyChange,
): KeyRecord {
  if (current === undefined) throw missingKey(id);
  if (current.generation !== expectedGeneration) throw staleKey(id);
  return { ...current, ...change, generation: current.generation + 1 };
}

export function checkRotatable(
  id: string,
  current: KeyRecord | undefined,
  expectedGeneration: number,
): KeyRecord {
  if (current === undefined) throw missingKey(id);
  if (current.replacedBy !== '') throw alreadyRotated(id);
  if (current.generation !== expectedGeneration) throw staleKey(id);
  return current;
}
