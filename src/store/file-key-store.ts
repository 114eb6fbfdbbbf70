import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KeygateError } from '../errors.js';
import { decodeFilters } from '../keys/account-filters.js';
import { type NullProtoRecord, nullProtoRecord } from '../shared/null-proto-record.js';
import { type AccountsBatch, applyBatchToTables, type RecordTable } from './accounts-batch.js';
import { LeaseLock, type LeaseOptions, StoreLockedError } from './file-lease-lock.js';
import type { AccountChange, AccountRecord, KeyChange, KeyRecord, KeyStore } from './key-store.js';
import {
  applyAccountChange,
  applyKeyChange,
  checkRotatable,
  missingAccount,
} from './record-rules.js';

/** Names and ids come from clients: the maps have no prototype, so "__proto__" is just a key. */
interface Document {
  version: 1;
  accounts: NullProtoRecord<AccountRecord>;
  keys: NullProtoRecord<KeyRecord>;
}

export { StoreLockedError };

/**
 * Embedded single-instance store: one JSON document held in memory, every change written
 * atomically (temp file, fsync, rename, fsync of the directory) before it is acknowledged.
 */
export class FileKeyStore implements KeyStore {
  readonly kind = 'file';
  private writes: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly lock: LeaseLock,
    private doc: Document,
  ) {}

  /**
   * Takes the store's lease lock (`<path>.lock`, see LeaseLock), then reads the file. `lock`
   * tunes the lease (tests shorten it) and reports its loss (`onLost`).
   */
  static async open(path: string, lock: LeaseOptions = {}): Promise<FileKeyStore> {
    await mkdir(dirname(path), { recursive: true });
    const held = await LeaseLock.acquire(`${path}.lock`, lock);
    try {
      return new FileKeyStore(path, held, await readDocument(path));
    } catch (err) {
      await held.release();
      throw err;
    }
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    return Object.hasOwn(this.doc.keys, id) ? (this.doc.keys[id] ?? null) : null;
  }
  async getAccount(name: string): Promise<AccountRecord | null> {
    return Object.hasOwn(this.doc.accounts, name) ? (this.doc.accounts[name] ?? null) : null;
  }
  async listAccounts(): Promise<AccountRecord[]> {
    return Object.values(this.doc.accounts).sort((a, b) => a.name.localeCompare(b.name));
  }
  async listKeys(account: string): Promise<KeyRecord[]> {
    return Object.values(this.doc.keys)
      .filter((k) => k.account === account)
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  createAccount(account: AccountRecord): Promise<void> {
    return this.mutate((doc) => {
      if (Object.hasOwn(doc.accounts, account.name)) {
        throw new KeygateError('conflict', `service account "${account.name}" already exists`);
      }
      doc.accounts[account.name] = { ...account };
    });
  }

  createKey(key: KeyRecord): Promise<void> {
    return this.mutate((doc) => {
      if (!Object.hasOwn(doc.accounts, key.account)) {
        throw new KeygateError('not_found', `service account "${key.account}" does not exist`);
      }
      if (Object.hasOwn(doc.keys, key.id)) {
        throw new KeygateError('conflict', `key id ${key.id} already exists`);
      }
      doc.keys[key.id] = { ...key };
    });
  }

  async updateAccount(name: string, change: AccountChange): Promise<AccountRecord> {
    let updated: AccountRecord | undefined;
    await this.mutate((doc) => {
      const account = own(doc.accounts, name);
      if (account === undefined) throw missingAccount(name);
      updated = applyAccountChange(account, change);
      doc.accounts[name] = updated;
    });
    return updated as AccountRecord;
  }

  async deleteAccount(name: string): Promise<string[]> {
    let ids: string[] = [];
    await this.mutate((doc) => {
      if (own(doc.accounts, name) === undefined) throw missingAccount(name);
      delete doc.accounts[name];
      ids = Object.values(doc.keys)
        .filter((k) => k.account === name)
        .map((k) => k.id);
      for (const id of ids) delete doc.keys[id];
    });
    return ids;
  }

  async updateKey(id: string, expectedGeneration: number, change: KeyChange): Promise<KeyRecord> {
    let updated: KeyRecord | undefined;
    await this.mutate((doc) => {
      updated = applyKeyChange(id, own(doc.keys, id), expectedGeneration, change);
      doc.keys[id] = updated;
    });
    return updated as KeyRecord;
  }

  rotateKey(
    oldId: string,
    expectedGeneration: number,
    next: KeyRecord,
    oldExpiresAt: number,
  ): Promise<void> {
    return this.mutate((doc) => {
      const old = checkRotatable(oldId, own(doc.keys, oldId), expectedGeneration);
      if (own(doc.accounts, next.account) === undefined) throw missingAccount(next.account);
      doc.keys[next.id] = { ...next };
      doc.keys[oldId] = {
        ...old,
        expiresAt: oldExpiresAt,
        replacedBy: next.id,
        generation: old.generation + 1,
      };
    });
  }

  /** One mutate: one write of the whole file, so a crash leaves the old file or the new one. */
  applyAccounts(batch: AccountsBatch): Promise<void> {
    return this.mutate((doc) => {
      applyBatchToTables(table(doc.accounts), table(doc.keys), batch);
    });
  }

  async touchKeys(uses: ReadonlyArray<{ id: string; lastUsedAt: number }>): Promise<void> {
    const changes = uses.filter(
      ({ id, lastUsedAt }) => (own(this.doc.keys, id)?.lastUsedAt ?? Infinity) < lastUsedAt,
    );
    if (changes.length === 0) return;
    await this.mutate((doc) => {
      for (const { id, lastUsedAt } of changes) {
        const key = own(doc.keys, id);
        if (key && lastUsedAt > key.lastUsedAt) doc.keys[id] = { ...key, lastUsedAt };
      }
    });
  }

  /** One write of the file per call (per flush), and none when no key named exists. */
  async addKeyUses(uses: ReadonlyArray<{ id: string; count: number }>): Promise<void> {
    const changes = uses.filter(
      ({ id, count }) => count > 0 && own(this.doc.keys, id) !== undefined,
    );
    if (changes.length === 0) return;
    await this.mutate((doc) => {
      for (const { id, count } of changes) {
        // Looked up again: the key may have been deleted while earlier writes were queued.
        const key = own(doc.keys, id);
        if (key) doc.keys[id] = { ...key, requestCount: (key.requestCount ?? 0) + count };
      }
    });
  }

  async ping(): Promise<void> {
    if (this.closed) throw new KeygateError('store_unavailable', 'key store is closed');
    // Another process holds the file now: this replica must leave the rotation.
    const lost = this.lock.lost;
    if (lost) throw new KeygateError('store_unavailable', lost.message);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writes.catch(() => undefined);
    await this.lock.release();
  }

  /**
   * Applies a change to a copy, persists the copy, then publishes it: a failed write leaves
   * both the file and the in-memory document exactly as they were.
   */
  private mutate(change: (doc: Document) => void): Promise<void> {
    const run = async () => {
      if (this.closed) throw new KeygateError('store_unavailable', 'key store is closed');
      try {
        this.lock.verifyHeld();
      } catch (err) {
        // Two writers would each overwrite the other's changes: the one that lost stops.
        throw new KeygateError('store_unavailable', (err as Error).message, { cause: err });
      }
      const next = cloneDocument(this.doc);
      change(next);
      try {
        await writeAtomically(this.path, `${JSON.stringify(next, null, 2)}\n`);
      } catch (err) {
        throw new KeygateError('store_unavailable', 'could not write the key store file', {
          cause: err,
        });
      }
      this.doc = next;
    };
    const result = this.writes.then(run, run);
    this.writes = result.catch(() => undefined);
    return result;
  }
}

