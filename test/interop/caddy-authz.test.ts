import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import {
  type AuthzBackend,
  authzDataPlaneCases,
  startAuthzBackend,
} from '../helpers/authz-data-plane.js';
import { freePort } from '../helpers/redis-server.js';

// The shipped Caddyfile, exactly as an operator copies it; only the three addresses are filled
// in, and Caddy's admin endpoint and automatic HTTPS are turned off for a test on loopback.
const SHIPPED = readFileSync(
  new URL('../../deploy/authz/caddy/Caddyfile', import.meta.url),
  'utf8',
);

let backend: AuthzBackend;
let caddy: ChildProcess;
let url: string;

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  backend = await startAuthzBackend('caddy-team');
  const dir = mkdtempSync(join(tmpdir(), 'keygate-caddy-'));
  const port = await freePort();
  const caddyfile = join(dir, 'Caddyfile');
  writeFileSync(
    caddyfile,
    `{\n\tadmin off\n\tauto_https off\n}\n${SHIPPED.replaceAll('KEYGATE', backend.keygateHost)
      .replaceAll('AGGREGATOR', backend.aggregatorHost)
      .replaceAll(':LISTEN', `http://127.0.0.1:${port}`)}`,
  );
  let stderr = '';
  caddy = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], {
    env: { ...process.env, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir, HOME: dir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  caddy.stderr?.on('data', (c) => {
    stderr += c;
  });
  const failed = new Promise<never>((_, reject) =>
    caddy.once('error', (err) =>
      reject(new Error(`caddy could not be started (apt-get install caddy): ${err.message}`)),
    ),
  );
  const deadline = Date.now() + 10_000;
  while (!(await Promise.race([listening(port), failed]))) {
    if (Date.now() > deadline || caddy.exitCode !== null)
      throw new Error(`caddy did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  url = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  if (caddy && caddy.exitCode === null) {
    const exited = new Promise((r) => caddy.once('exit', r));
    caddy.kill('SIGTERM');
    await exited;
  }
  await backend?.close();
});

describe('Caddy forward_auth in front of the Aggregator, keygate answering (shipped Caddyfile)', () => {
  authzDataPlaneCases(() => ({ ...backend, url, account: 'caddy-team' }), {
    keygateBodies: true,
    upstreamPath: (p) => p.replace(/^\/model/, ''),
  });
});
