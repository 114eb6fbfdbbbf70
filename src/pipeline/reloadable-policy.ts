/**
 * The per-request policy a config reload may replace (routes, identity headers, header rules,
 * per-request limits), behind one reference. Built once in the composition root; the request
 * handler reads `current` once when a request arrives and uses that snapshot to the end, so a
 * request in flight finishes under the policy it started with, and every request that arrives
 * after `swap` returned uses the new one. One assignment: no request ever sees half of each.
 */
export class ReloadablePolicy<T> {
  private value: T;

  constructor(initial: T) {
    this.value = initial;
  }

  get current(): T {
    return this.value;
  }

  swap(next: T): void {
    this.value = next;
  }
}
