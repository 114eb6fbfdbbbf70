/**
 * `npm run demo`: a mock Kubecost Aggregator, keygate in front of it on the file store, its
 * ops listener on loopback, a `demo` service account (role reader) and a `demo-admin` account
 * (role admin) with fresh keys, and curl lines to try: the Aggregator through keygate, the
 * admin API (everything in the README's "Managing keys" works against it) and /metrics.
 * Ctrl-C stops everything. Ports and paths come from config/keygate.yaml and the usual
 * KEYGATE_* overrides. test/integration/demo.test.ts runs every printed curl line.
 */
import type { AddressInfo } from 'node:net';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { KeygateError } from '../src/errors.js';
import { openStore } from '../src/store/open-store.js';
import { startMockAggregator } from './mock-aggregator.js';

const config = loadConfig();
if (config.upstream === undefined) throw new Error('the demo needs an upstream (mode proxy)');
const upstreamUrl = new URL(config.upstream.url);
const aggregator = await startMockAggregator(Number(upstreamUrl.port || 80), upstreamUrl.hostname);

const { store, bus } = await openStore(config.store, { requireConnection: true });
const app = createApp({ config, store, bus });
const DEMO = { kind: 'cli', user: 'npm-run-demo' } as const;
const expiresAt = Math.floor(Date.now() / 1000) + 86_400;
const stamp = new Date().toISOString();

/** Creates the account unless an earlier run did (the file store in ./data/ persists). */
async function ensureAccount(name: string, role: string, description: string): Promise<void> {
  try {
    await app.keys.createAccount(DEMO, { name, role, description });
  } catch (err) {
    if (!(err instanceof KeygateError && err.code === 'conflict')) throw err;
  }
}

await ensureAccount('demo', 'reader', 'created by npm run demo');
// A team-scoped account: its filter is ANDed into every allocation query (DESIGN §16).
const TEAM_FILTER = 'namespace:"payments","payments-eu"';
await ensureAccount('team-payments', 'reader', 'created by npm run demo: sees only payments');
await app.keys.updateAccount(DEMO, 'team-payments', { filters: { allocation: TEAM_FILTER } });
const team = await app.keys.createKey(DEMO, 'team-payments', {
  description: `npm run demo, ${stamp}`,
  expiresAt,
});
await ensureAccount('demo-admin', 'admin', 'created by npm run demo: tries the admin API');
const reader = await app.keys.createKey(DEMO, 'demo', {
  description: `npm run demo, ${stamp}`,
  expiresAt,
});
const admin = await app.keys.createKey(DEMO, 'demo-admin', {
  description: `npm run demo, ${stamp}`,
  expiresAt,
});
// A key that exists only to be revoked by the printed DELETE line, so that line needs no
// placeholder and runs as printed.
const spare = await app.keys.createKey(DEMO, 'demo', {
  description: `npm run demo, spare key to revoke, ${stamp}`,
  expiresAt,
});

const origin = (a: AddressInfo) =>
  `http://${a.address === '0.0.0.0' ? '127.0.0.1' : a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
const base = origin(await app.listen());
const ops = origin(await app.listenOps());

const major = Number(process.versions.node.split('.')[0]);
const nodeNote = major >= 24 ? '' : ' (Node 24 LTS is recommended; 20 still works)';
const json = "-H 'content-type: application/json'";
const api = '"$KG/_keygate/v1/service-accounts';

console.log(`
keygate demo, Node ${process.version}${nodeNote}
  mock Aggregator   ${aggregator.url}      (what keygate protects)
  keygate           ${base}      (store: ${config.store.type} ${config.store.type === 'file' ? config.store.file.path : ''})
  ops listener      ${ops}      (/metrics, /healthz, /readyz; loopback only)
  service accounts  demo (role reader): key ${reader.id}; demo-admin (role admin): key ${admin.id}; both expire in 24 h

Call the Aggregator through keygate, as the reader:
  curl -s -H 'X-API-KEY: ${reader.key}' '${base}/model/allocation?window=1d&aggregate=namespace'
  curl -s -H 'X-API-KEY: ${reader.key}' '${base}/model/getProductKey'    # 403: not on the allow-list
  curl -s -X POST -H 'X-API-KEY: ${reader.key}' '${base}/model/budget'   # 403: reader has no write scope
  curl -s '${base}/model/allocation?window=1d'                           # 401: no key

A team key sees only its team's costs (account team-payments, filter ${TEAM_FILTER}):
  curl -s -H 'X-API-KEY: ${team.key}' '${base}/model/allocation?window=1d&aggregate=namespace'

Manage keys with the admin API, as demo-admin (after this export, the admin API lines of the
README's "Managing keys" work as written; for its CLI lines, KEYGATE_URL=$KG KEYGATE_API_KEY=$ADMIN):
  export KG='${base}' ADMIN='${admin.key}'
  curl -s ${api}" -H "X-API-KEY: $ADMIN"                                                 # list accounts
  curl -s -X POST ${api}/demo/api-keys" -H "X-API-KEY: $ADMIN" ${json} -d '{"description":"made with curl"}'   # create a key (shown once)
  curl -s -X DELETE ${api}/demo/api-keys/${spare.id}" -H "X-API-KEY: $ADMIN" -w '%{http_code}\\n'         # revoke a key: 204

Metrics, on the ops listener:
  curl -s '${ops}/metrics' | grep '^keygate_requests_total'

Access logs follow (JSON). Ctrl-C to stop.
`);

const stop = async () => {
  await app.close();
  aggregator.server.close();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
