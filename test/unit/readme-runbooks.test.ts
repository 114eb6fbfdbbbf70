import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = new URL('../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const rules = parse(
  readFileSync(new URL('deploy/prometheus/keygate-rules.yaml', root), 'utf8'),
) as {
  groups: Array<{ rules: Array<{ alert?: string; annotations?: { runbook_url?: string } }> }>;
};
const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);

describe('every shipped alert has its runbook in the README', () => {
  it('the rules file has alerts to check', () => {
    expect(alerts.length).toBeGreaterThanOrEqual(6);
  });

  it.each(alerts.map((a) => [a.alert ?? '', a.annotations?.runbook_url ?? '']))(
    '%s: a "#### %s" heading, and the runbook_url points at its anchor',
    (alert, url) => {
      expect(readme).toMatch(new RegExp(`^#### ${alert}$`, 'm'));
      expect(url.endsWith(`README.md#${alert.toLowerCase()}`)).toBe(true);
    },
  );
});
