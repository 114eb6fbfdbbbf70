import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { BoundedUpstreamClient } from '../../../src/forward/bounded-upstream.js';
import { UpstreamCancel } from '../../../src/forward/upstream-cancel.js';
import type { UpstreamClient, UpstreamRequest } from '../../../src/forward/upstream-client.js';

/** An upstream whose requests stay open until the test settles them, one by one. */
class GatedUpstream implements UpstreamClient {
  readonly open: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  calls = 0;
  closed = false;

  forward(): Promise<void> {
    this.calls++;
    return new Promise((resolve, reject) => this.open.push({ resolve, reject }));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const request: UpstreamRequest = {
  method: 'GET',
  path: '/',
  headers: [],
  body: null,
  signal: new UpstreamCancel(),
};
const sink = () => new PassThrough();

describe('BoundedUpstreamClient', () => {
  it('refuses beyond the bound with 503 upstream_saturated, without calling the upstream', async () => {
    const inner = new GatedUpstream();
    const bounded = new BoundedUpstreamClient(inner, 3);
    const pending = [0, 1, 2].map(() => bounded.forward(request, sink));
    expect(bounded.pending).toBe(3);
    const refused = await bounded.forward(request, sink).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(KeygateError);
    expect((refused as KeygateError).code).toBe('upstream_saturated');
    expect((refused as KeygateError).status).toBe(503);
    expect(inner.calls).toBe(3);
    for (const o of inner.open.splice(0)) o.resolve();
    await Promise.all(pending);
    expect(bounded.pending).toBe(0);
  });

  it('frees the slot whether the upstream answered or failed', async () => {
    const inner = new GatedUpstream();
    const bounded = new BoundedUpstreamClient(inner, 1);
    for (let i = 0; i < 20; i++) {
      const call = bounded.forward(request, sink);
      const settled = call.then(
        () => 'ok',
        (err: Error) => err.message,
      );
      const gate = inner.open.shift();
      if (i % 2 === 0) gate?.resolve();
      else gate?.reject(new Error('socket hang up'));
      expect(await settled).toBe(i % 2 === 0 ? 'ok' : 'socket hang up');
      expect(bounded.pending).toBe(0);
    }
    // Had any ending kept its slot, this would be refused.
    const last = bounded.forward(request, sink);
    inner.open.shift()?.resolve();
    await last;
  });

  it('a bound of 0 queue still lets `connections` requests through', async () => {
    const inner = new GatedUpstream();
    const bounded = new BoundedUpstreamClient(inner, 1);
    const first = bounded.forward(request, sink);
    await expect(bounded.forward(request, sink)).rejects.toThrowError(/too many requests waiting/);
    inner.open.shift()?.resolve();
    await first;
    await bounded.close();
    expect(inner.closed).toBe(true);
  });
});
