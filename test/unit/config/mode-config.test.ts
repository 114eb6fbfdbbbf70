import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.js';

const UPSTREAM = 'upstream: { url: "http://127.0.0.1:9004" }\n';

function problems(yaml: string, env: NodeJS.ProcessEnv = {}) {
  try {
    parseConfig(yaml, 'test.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('mode and authz (DESIGN §13)', () => {
  it('defaults: mode proxy, authz.cacheTtl 0 (no-store)', () => {
    const c = parseConfig(UPSTREAM, 't');
    expect(c.mode).toBe('proxy');
    expect(c.authz).toEqual({ cacheTtlMs: 0 });
  });

  it('authz.cacheTtl is a duration like the others, read as cacheTtlMs', () => {
    expect(parseConfig(`${UPSTREAM}authz: { cacheTtl: 5s }\n`, 't').authz.cacheTtlMs).toBe(5000);
    expect(problems(`${UPSTREAM}authz: { cacheTtl: "5 seconds" }\n`)[0]?.path).toBe(
      'authz.cacheTtl',
    );
    expect(problems(`${UPSTREAM}authz: { cacheTtl: 1s, ttl: 2 }\n`)[0]?.path).toBe('authz.ttl');
  });

  it('upstream is optional in mode authz only', () => {
    const c = parseConfig('mode: authz\n', 't');
    expect(c.mode).toBe('authz');
    expect(c.upstream).toBeUndefined();
    for (const mode of ['proxy', 'both']) {
      const p = problems(`mode: ${mode}\n`);
      expect(p).toEqual([{ path: 'upstream', message: expect.stringContaining(`"${mode}"`) }]);
    }
    // Reported with the other problems, not only once they are fixed.
    expect(problems('listen: { port: "x" }\n').map((p) => p.path)).toEqual(
      expect.arrayContaining(['listen.port', 'upstream']),
    );
  });

  it('an upstream in mode authz is still validated (it is not silently ignored)', () => {
    expect(problems('mode: authz\nupstream: { url: "ftp://x" }\n')[0]?.path).toBe('upstream.url');
  });

  it('a bad mode names the path, also when set by KEYGATE_MODE', () => {
    expect(problems(`${UPSTREAM}mode: proxyy\n`)).toEqual([
      { path: 'mode', message: 'expected one of proxy, authz, both' },
    ]);
    expect(problems(UPSTREAM, { KEYGATE_MODE: 'AUTHZ' })).toEqual([
      { path: 'mode', message: 'expected one of proxy, authz, both (set by KEYGATE_MODE)' },
    ]);
    expect(parseConfig('', 't', { KEYGATE_MODE: 'authz' }).mode).toBe('authz');
  });
});
