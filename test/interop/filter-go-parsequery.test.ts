import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scopeQuery } from '../../src/policy/filter-v2.js';
import { oracleParse } from '../helpers/filter-oracle.js';
import { buildGoProgram } from '../helpers/go-build.js';

// Interop: the query keygate forwards for a team-scoped key, decoded by the real Go
// net/url.ParseQuery (the Aggregator is a Go program). For generated client queries (valid and
// hostile filters, encoded names, "+" and "%2B", ";" pairs, v1 parameters), whenever keygate
// forwards, Go sees exactly one `filter`, it parses (independent parser from the grammar) to
// AND(account filter, the client's filter as Go decoded it from the ORIGINAL query), and no
// other parameter whose name starts with "filter".

const SOURCE = fileURLToPath(new URL('../fixtures/go-parsequery/', import.meta.url));

interface GoAnswer {
  filter: string[];
  names: string[];
  err: string;
}

let child: ChildProcess;
let binary: string;
let pending: Array<(a: GoAnswer) => void> = [];

beforeAll(async () => {
  binary = buildGoProgram(SOURCE, 'go-parsequery');
  child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout as NonNullable<typeof child.stdout> });
  lines.on('line', (line) => {
    const next = pending.shift();
    next?.(JSON.parse(line) as GoAnswer);
  });
}, 120_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdin?.end();
    await exited;
  }
  if (binary) rmSync(binary, { force: true });
  pending = [];
});

function goParse(query: string): Promise<GoAnswer> {
  return new Promise((resolve) => {
    pending.push(resolve);
    child.stdin?.write(`${JSON.stringify(query)}\n`);
  });
}

const ACCOUNT = 'namespace:"team-a","team-b"+cluster!:"prod"';
const FILTERS = [
  'cluster:"c1"',
  'cluster:"a"+pod:"b"',
  'cluster:"a"|pod:"b"',
  '(label[app]:"x")|(namespace<~:"a-")',
  'pod:"a b"',
  'pod:"a\\"',
  'label[a")|(b]:"x"',
  'pod:")|(namespace:"',
  'namespace:"é😀"',
  '',
  ' ',
  'cluster:"a")|(namespace:"x"',
  'cluster:"a"+pod:"b"|node:"c"',
  '(cluster:"a"',
  'cluster:"a',
  'cluster:"a" pod:"b"',
];
const encode = (text: string) =>
  fc.constantFrom(
    encodeURIComponent(text),
    encodeURIComponent(text).replaceAll('%2B', '+'),
    encodeURIComponent(text).replaceAll('%20', '+'),
    encodeURIComponent(text).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    text.replace(/[%&#+;= ]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`),
  );
const OTHERS = [
  'window=1d',
  'aggregate=namespace',
  'a+b=c%20d',
  'x',
  '',
  'x=1;y=2',
  'q=%zz',
  'filterNamespaces=k',
  'Filter=x',
  'x=1;filter=pod:%22a%22',
  'cluster=c1',
];
const query = fc
  .tuple(
    fc.array(fc.constantFrom(...OTHERS), { maxLength: 3 }),
    fc.array(
      fc.tuple(
        fc.constantFrom('filter', 'filter', '%66ilter', 'filte%72'),
        fc.constantFrom(...FILTERS).chain(encode),
      ),
      { maxLength: 2 },
    ),
  )
  .map(([others, filters]) => [...others, ...filters.map(([n, v]) => `${n}=${v}`)].join('&'));

describe('scopeQuery as Go net/url.ParseQuery reads it', () => {
  it('Go sees exactly one filter: AND(account, the client filter Go would have seen)', async () => {
    const samples = fc.sample(query, { numRuns: 1500, seed: 14 });
    let forwarded = 0;
    let combined = 0;
    for (const raw of samples) {
      const result = scopeQuery(raw, ACCOUNT);
      if (!result.ok) continue;
      forwarded++;
      const [before, after] = await Promise.all([goParse(raw), goParse(result.query)]);
      expect(after.filter).toHaveLength(1);
      for (const name of after.names) {
        if (name !== 'filter') expect(name.toLowerCase().startsWith('filter')).toBe(false);
      }
      const seen = oracleParse(after.filter[0] as string);
      const client = before.filter[0] === undefined ? 'empty' : oracleParse(before.filter[0]);
      expect(client).not.toBeNull();
      if (client === 'empty') {
        expect(seen).toEqual(oracleParse(ACCOUNT));
      } else {
        combined++;
        expect(seen).toEqual({ and: [oracleParse(ACCOUNT), client] });
      }
    }
    expect(forwarded).toBeGreaterThan(200);
    expect(combined).toBeGreaterThan(100);
  });
});
