/**
 * The counter and histogram of the request path. prom-client hashes a metric's label object on
 * every inc/observe, even through a pre-bound child, so the per-request metrics keep their
 * numbers in plain slots instead: counting is a Map look-up by the label values and a field
 * increment. prom-client still renders them: each class implements the
 * `get()` its Registry reads (name, help, type, values), so the exposition text, escaping and
 * content type are prom-client's own.
 */

import { nullProtoRecord } from '../shared/null-proto-record.js';

/** Label values joined by "\n", which no label value keygate uses can hold. */
function keyOf(values: readonly string[]): string {
  return values.join('\n');
}

function labelsOf(names: readonly string[], values: readonly string[]): Record<string, string> {
  return nullProtoRecord(names.map((name, i) => [name, values[i] ?? ''] as const));
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** One slot per label combination, made on first use; insertion order is render order. */
class Children<S> {
  private readonly slots = new Map<string, S>();

  constructor(
    private readonly labelNames: readonly string[],
    private readonly make: (labels: Record<string, string>) => S,
  ) {}

  get(values: readonly string[]): S {
    const key = values.length === 1 ? (values[0] as string) : keyOf(values);
    let slot = this.slots.get(key);
    if (slot === undefined) {
      slot = this.make(labelsOf(this.labelNames, values));
      this.slots.set(key, slot);
    }
    return slot;
  }

  all(): IterableIterator<S> {
    return this.slots.values();
  }
}

export class CounterSlot {
  value = 0;
  constructor(readonly labels: Record<string, string>) {}
  inc(): void {
    this.value++;
  }
}

export class HotCounter {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly children: Children<CounterSlot>;

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
  ) {
    this.children = new Children(labelNames, (labels) => new CounterSlot(labels));
  }

  /** The slot for these label values (in labelNames order), made on first use. */
  child(...values: string[]): CounterSlot {
    return this.children.get(values);
  }

  async get() {
    const values: MetricValue[] = [];
    for (const slot of this.children.all()) values.push({ labels: slot.labels, value: slot.value });
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    };
  }
}

export class HistogramSlot {
  /** Observations per bucket, not cumulative (summed when rendered). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Record<string, string>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    // Prometheus buckets are inclusive upper bounds: the first bound >= value takes it.
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        (this.counts[i] as number)++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
}

export class HotHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly children: Children<HistogramSlot>;

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    private readonly bounds: readonly number[],
  ) {
    this.children = new Children(labelNames, (labels) => new HistogramSlot(labels, bounds));
  }

  child(...values: string[]): HistogramSlot {
    return this.children.get(values);
  }

  async get() {
    const values: MetricValue[] = [];
    for (const slot of this.children.all()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += slot.counts[i] ?? 0;
        values.push({
          labels: { le, ...slot.labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      });
      values.push({
        labels: { le: '+Inf', ...slot.labels },
        value: slot.count,
        metricName: `${this.name}_bucket`,
      });
      values.push({ labels: slot.labels, value: slot.sum, metricName: `${this.name}_sum` });
      values.push({ labels: slot.labels, value: slot.count, metricName: `${this.name}_count` });
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    };
  }
}
