import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = new URL('../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const rules = parse(
  readFileSync(new URL('deploy/prometheus/keygate-rules.yaml', root), 'utf8'),
) as {
  groups: Array<{ rules: Array<{ alert?: string }> }>;
};
const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);

describe('every shipped alert has its runbook in the README', () => {
  it('the rules file has alerts to check', () => {
    expect(alerts.length).toBeGreaterThanOrEqual(6);
  });

  // That each runbook_url points at README.md#<alert> is checked beside the rules
  // (test/interop/prometheus-rules.test.ts); here: that the anchor exists.
  it.each(alerts.map((a) => a.alert ?? ''))('%s has a "#### <alert>" heading', (alert) => {
    expect(readme).toMatch(new RegExp(`^#### ${alert}$`, 'm'));
  });
});
