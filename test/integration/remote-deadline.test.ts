import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, it, onTestFinished } from 'vitest';
import { RemoteError, RemoteKeyManagement } from '../../src/cli/remote-key-management.js';

const KEY = 'kg_AAAAAAAAAAAA_secretsecretsecretsecretsecretsecretsecret0000000';
const ACTOR = { kind: 'cli', user: 'test' } as const;

/**
 * A server that answers at once and then trickles its body a byte at a time, each byte well
 * inside undici's idle bodyTimeout: only a deadline over the whole call ends it. Without one
 * the remote CLI waits as long as the server likes (forever, for a hostile or broken one).
 */
it('a body trickled forever is cut at the client timeout (a whole-call deadline, not an idle one)', async () => {
  const open: ServerResponse[] = [];
  const server = createServer((_req, res) => {
    open.push(res);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"items":[');
    const tick = setInterval(() => res.write(' '), 50);
    res.on('close', () => clearInterval(tick));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    for (const res of open) res.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  const base = `http://127.0.0.1:${port}`;
  const client = new RemoteKeyManagement({ base, shown: base, apiKey: KEY }, { timeoutMs: 400 });
  const started = Date.now();
  const err = await client.listAccounts(ACTOR).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RemoteError);
  expect((err as Error).message).toBe(
    `keygate at ${base} answered 200 but its answer did not arrive in time`,
  );
  expect((err as Error).message).not.toContain(KEY);
  // Not a speed assertion: the point is that it ended at all, long before the test's own limit.
  expect(Date.now() - started).toBeLessThan(4_000);
}, 8_000);

it('a server that never sends its headers is cut at the client timeout too', async () => {
  const server = createServer(() => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  const base = `http://127.0.0.1:${port}`;
  const client = new RemoteKeyManagement({ base, shown: base, apiKey: KEY }, { timeoutMs: 400 });
  const err = await client.listAccounts(ACTOR).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RemoteError);
  expect((err as Error).message).toBe(`cannot reach keygate at ${base}: no answer in time`);
}, 8_000);
