import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.js';
import { ALL_ACCOUNTS, Metrics } from '../../../src/telemetry/metrics.js';

const MIN = 'upstream: { url: "http://127.0.0.1:9004" }\n';

function problems(yaml: string): string {
  try {
    parseConfig(yaml, 'test.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return JSON.stringify((err as ConfigError).problems);
  }
  throw new Error('expected a ConfigError');
}

describe('metrics.accountLabel', () => {
  it('defaults to true (one series per account)', () => {
    expect(parseConfig(MIN, 't').metrics).toEqual({ accountLabel: true });
  });

  it('accepts false', () => {
    expect(parseConfig(`${MIN}metrics: { accountLabel: false }\n`, 't').metrics.accountLabel).toBe(
      false,
    );
  });

  it.each(['"false"', '0', 'null', 'no_such'])('refuses accountLabel: %s', (value) => {
    expect(problems(`${MIN}metrics: { accountLabel: ${value} }\n`)).toContain('accountLabel');
  });

  it.each(['accountlabel', '__proto__', 'constructor', 'account_label'])(
    'refuses the unknown key metrics.%s',
    (key) => {
      expect(problems(`${MIN}metrics: { ${key}: false }\n`)).toMatch(/metrics/);
    },
  );
});

describe('Metrics.accountLabel', () => {
  it('names the account, "none" before one is known; with the label off, always "_all"', () => {
    const on = new Metrics({});
    expect(on.accountLabel('team-a')).toBe('team-a');
    expect(on.accountLabel(undefined)).toBe('none');
    const off = new Metrics({ accountLabel: false });
    for (const account of ['team-a', undefined, '__proto__', ''])
      expect(off.accountLabel(account)).toBe(ALL_ACCOUNTS);
    expect(ALL_ACCOUNTS).toBe('_all');
  });
});
