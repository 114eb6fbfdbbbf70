import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { registerIssuedKey } from '../helpers/captured-logs.js';
import { type HttpResult, send } from '../helpers/http.js';
import { freePort } from '../helpers/redis-server.js';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * The words of one POSIX shell line, as far as the demo prints them: '…' literal, "…" with
 * $NAME expanded, bare words with $NAME expanded, `# comment` and a `| pipe` cut off. Enough
 * to run the printed lines without a shell or curl, and strict: anything else throws.
 */
function shellWords(line: string, vars: ReadonlyMap<string, string>): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const expand = (): string => {
    const name = /^\$([A-Za-z_][A-Za-z0-9_]*)/.exec(line.slice(i));
    if (!name) throw new Error(`unsupported $ at ${i}: ${line}`);
    i += name[0].length;
    const value = vars.get(name[1] as string);
    if (value === undefined) throw new Error(`unset variable ${name[1]}`);
    return value;
  };
  while (i < line.length) {
    const c = line[i] as string;
    if (c === ' ') {
      if (word !== undefined) words.push(word);
      word = undefined;
      i++;
    } else if ((c === '#' || c === '|') && word === undefined) {
      break;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unclosed ' in ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      word ??= '';
      i++;
      while (line[i] !== '"') {
        if (i >= line.length) throw new Error(`unclosed " in ${line}`);
        if (line[i] === '$') word += expand();
        else if (line[i] === '\\' || line[i] === '`') throw new Error(`unsupported in "": ${line}`);
        else word += line[i++];
      }
      i++;
    } else if (c === '$') {
      word = (word ?? '') + expand();
    } else if ('\\`;&<>(){}*?'.includes(c)) {
      throw new Error(`unsupported shell character ${c} in ${line}`);
    } else {
      word = (word ?? '') + c;
      i++;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

interface Curl {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string;
}

/** The request a printed `curl` line makes (the options the demo uses, nothing else). */
function parseCurl(words: string[]): Curl {
  expect(words[0]).toBe('curl');
  let method: string | undefined;
  let url: URL | undefined;
  let body: string | undefined;
  const headers: Record<string, string> = {};
  for (let i = 1; i < words.length; i++) {
    const w = words[i] as string;
    if (w === '-s') continue;
    if (w === '-w')
      i++; // output format only
    else if (w === '-X') method = words[++i];
    else if (w === '-d') body = words[++i];
    else if (w === '-H') {
      const h = words[++i] as string;
      const colon = h.indexOf(':');
      headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
    } else if (/^https?:\/\//.test(w) && url === undefined) url = new URL(w);
    else throw new Error(`unexpected curl word ${w}`);
  }
  if (url === undefined) throw new Error(`no URL in ${words.join(' ')}`);
  // curl -d without -X posts, as curl does.
  const result: Curl = { method: method ?? (body === undefined ? 'GET' : 'POST'), url, headers };
  if (body !== undefined) result.body = body;
  return result;
}

it('shellWords reads quotes and variables the way a shell does, and refuses the rest', () => {
  const vars = new Map([['KG', 'http://h:1']]);
  expect(shellWords(`curl -s "$KG/a" -H 'X: $KG' -d '{"a":1}' # c`, vars)).toEqual([
    'curl',
    '-s',
    'http://h:1/a',
    '-H',
    'X: $KG',
    '-d',
    '{"a":1}',
  ]);
  expect(shellWords(`curl 'u' | grep x`, vars)).toEqual(['curl', 'u']);
  expect(() => shellWords('curl "$NOPE"', vars)).toThrow(/unset/);
  expect(() => shellWords('curl $(id)', vars)).toThrow(/unsupported/);
  expect(() => shellWords('curl a; rm b', vars)).toThrow(/unsupported/);
});

it('npm run demo: every printed curl line works as printed (reader, admin API, metrics)', async () => {
  const port = await freePort();
  const opsPort = await freePort();
  const upstreamPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'keygate-demo-'));
  onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, ['--import', 'tsx', 'demo/run.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      KEYGATE_PORT: String(port),
      KEYGATE_OPS_PORT: String(opsPort),
      KEYGATE_UPSTREAM_URL: `http://127.0.0.1:${upstreamPort}`,
      KEYGATE_FILE_PATH: join(dataDir, 'keygate.json'),
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
    expect(out).toMatch(/keygate demo, Node v\d+/);
    if (Number(process.versions.node.split('.')[0]) < 24) expect(out).toContain('Node 24');

    const lines = out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('curl ') || l.startsWith('export '));
    const vars = new Map<string, string>();
    const answers: Array<{ line: string; req: Curl; res: HttpResult }> = [];
    for (const line of lines) {
      const words = shellWords(line, vars);
      if (words[0] === 'export') {
        for (const assignment of words.slice(1)) {
          const eq = assignment.indexOf('=');
          vars.set(assignment.slice(0, eq), assignment.slice(eq + 1));
        }
        continue;
      }
      const req = parseCurl(words);
      const options: { method: string; headers: Record<string, string>; body?: string } = {
        method: req.method,
        headers: req.headers,
      };
      if (req.body !== undefined) options.body = req.body;
      const res = await send(req.url.origin, req.url.pathname + req.url.search, options);
      answers.push({ line, req, res });
    }
    const admin = vars.get('ADMIN');
    expect(admin).toMatch(/^kg_/);
    registerIssuedKey(admin);
    expect(vars.get('KG')).toBe(`http://127.0.0.1:${port}`);

    const find = (method: string, path: RegExp, key?: 'none') => {
      const hit = answers.find(
        (a) =>
          a.req.method === method &&
          path.test(a.req.url.pathname) &&
          (key === 'none') === (a.req.headers['x-api-key'] === undefined),
      );
      expect(hit, `no printed ${method} ${path} line in:\n${lines.join('\n')}`).toBeDefined();
      return hit as (typeof answers)[number];
    };

    // The reader: Aggregator data, the blocked admin route, no write scope, no key.
    const data = find('GET', /^\/model\/allocation$/);
    expect(data.res.status).toBe(200);
    const first = (data.res.json.data as Array<Record<string, { totalCost: number }>>)[0]!;
    expect(first.kubecost?.totalCost).toBeGreaterThan(0);
    const blocked = find('GET', /^\/model\/getProductKey$/);
    expect(blocked.res.status).toBe(403);
    expect(blocked.res.json.error).toBe('route_not_allowed');
    expect(blocked.res.text).not.toContain('DEMO-PRODUCT-KEY');
    expect(find('POST', /^\/model\/budget$/).res.json.error).toBe('insufficient_scope');
    expect(find('GET', /^\/model\/allocation$/, 'none').res.status).toBe(401);

    // The team key: the same query, only its namespaces (the mock applies the ANDed filter).
    const teamLines = answers.filter(
      (a) =>
        a.req.url.pathname === '/model/allocation' &&
        a.req.headers['x-api-key'] !== undefined &&
        a.req.headers['x-api-key'] !== data.req.headers['x-api-key'],
    );
    expect(teamLines).toHaveLength(1);
    registerIssuedKey(teamLines[0]!.req.headers['x-api-key']);
    const teamAnswer = teamLines[0]!.res;
    expect(teamAnswer.status).toBe(200);
    const seen = Object.keys((teamAnswer.json.data as Array<Record<string, unknown>>)[0]!).sort();
    expect(seen).toEqual(['payments', 'payments-eu']);
    expect(Object.keys(first)).toContain('kubecost');

    // The admin: list accounts, create a key (usable at once), revoke the spare key.
    const list = find('GET', /^\/_keygate\/v1\/service-accounts$/);
    expect(list.res.status).toBe(200);
    const accounts = list.res.json.items as Array<{ name: string; role: string }>;
    expect(accounts).toContainEqual(expect.objectContaining({ name: 'demo', role: 'reader' }));
    expect(accounts).toContainEqual(expect.objectContaining({ name: 'demo-admin', role: 'admin' }));
    const created = find('POST', /^\/_keygate\/v1\/service-accounts\/demo\/api-keys$/);
    expect(created.res.status).toBe(201);
    const newKey = created.res.json.key as string;
    expect(newKey).toMatch(/^kg_/);
    const withNewKey = await send(
      data.req.url.origin,
      data.req.url.pathname + data.req.url.search,
      {
        headers: { 'x-api-key': newKey },
      },
    );
    expect(withNewKey.status).toBe(200);
    const revoke = find('DELETE', /^\/_keygate\/v1\/service-accounts\/demo\/api-keys\/[^/]+$/);
    expect(revoke.res.status).toBe(204);
    const revokedId = revoke.req.url.pathname.split('/').at(-1) as string;
    const keys = await send(
      vars.get('KG') as string,
      '/_keygate/v1/service-accounts/demo/api-keys',
      {
        headers: { 'x-api-key': admin as string },
      },
    );
    const items = keys.json.items as Array<{ id: string; status: string }>;
    expect(items.find((k) => k.id === revokedId)?.status).toBe('revoked');

    // /metrics on the loopback ops listener counts what the lines above did.
    const metrics = find('GET', /^\/metrics$/, 'none');
    expect(metrics.req.url.origin).toBe(`http://127.0.0.1:${opsPort}`);
    expect(metrics.res.status).toBe(200);
    expect(metrics.res.text).toMatch(
      /keygate_requests_total\{route="admin",method="POST",code="201",account="demo-admin"\} 1/,
    );
    expect(metrics.res.text).toMatch(
      /keygate_requests_total\{route="admin",method="DELETE",code="204",account="demo-admin"\} 1/,
    );
  } finally {
    child.kill('SIGINT');
  }
  expect(await exited).toBe(0);
});
