import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthzBackend,
  authzDataPlaneCases,
  startAuthzBackend,
} from '../helpers/authz-data-plane.js';
import { send } from '../helpers/http.js';
import { type RunningNginx, startNginx } from '../helpers/nginx.js';

// The shipped snippet, exactly as an operator copies it: the internal auth location as is, and
// the "protected location" block un-commented. Only the two addresses are filled in.
const SNIPPET = readFileSync(
  new URL('../../deploy/authz/nginx/keygate-authz.conf', import.meta.url),
  'utf8',
);
function shipped(keygate: string, aggregator: string): string {
  const protectedBlock = SNIPPET.slice(SNIPPET.indexOf('# protected location'))
    .split('\n')
    .filter((l) => l.startsWith('#   '))
    .map((l) => l.slice(4))
    .join('\n');
  const authLocation = SNIPPET.slice(0, SNIPPET.indexOf('# protected location'));
  return `${authLocation}\n${protectedBlock}`
    .replaceAll('KEYGATE', keygate)
    .replaceAll('AGGREGATOR', aggregator);
}

let backend: AuthzBackend;
let nginx: RunningNginx;
let url: string;

beforeAll(async () => {
  backend = await startAuthzBackend('nginx-team');
  nginx = await startNginx(() => shipped(backend.keygateHost, backend.aggregatorHost));
  url = `http://127.0.0.1:${nginx.port}`;
});

afterAll(async () => {
  await nginx?.stop();
  await backend?.close();
});

describe('nginx auth_request in front of the Aggregator, keygate answering (shipped snippet)', () => {
  authzDataPlaneCases(() => ({ ...backend, url, account: 'nginx-team' }), {
    keygateBodies: false,
    upstreamPath: (p) => p.replace(/^\/model/, ''),
  });

  it('the Aggregator gets the target keygate judged, minus /model: raw bytes, or nginx’s decoded equivalent', async () => {
    backend.upstream.reset();
    const plain = '/model/allocation/summary?window=7d&filter=namespace%3A%22a%2Fb%22&x=%7E';
    const encoded = '/model/allocation/%41b?window=7d';
    for (const target of [plain, encoded]) {
      expect((await send(url, target, { headers: { 'x-api-key': backend.reader } })).status).toBe(
        200,
      );
    }
    expect(backend.upstream.requests.map((r) => r.url)).toEqual([
      plain.slice('/model'.length),
      '/allocation/Ab?window=7d',
    ]);
  });

  it('a path with an encoded separator never reaches the Aggregator', async () => {
    backend.upstream.reset();
    const statuses: number[] = [];
    // nginx decodes %2F and %2E before choosing a location: the first leaves /model/ (nginx's
    // own 404); the second stays in it, and keygate reads %2e%2e as `..` too (RFC 3986), so it
    // judges /model/etl, a write route the reader may not call: 403, as nginx would route it.
    for (const target of [
      '/model/allocation%2F..%2F..%2Fetl/run',
      '/model/allocation/%2e%2e/etl',
    ]) {
      statuses.push((await send(url, target, { headers: { 'x-api-key': backend.reader } })).status);
    }
    expect(statuses).toEqual([404, 403]);
    expect(backend.upstream.requests).toHaveLength(0);
  });
});
