import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ID_LENGTH = 12;
const SECRET_LENGTH = 43; // 62^43 > 2^256: 32 random bytes fit exactly
const CHECKSUM_LENGTH = 6; // 62^6 > 2^32

export interface ParsedKey {
  /** Public id: safe to log and to show in lists. */
  readonly id: string;
  /** The whole presented key: secret, never logged. */
  readonly full: string;
}

export interface GeneratedKey extends ParsedKey {}

function toBase62(value: bigint, width: number): string {
  let out = '';
  let n = value;
  while (n > 0n) {
    out = ALPHABET[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out.padStart(width, '0');
}

function randomBase62(length: number): string {
  // Rejection sampling keeps every character uniformly distributed (256 is not a multiple of 62).
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

function checksum(body: string): string {
  return toBase62(BigInt(crc32(body)), CHECKSUM_LENGTH);
}

/** Makes a fresh key: `<prefix>_<id>_<secret><checksum>`. */
export function generateKey(prefix: string): GeneratedKey {
  const id = randomBase62(ID_LENGTH);
  const secret = toBase62(BigInt(`0x${randomBytes(32).toString('hex')}`), SECRET_LENGTH);
  const body = `${prefix}_${id}_${secret}`;
  return { id, full: body + checksum(body) };
}

/**
 * Checks shape and checksum without any I/O, so typos and garbage never reach the store.
 * Returns null for anything that is not a well-formed key with this deployment's prefix.
 */
export function parseKey(candidate: string, prefix: string): ParsedKey | null {
  const expectedLength = prefix.length + 2 + ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH;
  if (candidate.length !== expectedLength) return null;
  if (!candidate.startsWith(prefix) || candidate[prefix.length] !== '_') return null;
  const idStart = prefix.length + 1;
  if (candidate[idStart + ID_LENGTH] !== '_') return null;
  const id = candidate.slice(idStart, idStart + ID_LENGTH);
  const rest = candidate.slice(idStart + ID_LENGTH + 1);
  if (!BASE62.test(id) || !BASE62.test(rest)) return null;
  const bodyLength = candidate.length - CHECKSUM_LENGTH;
  if (checksum(candidate.slice(0, bodyLength)) !== candidate.slice(bodyLength)) return null;
  return { id, full: candidate };
}

const BASE62 = /^[0-9A-Za-z]+$/;

// No key regex is exported: one anchored on word boundaries missed `a_<key>` and `<key>x`.
// Logs are masked by run length (telemetry/mask-secrets.ts); requests are checked with
// containsKey after percent-decoding (key-in-request.ts).

/**
 * True when `text` contains a well-formed key of this prefix (checksum included). Used to
 * refuse URLs that carry a key: the query string is forwarded untouched, so a key pasted
 * there would reach the upstream and its logs.
 */
export function containsKey(text: string, prefix: string): boolean {
  const marker = `${prefix}_`;
  const length = prefix.length + 2 + ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH;
  for (let at = text.indexOf(marker); at !== -1; at = text.indexOf(marker, at + 1)) {
    if (parseKey(text.slice(at, at + length), prefix) !== null) return true;
  }
  return false;
}

export function isValidKeyId(id: string): boolean {
  return id.length === ID_LENGTH && BASE62.test(id);
}
