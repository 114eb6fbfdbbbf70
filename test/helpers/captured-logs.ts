/**
 * The suite's independent leak oracle (DESIGN §12 invariant 5).
 *
 * It knows every key the tests were handed (the helpers that issue keys register them here)
 * and looks for each one, literally, in everything keygate wrote or sent: every log chunk any
 * test captured (in-process sinks, `keygate serve` children, the CLI's stderr) and every
 * request the RecordingUpstream received (target and raw headers; bodies are forwarded opaque
 * by design and are not looked at). It uses nothing from src — no pattern, no parser — so a
 * miss in keygate's masking cannot hide itself from the check. leak-check.ts runs it after
 * every test file.
 */

/** Every log chunk captured in this test file's process. */
export const capturedLogs: string[] = [];

/** Every request the RecordingUpstream received: method, target and raw header lines. */
export const upstreamRecords: string[] = [];

/** Every key handed to a test (full key → its secret half). */
const issuedKeys = new Map<string, string>();

/**
 * Other secrets keygate holds (an upstream credential): looked for in logs only, since the
 * upstream receives them legitimately. Each with a label for the failure message.
 */
const logSecrets = new Map<string, string>();

/** Keys a test sends to a forbidden place on purpose, each with the test and the reason. */
const allowed = new Map<string, string>();

export function captureLog(text: string): void {
  if (text) capturedLogs.push(text);
}

export function captureUpstreamRequest(method: string, url: string, rawHeaders: string[]): void {
  const lines = [`${method} ${url}`];
  for (let i = 0; i < rawHeaders.length; i += 2)
    lines.push(`${rawHeaders[i]}: ${rawHeaders[i + 1]}`);
  upstreamRecords.push(lines.join('\n'));
}

/**
 * The secret half of a key: everything after the second "_" (43 secret + 6 checksum
 * characters). Found with indexOf, not with any pattern from src.
 */
export function secretHalf(key: string): string {
  const first = key.indexOf('_');
  const second = key.indexOf('_', first + 1);
  return second === -1 ? '' : key.slice(second + 1);
}

/** Records a key a test was given, so the oracle looks for it. Ignores non-keys. */
export function registerIssuedKey(key: unknown): void {
  if (typeof key !== 'string') return;
  const secret = secretHalf(key);
  // A real secret half is 49 characters; shorter strings would only produce false alarms.
  if (secret.length >= 43) issuedKeys.set(key, secret);
}

/** Registers every key-shaped string in a text (the CLI prints keys on stdout). */
export function registerKeysIn(text: string): void {
  // The test's own notion of a key's shape, deliberately not key-format.ts's.
  for (const match of text.matchAll(/[a-z][a-z0-9]{0,15}_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}/g)) {
    registerIssuedKey(match[0]);
  }
}

/** Registers every `key` string field in a JSON response body (admin create/rotate). */
export function registerKeysInJson(value: unknown, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  for (const [name, field] of Object.entries(value)) {
    if (name === 'key') registerIssuedKey(field);
    else registerKeysInJson(field, depth + 1);
  }
}

/**
 * Records a secret that is not a key (e.g. an upstream credential) so the oracle fails the
 * file if it appears in any captured log chunk. Upstream records are not searched for it.
 */
export function registerSecret(value: string, label: string): void {
  // Short values would match by accident and prove nothing.
  if (value.length < 16) throw new Error(`registerSecret(${label}): use a value of 16+ characters`);
  logSecrets.set(value, label);
}

/**
 * Exempts one key from the oracle. Only for a test that sends the key somewhere forbidden on
 * purpose and asserts what happens itself; `why` names the test and the reason.
 */
export function allowLeak(key: string, why: string): void {
  allowed.set(key, why);
}

export interface Leak {
  key: string;
  /** "log" or "upstream", and whether the full key or only its secret half was found. */
  where: string;
  excerpt: string;
}

function excerpt(text: string, at: number): string {
  return text.slice(Math.max(0, at - 60), at + 120);
}

/** Every issued key (or its secret half) found in a captured log chunk or upstream record. */
export function findLeaks(): Leak[] {
  const leaks: Leak[] = [];
  const sources: Array<[string, readonly string[]]> = [
    ['log', capturedLogs],
    ['upstream', upstreamRecords],
  ];
  for (const [key, secret] of issuedKeys) {
    if (allowed.has(key)) continue;
    for (const [where, texts] of sources) {
      for (const text of texts) {
        if (text.includes(key)) {
          leaks.push({
            key,
            where: `${where}: full key`,
            excerpt: excerpt(text, text.indexOf(key)),
          });
        } else if (text.includes(secret)) {
          leaks.push({
            key,
            where: `${where}: secret half`,
            excerpt: excerpt(text, text.indexOf(secret)),
          });
        }
      }
    }
  }
  for (const [secret, label] of logSecrets) {
    for (const text of capturedLogs) {
      if (text.includes(secret)) {
        leaks.push({
          key: label,
          where: 'log: secret',
          excerpt: excerpt(text, text.indexOf(secret)),
        });
      }
    }
  }
  return leaks;
}

/** How many non-key secrets the oracle is watching. */
export function registeredSecretCount(): number {
  return logSecrets.size;
}

/** How many keys the oracle is watching (a check that watches nothing proves nothing). */
export function issuedKeyCount(): number {
  return issuedKeys.size;
}
