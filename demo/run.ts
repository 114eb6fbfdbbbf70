/**
 * `npm run demo`: a mock Kubecost Aggregator, keygate in front of it on the file store, a
 * `demo` service account with a fresh key, and curl lines to try. Ctrl-C stops everything.
 * Ports and paths come from config/keygate.yaml and the usual KEYGATE_* overrides.
 */
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { KeygateError } from '../src/errors.js';
import { openStore } from '../src/store/open-store.js';
import { startMockAggregator } from './mock-aggregator.js';

const config = loadConfig();
const upstreamUrl = new URL(config.upstream.url);
const aggregator = await startMockAggregator(Number(upstreamUrl.port || 80), upstreamUrl.hostname);

const store = await openStore(config.store, { requireConnection: true });
const app = createApp({ config, store });
const DEMO = { kind: 'cli', user: 'npm-run-demo' } as const;

try {
  await app.keys.createAccount(DEMO, {
    name: 'demo',
    role: 'reader',
    description: 'created by npm run demo',
  });
} catch (err) {
  if (!(err instanceof KeygateError && err.code === 'conflict')) throw err;
}
const issued = await app.keys.createKey(DEMO, 'demo', {
  description: `npm run demo, ${new Date().toISOString()}`,
  expiresAt: Math.floor(Date.now() / 1000) + 86_400,
});
const address = await app.listen();
const base = `http://${address.address === '0.0.0.0' ? '127.0.0.1' : address.address}:${address.port}`;

console.log(`
keygate demo
  mock Aggregator   ${aggregator.url}      (what keygate protects)
  keygate           ${base}      (store: ${config.store.type} ${config.store.type === 'file' ? config.store.file.path : ''})
  service account   demo (role reader), key ${issued.id}, expires in 24 h

Try:
  curl -s -H 'X-API-KEY: ${issued.key}' '${base}/model/allocation?window=1d&aggregate=namespace'
  curl -s -H 'X-API-KEY: ${issued.key}' '${base}/model/getProductKey'    # 403: not on the allow-list
  curl -s -X POST -H 'X-API-KEY: ${issued.key}' '${base}/model/budget'   # 403: reader has no write scope
  curl -s '${base}/model/allocation?window=1d'                           # 401: no key

Access logs follow (JSON). Ctrl-C to stop.
`);

const stop = async () => {
  await app.close();
  aggregator.server.close();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
