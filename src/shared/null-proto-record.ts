declare const nullProtoBrand: unique symbol;

/**
 * A record with no prototype: no key, whoever chose it, can reach `__proto__`, `constructor`,
 * `toString` or any other inherited property. The brand means it can only come from
 * `nullProtoRecord()`, which is what the client-keyed-maps lint test recognises as safe to
 * index with arbitrary strings.
 */
export type NullProtoRecord<T> = { [key: string]: T } & { readonly [nullProtoBrand]: true };

/** A fresh null-prototype record, optionally filled from `entries` (later entries win). */
export function nullProtoRecord<T>(entries?: Iterable<readonly [string, T]>): NullProtoRecord<T> {
  const record = Object.create(null) as NullProtoRecord<T>;
  if (entries !== undefined) for (const [key, value] of entries) record[key] = value;
  return record;
}

/**
 * `record[key]` for a record with a prototype (config tables, constant maps), seeing own
 * entries only: a key such as "constructor" finds nothing instead of Object's constructor.
 */
export function ownEntry<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  // own-key: Object.hasOwn has just said the key is the record's own
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
