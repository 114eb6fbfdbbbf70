import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { parse } from 'yaml';
import { renderChartKind } from '../helpers/helm.js';
import { promtool } from '../helpers/promtool.js';

const ROOT = resolve(import.meta.dirname, '../..');
const RULES = join(ROOT, 'deploy/prometheus/keygate-rules.yaml');
const RULE_TESTS = join(ROOT, 'deploy/prometheus/tests');
const CRD = ['-a', 'monitoring.coreos.com/v1'];
type RuleObject = { spec?: { groups: Array<{ rules: Rule[] }> } };

type Rule = { alert: string; expr: string; annotations: Record<string, string> };
const groups = () =>
  (parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups;

it('`promtool check rules` accepts deploy/prometheus/keygate-rules.yaml', () => {
  const r = spawnSync(promtool(), ['check', 'rules', RULES], { encoding: 'utf8' });
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  expect(r.stdout).toContain('SUCCESS');
});

it('`promtool test rules`: every alert fires on its fixture and stays quiet on the other', () => {
  const r = spawnSync(promtool(), ['test', 'rules', 'keygate-rules.test.yaml'], {
    cwd: RULE_TESTS,
    encoding: 'utf8',
  });
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
});

it('each alert has a firing and a not-firing case in the promtool fixtures', () => {
  const tests = (
    parse(readFileSync(join(RULE_TESTS, 'keygate-rules.test.yaml'), 'utf8')) as {
      tests: Array<{
        alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }>;
      }>;
    }
  ).tests.flatMap((t) => t.alert_rule_test);
  const alerts = groups().flatMap((g) => g.rules.map((r) => r.alert));
  expect(alerts.length).toBeGreaterThanOrEqual(6);
  for (const alert of alerts) {
    const cases = tests.filter((t) => t.alertname === alert);
    expect(
      cases.some((c) => c.exp_alerts.length > 0),
      `${alert} fires`,
    ).toBe(true);
    expect(
      cases.some((c) => c.exp_alerts.length === 0),
      `${alert} stays quiet`,
    ).toBe(true);
  }
});

it('each alert has a summary, a description and a runbook_url to its README anchor', () => {
  for (const rule of groups().flatMap((g) => g.rules)) {
    expect(rule.annotations.summary, rule.alert).toBeTruthy();
    expect(rule.annotations.description, rule.alert).toBeTruthy();
    expect(rule.annotations.runbook_url).toBe(
      `https://github.com/example/keygate/blob/main/README.md#${rule.alert.toLowerCase()}`,
    );
  }
});

it('the plain rules file is the chart PrometheusRule spec (job=keygate, default thresholds)', () => {
  const [rule] = renderChartKind<RuleObject>(
    'PrometheusRule',
    [
      'prometheusRule.enabled=true',
      'prometheusRule.job=keygate',
      'redis.existingSecret.name=keygate-redis',
    ],
    CRD,
  );
  expect(rule?.spec).toEqual(parse(readFileSync(RULES, 'utf8')));
});

it('the chart rules with other thresholds and job still pass `promtool check rules`', () => {
  const [rule] = renderChartKind<RuleObject>(
    'PrometheusRule',
    [
      'prometheusRule.enabled=true',
      'prometheusRule.thresholds.errorRatio5xx=0.01',
      'prometheusRule.thresholds.downFor=1m',
      'redis.existingSecret.name=keygate-redis',
    ],
    CRD,
  );
  const exprs = rule?.spec?.groups.flatMap((g) => g.rules.map((r) => r.expr)) ?? [];
  expect(exprs.join('\n')).toContain('job="kg-keygate"');
  expect(exprs.join('\n')).toContain('> 0.01');
  const dir = mkdtempSync(join(tmpdir(), 'kg-rules-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'rules.yaml');
  writeFileSync(file, JSON.stringify(rule?.spec));
  const r = spawnSync(promtool(), ['check', 'rules', file], { encoding: 'utf8' });
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
});
