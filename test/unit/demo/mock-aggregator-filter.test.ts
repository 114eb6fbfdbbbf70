import { describe, expect, it } from 'vitest';
import { answerMock } from '../../../demo/mock-aggregator.js';
import { compileMockFilter, matches } from '../../../demo/mock-filter.js';

// The demo's mock Aggregator applies `filter` for real (no sockets here: answerMock is what the
// server calls for every request).

function get(path: string) {
  const answer = answerMock('GET', new URL(path, 'http://mock'), '');
  return {
    ...answer,
    json: answer.contentType === 'application/json' ? JSON.parse(answer.body) : undefined,
  };
}
const q = (filter: string) => encodeURIComponent(filter);
const allocationNames = (filter: string | undefined) =>
  Object.keys(
    get(`/allocation?window=1d${filter === undefined ? '' : `&filter=${q(filter)}`}`).json.data[0],
  ).sort();

describe('mock Aggregator: allocation filter', () => {
  it.each([
    [undefined, ['__idle__', 'ci-runners', 'kubecost', 'payments', 'payments-eu']],
    ['', ['__idle__', 'ci-runners', 'kubecost', 'payments', 'payments-eu']],
    ['namespace:"payments"', ['payments']],
    ['namespace:"payments","kubecost"', ['kubecost', 'payments']],
    ['namespace!:"payments","kubecost"', ['__idle__', 'ci-runners', 'payments-eu']],
    ['cluster:"cluster-two"', ['payments-eu']],
    ['cluster!:"cluster-two"', ['__idle__', 'ci-runners', 'kubecost', 'payments']],
    ['label[team]:"payments"', ['payments', 'payments-eu']],
    ['label[team]:"platform"+namespace!:"kubecost"', ['ci-runners']],
    ['label[team]:"payments"|namespace:"kubecost"', ['kubecost', 'payments', 'payments-eu']],
    [
      '(label[team]:"payments"|namespace:"kubecost")+cluster:"cluster-one"',
      ['kubecost', 'payments'],
    ],
    ['label:"app"', ['kubecost', 'payments', 'payments-eu']],
    ['namespace<~:"pay"', ['payments', 'payments-eu']],
    ['namespace~>:"-eu"', ['payments-eu']],
    ['namespace~:"runner"', ['ci-runners']],
    ['namespace!~:"pay"', ['__idle__', 'ci-runners', 'kubecost']],
  ])('%j', (filter, names) => {
    expect(allocationNames(filter)).toEqual(names);
  });

  it('what keygate forwards for a team key: (account)+(client)', () => {
    expect(allocationNames('(namespace:"payments","payments-eu")+(cluster:"cluster-one")')).toEqual(
      ['payments'],
    );
  });

  it('summary and topline count only what the filter selects', () => {
    const top = get(`/allocation/summary/topline?window=1d&filter=${q('namespace:"payments"')}`);
    expect(top.json.data.numResults).toBe(1);
    expect(top.json.data.combined.allocations.total.totalCost).toBeCloseTo(1.842347, 5);
    const summary = get(`/allocation/summary?window=1d&filter=${q('cluster:"cluster-two"')}`);
    expect(Object.keys(summary.json.data.sets[0].allocations)).toEqual(['payments-eu']);
  });

  it('reads "+" in the raw query as a space, as Go does: %2B is the AND', () => {
    expect(allocationNames(undefined)).toHaveLength(5);
    const raw = get(
      '/allocation?window=1d&filter=namespace:%22payments%22%2Bcluster:%22cluster-one%22',
    );
    expect(Object.keys(raw.json.data[0])).toEqual(['payments']);
    // Unencoded "+": a space to Go, and the strict parser refuses the two-comparison text.
    expect(
      get('/allocation?window=1d&filter=namespace:%22payments%22+cluster:%22x%22').status,
    ).toBe(400);
  });

  it('answers a filter that does not parse, or an unknown field, with a plain-text 400', () => {
    for (const bad of [
      'namespace:"a',
      'namespace:"a"+cluster:"b"|pod:"c"',
      'bogus:"x"',
      'namespace[x]:"y"',
    ]) {
      const a = get(`/allocation?window=1d&filter=${q(bad)}`);
      expect(a.status).toBe(400);
      expect(a.contentType).toBe('text/plain');
      expect(a.body).toMatch(/^Invalid 'filter' parameter: /);
    }
  });
});

describe('mock Aggregator: assets and cloud cost filters', () => {
  it('filters assets by type, cluster, name', () => {
    const names = (f: string) =>
      Object.keys(get(`/assets?window=1d&filter=${q(f)}`).json.data[0]).sort();
    expect(names('assetType:"disk"')).toEqual(['cluster-one/disk/pvc-16465f04']);
    expect(names('assetType!:"disk"')).toEqual(['cluster-one/node/ip-10-0-1-17']);
    expect(names('cluster:"cluster-two"')).toEqual([]);
    expect(get(`/assets?window=1d&filter=${q('namespace:"x"')}`).status).toBe(400);
  });

  it('filters cloud costs by service and account', () => {
    const items = (f: string) =>
      Object.keys(get(`/cloudCost?window=1d&filter=${q(f)}`).json.data.sets[0].cloudCosts);
    expect(items('service:"AmazonEC2"')).toEqual(['AmazonEC2/123456789012']);
    expect(items('accountID!:"123456789012"')).toEqual([]);
    expect(get(`/cloudCost?window=1d&filter=${q('namespace:"x"')}`).status).toBe(400);
  });
});

describe('mock filter evaluator', () => {
  const item =
    (labels: Record<string, string>, services: string[] = []) =>
    (field: string) =>
      field === 'label'
        ? new Map(Object.entries(labels))
        : field === 'services'
          ? services
          : field === 'namespace'
            ? 'ns'
            : undefined;
  it.each([
    ['label[app]:"x"', true],
    ['label[app]!:"x"', false],
    ['label[missing]:""', true],
    ['label:"app"', true],
    ['label!:"app"', false],
    ['label<~:"ap"', true],
    ['services:"svc-a"', true],
    ['services~:"svc"', true],
    ['services!:"svc-a"', false],
    ['namespace:"a","ns"', true],
    ['namespace!:"a","ns"', false],
    ['namespace!:"a","b"', true],
  ])('%j → %s', (filter, expected) => {
    expect(matches(compileMockFilter('allocation', filter), item({ app: 'x' }, ['svc-a']))).toBe(
      expected,
    );
  });
});
