import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotHistogram } from '../../../src/telemetry/hot-metrics.js';

const BOUNDS = [0.0005, 0.001, 0.01, 0.1, 1, 10];

function register(registry: Registry, metric: unknown): void {
  registry.registerMetric(metric as Parameters<Registry['registerMetric']>[0]);
}

// prom-client's own Counter and Histogram are the oracle: the hot slots must render the very
// same exposition text for the same observations, whatever the label values and numbers.
describe('hot metrics render exactly what prom-client renders', () => {
  const label = fc.constantFrom('allocation', 'admin', 'none', 'a"b', 'back\\slash', 'x\ny');
  const value = fc.oneof(
    fc.constantFrom(0, 0.0005, 0.001, 0.01, 1, 10, 10.0000001, 1e9),
    fc.double({ min: 0, max: 100, noNaN: true }),
  );

  it('a counter with two labels', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(label, label), { maxLength: 40 }), async (incs) => {
        const hot = new Registry();
        const reference = new Registry();
        const counter = new HotCounter('t_total', 'help "text"', ['route', 'code']);
        register(hot, counter);
        const prom = new Counter({
          name: 't_total',
          help: 'help "text"',
          labelNames: ['route', 'code'],
          registers: [reference],
        });
        for (const [route, code] of incs) {
          counter.child(route, code).inc();
          prom.inc({ route, code });
        }
        expect(await hot.metrics()).toBe(await reference.metrics());
      }),
    );
  });

  it('a histogram with one label, values on, between and beyond the bounds', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(label, value), { maxLength: 40 }), async (obs) => {
        const hot = new Registry();
        const reference = new Registry();
        const histogram = new HotHistogram('t_seconds', 'h', ['route'], BOUNDS);
        register(hot, histogram);
        const prom = new Histogram({
          name: 't_seconds',
          help: 'h',
          labelNames: ['route'],
          buckets: BOUNDS,
          registers: [reference],
        });
        for (const [route, v] of obs) {
          histogram.child(route).observe(v);
          prom.observe({ route }, v);
        }
        expect(await hot.metrics()).toBe(await reference.metrics());
      }),
    );
  });

  it('a child is one slot per label combination, and a label named __proto__ is just a label', () => {
    const counter = new HotCounter('t_total', 'h', ['__proto__', 'constructor']);
    const a = counter.child('x', 'y');
    a.inc();
    expect(counter.child('x', 'y')).toBe(a);
    expect(counter.child('x', 'z')).not.toBe(a);
    expect(Object.entries(a.labels)).toEqual([
      ['__proto__', 'x'],
      ['constructor', 'y'],
    ]);
    expect(a.value).toBe(1);
  });
});
