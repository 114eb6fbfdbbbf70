// Fires N concurrent wrong-secret requests from its own process, so the flood's client work
// shares no event loop with the upstream or with the client whose latency is measured.
// Plain JavaScript so that it starts without a TypeScript loader eating CPU mid-measurement.
// Usage: node flood-worker.mjs <url> <key-id> <count>. Opens <count> connections, prints
// "ready", floods on a line on stdin, then prints the statuses as JSON.
import { crc32 } from 'node:zlib';
import { Pool } from 'undici';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A well-formed key (valid checksum) for `id` with the given 43-character secret. */
export function forgeKey(id, secret) {
  const body = `kg_${id}_${secret}`;
  let n = BigInt(crc32(body));
  let sum = '';
  while (n > 0n) {
    sum = ALPHABET[Number(n % 62n)] + sum;
    n /= 62n;
  }
  return body + sum.padStart(6, '0');
}

/** A well-formed key (valid checksum) for a real id with a random wrong secret. */
export function wrongSecretFor(id) {
  let secret = '';
  for (let i = 0; i < 43; i++) secret += ALPHABET[Math.floor(Math.random() * 62)];
  return forgeKey(id, secret);
}

/**
 * Opens `count` connections and sends one cheap request (no key: 401) on each, so that the
 * flood that follows is `count` concurrent requests on open connections, as an attacker would
 * send them, rather than `count` TCP handshakes at once.
 */
export async function warmPool(url, count) {
  const pool = new Pool(url, { connections: count, pipelining: 1 });
  await Promise.all(
    Array.from({ length: count }, async () => {
      const res = await pool.request({ method: 'GET', path: '/model/allocation' });
      await res.body.dump();
    }),
  );
  return pool;
}

/** Sends `count` requests at once, each on its own connection; resolves with the statuses. */
export async function flood(url, victimId, count, warmed) {
  const pool = warmed ?? new Pool(url, { connections: count, pipelining: 1 });
  try {
    return await Promise.all(
      Array.from({ length: count }, async () => {
        const res = await pool.request({
          method: 'GET',
          path: '/model/allocation',
          headers: { 'x-api-key': wrongSecretFor(victimId) },
        });
        await res.body.dump();
        return res.statusCode;
      }),
    );
  } finally {
    await pool.close();
  }
}

if (process.argv[1]?.endsWith('flood-worker.mjs')) {
  const [url, id, count] = process.argv.slice(2);
  const warmed = await warmPool(url, Number(count));
  process.stdout.write('ready\n');
  process.stdin.once('data', async () => {
    const statuses = await flood(url, id, Number(count), warmed);
    process.stdout.write(`${JSON.stringify(statuses)}\n`, () => process.exit(0));
  });
}
