import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { send } from '../helpers/http.js';
import { freePort } from '../helpers/redis-server.js';

const ROOT = resolve(import.meta.dirname, '../..');

it('npm run demo: a newcomer gets Aggregator data through keygate with the printed curl line', async () => {
  const port = await freePort();
  const upstreamPort = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'demo/run.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      KEYGATE_PORT: String(port),
      KEYGATE_UPSTREAM_URL: `http://127.0.0.1:${upstreamPort}`,
      KEYGATE_FILE_PATH: join(mkdtempSync(join(tmpdir(), 'keygate-demo-')), 'keygate.json'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 20_000;
    while (!out.includes('Ctrl-C to stop') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain('Ctrl-C to stop');

    const curl = /curl -s -H 'X-API-KEY: (\S+)' '(http:\/\/[^']+\/model\/allocation\?[^']+)'/.exec(
      out,
    );
    expect(curl, out).not.toBeNull();
    const [, key, url] = curl as RegExpExecArray;
    const target = new URL(url as string);
    const res = await send(target.origin, target.pathname + target.search, {
      headers: { 'x-api-key': key as string },
    });
    expect(res.status).toBe(200);
    const data = (res.json.data as Array<Record<string, { totalCost: number }>>)[0]!;
    expect(data.kubecost?.totalCost).toBeGreaterThan(0);

    const blocked = await send(target.origin, '/model/getProductKey', {
      headers: { 'x-api-key': key as string },
    });
    expect(blocked.status).toBe(403);
    expect(blocked.text).not.toContain('DEMO-PRODUCT-KEY');
    expect((await send(target.origin, '/model/allocation?window=1d')).status).toBe(401);
  } finally {
    child.kill('SIGINT');
  }
  expect(await exited).toBe(0);
});