/** Own-property lookup: ids and names come from clients, so "__proto__" must find nothing. */
function own<T>(record: NullProtoRecord<T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function table<T>(record: NullProtoRecord<T>): RecordTable<T> {
  return {
    get: (key) => own(record, key),
    set: (key, value) => {
      record[key] = value;
    },
    delete: (key) => {
      delete record[key];
    },
    values: () => Object.values(record),
  };
}

/** A deep copy that stays null-prototype (structuredClone would give plain objects back). */
function cloneDocument(doc: Document): Document {
  return {
    version: 1,
    accounts: nullProtoRecord(Object.entries(structuredClone(doc.accounts))),
    keys: nullProtoRecord(Object.entries(structuredClone(doc.keys))),
  };
}

async function readDocument(path: string): Promise<Document> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { version: 1, accounts: nullProtoRecord(), keys: nullProtoRecord() };
    throw err;
  }
  const doc = JSON.parse(text) as {
    version?: unknown;
    accounts?: Record<string, AccountRecord>;
    keys?: Record<string, KeyRecord>;
  } | null;
  if (
    doc?.version !== 1 ||
    typeof doc.accounts !== 'object' ||
    doc.accounts === null ||
    typeof doc.keys !== 'object' ||
    doc.keys === null
  ) {
    throw new Error(`${path} is not a keygate store file (version 1)`);
  }
  // A filtered account read back as unfiltered would see every team's data: refuse to open.
  for (const account of Object.values(doc.accounts)) {
    if (account?.filters !== undefined) decodeFilters(JSON.stringify(account.filters));
  }
  // JSON.parse makes "__proto__" an own key; Object.entries carries it over as one.
  return {
    version: 1,
    accounts: nullProtoRecord(Object.entries(doc.accounts)),
    keys: nullProtoRecord(Object.entries(doc.keys)),
  };
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const file = await open(tmp, 'w', 0o600);
  try {
    await file.writeFile(content);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // The rename is durable only once the directory entry is on disk.
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
