import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, it, onTestFinished } from 'vitest';
import { startGateway, testConfig } from '../helpers/gateway.js';
import { RawSession } from '../helpers/raw-socket.js';
import { until } from '../helpers/until.js';

// A client that hangs up while the upstream is still working must not leave the upstream
// request (and its pooled connection) running: keygate cancels it. The upstream here is a
// plain node:http server that never answers and records when its side of the request closes.
it('a client that hangs up cancels its upstream request at once; the access line says 499', async () => {
  const pending: ServerResponse[] = [];
  let cancelled = 0;
  const upstream = createServer((_req, res) => {
    pending.push(res);
    res.on('close', () => {
      if (!res.writableFinished) cancelled++;
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });
  const gw = await startGateway({
    config: testConfig(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, {
      upstream: { timeout: '60s' },
    }),
  });
  onTestFinished(() => gw.close());
  const { key } = await gw.issue('hangs-up', 'reader');

  for (let i = 1; i <= 3; i++) {
    const session = await RawSession.open(gw.port);
    session.write(`GET /model/slow HTTP/1.1\r\nHost: a\r\nX-API-Key: ${key}\r\n\r\n`);
    await until(() => pending.length === i, 'the upstream to receive the request');
    session.destroy();
    await until(() => cancelled === i, 'the upstream to see its request cancelled');
  }
  const lines = await gw.logs.waitForAccess(3);
  expect(lines.map((l) => [l.status, l.route, l.decision])).toEqual([
    [499, 'slow', 'allow'],
    [499, 'slow', 'allow'],
    [499, 'slow', 'allow'],
  ]);
});
