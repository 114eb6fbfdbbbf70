import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigReloader } from '../../../src/config/config-reloader.js';
import type { ConfigWatcher, WatchTrigger } from '../../../src/config/config-watcher.js';
import { parseConfig } from '../../../src/config/load.js';
import { planReload } from '../../../src/config/reload-plan.js';
import type { Config } from '../../../src/config/schema.js';
import { ReloadablePolicy } from '../../../src/pipeline/reloadable-policy.js';

const GOOD = {
  upstream: { url: 'http://127.0.0.1:9003' },
  routes: [
    { name: 'a', methods: ['GET'], path: '/a', scopes: ['read'] },
    { name: 'b', methods: ['GET'], path: '/b', scopes: ['read'] },
  ],
};

/** A watcher the test fires by hand. */
class HandWatcher implements ConfigWatcher {
  private onChange: ((t: WatchTrigger) => void) | undefined;
  closed = false;
  start(onChange: (t: WatchTrigger) => void): void {
    this.onChange = onChange;
  }
  fire(trigger: WatchTrigger): void {
    this.onChange?.(trigger);
  }
  close(): void {
    this.closed = true;
  }
}

function harness(initial: string) {
  const file = { text: initial as string | Error };
  const env = { KEYGATE_LOG_LEVEL: 'debug' };
  let running: Readonly<Config> = parseConfig(initial, 'k.yaml', env);
  const lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
  const counts: string[] = [];
  const log = (level: string) => (fields: Record<string, unknown>, message: string) =>
    lines.push({ level, fields, message });
  const reloader = new ConfigReloader({
    file: '/etc/keygate/keygate.yaml',
    env,
    initialText: initial,
    apply: (next) => {
      const plan = planReload(running, next);
      if (plan.problems.length === 0) running = plan.effective;
      return plan;
    },
    log: { info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') },
    counted: (result) => counts.push(result),
    read: () => {
      if (file.text instanceof Error) throw file.text;
      return file.text;
    },
  });
  const watcher = new HandWatcher();
  reloader.watch(watcher);
  return { file, reloader, watcher, lines, counts, running: () => running };
}

describe('ConfigReloader', () => {
  it('a changed file is applied on SIGHUP and counted ok', () => {
    const h = harness(stringify(GOOD));
    h.file.text = stringify({ ...GOOD, routes: [GOOD.routes[1]] });
    expect(h.reloader.reload('signal')).toBe('ok');
    expect(h.running().routes.map((r) => r.name)).toEqual(['b']);
    expect(h.counts).toEqual(['ok']);
    expect(h.lines.find((l) => l.level === 'info')?.message).toBe('config reloaded: routes');
  });

  it('env overrides apply to a reloaded file as at start-up', () => {
    const h = harness(stringify(GOOD));
    h.file.text = stringify({ ...GOOD, log: { level: 'error' } });
    h.reloader.reload('signal');
    expect(h.running().log.level).toBe('debug'); // KEYGATE_LOG_LEVEL wins, as at start-up
  });

  it('an invalid file is refused with the config-check message, counted invalid, the old config kept', () => {
    const h = harness(stringify(GOOD));
    const before = h.running();
    h.file.text = stringify({ ...GOOD, routes: [{ ...GOOD.routes[0], methods: ['FETCH'] }] });
    expect(h.reloader.reload('signal')).toBe('invalid');
    expect(h.running()).toBe(before);
    const error = h.lines.find((l) => l.level === 'error');
    expect(error?.message).toContain('invalid configuration (/etc/keygate/keygate.yaml)');
    expect(error?.message).toContain('routes[0].methods[0]: expected one of GET');
    expect(error?.message).toContain('still serving the previous config');
    // Watcher events and polls for the same broken content are not reported again; SIGHUP is.
    h.watcher.fire('watch');
    h.watcher.fire('poll');
    expect(h.counts).toEqual(['invalid']);
    h.reloader.reload('signal');
    expect(h.counts).toEqual(['invalid', 'invalid']);
  });

  it('broken YAML and a missing file on SIGHUP are invalid; a missing file seen by the watcher is not (mid-swap)', () => {
    const h = harness(stringify(GOOD));
    h.file.text = 'routes: [';
    expect(h.reloader.reload('watch')).toBe('invalid');
    h.file.text = Object.assign(new Error('gone'), { code: 'ENOENT' });
    expect(h.reloader.reload('watch')).toBe('none');
    expect(h.reloader.reload('signal')).toBe('invalid');
    expect(h.lines.at(-1)?.message).toContain('(root): file not found');
  });

  it('a touch (same bytes) is no reload: SIGHUP and events count unchanged, polls count nothing', () => {
    const h = harness(stringify(GOOD));
    expect(h.reloader.reload('poll')).toBe('none');
    expect(h.reloader.reload('watch')).toBe('unchanged');
    expect(h.reloader.reload('signal')).toBe('unchanged');
    expect(h.counts).toEqual(['unchanged', 'unchanged']);
  });

  it('a change the watcher sees is applied once; back to the running bytes after a bad file is unchanged', () => {
    const h = harness(stringify(GOOD));
    h.file.text = stringify({ ...GOOD, routes: [GOOD.routes[0]] });
    h.watcher.fire('watch');
    h.watcher.fire('poll');
    expect(h.counts).toEqual(['ok']);
    h.file.text = 'nope: [';
    h.watcher.fire('poll');
    h.file.text = stringify({ ...GOOD, routes: [GOOD.routes[0]] });
    h.watcher.fire('watch');
    expect(h.counts).toEqual(['ok', 'invalid', 'unchanged']);
  });

  it('restart-only changes are warned about by path, and the rest applies', () => {
    const h = harness(stringify(GOOD));
    h.file.text = stringify({ ...GOOD, listen: { port: 9999 }, routes: [GOOD.routes[0]] });
    expect(h.reloader.reload('signal')).toBe('ok');
    const warn = h.lines.filter((l) => l.level === 'warn').map((l) => l.message);
    expect(warn).toEqual(['config reload: listen.port needs a restart; still using the old value']);
    expect(h.running().listen.port).toBe(8080);
    expect(h.running().routes).toHaveLength(1);
  });

  it('an apply that throws (a bug) is counted invalid and never escapes', () => {
    const reloader = new ConfigReloader({
      file: 'k.yaml',
      env: {},
      initialText: '',
      apply: () => {
        throw new Error('boom');
      },
      log: { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} },
      counted: () => {},
      read: () => stringify(GOOD),
    });
    expect(reloader.reload('signal')).toBe('invalid');
  });
});

describe('ReloadablePolicy', () => {
  it('a snapshot taken before a swap stays what it was; reads after the swap see the new value', () => {
    const holder = new ReloadablePolicy({ routes: ['a', 'b'] });
    const inFlight = holder.current;
    holder.swap({ routes: ['b'] });
    expect(inFlight.routes).toEqual(['a', 'b']);
    expect(holder.current.routes).toEqual(['b']);
  });
});
