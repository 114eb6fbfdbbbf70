import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdleGuardedBody } from '../../../src/forward/idle-guarded-body.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function collector() {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  return { sink, text: () => Buffer.concat(chunks).toString('latin1') };
}

describe('IdleGuardedBody', () => {
  it('passes every byte through unchanged, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ minLength: 1, maxLength: 50 }), { maxLength: 30 }),
        async (parts) => {
          const source = new PassThrough();
          let idle = 0;
          const body = new IdleGuardedBody(source, { idleMs: 10_000, onIdle: () => idle++ });
          const out = collector();
          const done = pipeline(body, out.sink);
          for (const p of parts) source.write(p);
          source.end();
          await done;
          expect(out.text()).toBe(parts.join(''));
          expect(idle).toBe(0);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('fires once when the consumer waits and the client sends nothing', async () => {
    const source = new PassThrough();
    let idle = 0;
    const body = new IdleGuardedBody(source, { idleMs: 50, onIdle: () => idle++ });
    body.resume(); // a consumer that wants everything
    source.write('a');
    await sleep(300);
    expect(idle).toBe(1);
    body.destroy();
  });

  it('does not fire while chunks keep coming, however long the body takes', async () => {
    const source = new PassThrough();
    let idle = 0;
    const body = new IdleGuardedBody(source, { idleMs: 150, onIdle: () => idle++ });
    const out = collector();
    const done = pipeline(body, out.sink);
    for (let i = 0; i < 10; i++) {
      source.write('x');
      await sleep(30);
    }
    source.end();
    await done;
    expect(idle).toBe(0);
    expect(out.text()).toBe('x'.repeat(10));
  });

  it('does not fire while the consumer is not reading (backpressure is not a slow client)', async () => {
    const source = new PassThrough();
    let idle = 0;
    const body = new IdleGuardedBody(source, { idleMs: 50, onIdle: () => idle++ });
    source.end('all of it'); // the client sent everything; nobody reads yet
    await sleep(200);
    expect(idle).toBe(0);
    const out = collector();
    await pipeline(body, out.sink);
    expect(out.text()).toBe('all of it');
    expect(idle).toBe(0);
  });

  it('calls onFirstRead once, when the consumer first asks, and not before', async () => {
    const source = new PassThrough();
    let first = 0;
    const body = new IdleGuardedBody(source, {
      idleMs: 10_000,
      onFirstRead: () => first++,
      onIdle: () => undefined,
    });
    await sleep(20);
    expect(first).toBe(0);
    const out = collector();
    const done = pipeline(body, out.sink);
    source.write('a');
    source.write('b');
    source.end('c');
    await done;
    expect(first).toBe(1);
  });

  it('an error from the client stream fails the body; destroying the body leaves the source alone', async () => {
    const source = new PassThrough();
    const body = new IdleGuardedBody(source, { idleMs: 10_000, onIdle: () => undefined });
    const done = pipeline(body, collector().sink);
    source.write('a');
    source.destroy(new Error('aborted'));
    await expect(done).rejects.toThrowError(/aborted/);

    const kept = new PassThrough();
    const other = new IdleGuardedBody(kept, { idleMs: 10_000, onIdle: () => undefined });
    other.resume();
    kept.write('a');
    other.destroy();
    await sleep(10);
    expect(kept.destroyed).toBe(false); // the socket still owes the client its answer
  });
});
