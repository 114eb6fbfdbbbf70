import diagnostics_channel from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/*
 * keygate streams bodies both ways and never holds one: when the reader is slow, backpressure
 * reaches the writer. This file proves it by measuring keygate's own buffer directly, in
 * bytes, not by watching RSS (which moved with V8's heap sizing and proved little).
 *
 * The gateway runs in this process, so every TCP socket it uses is visible through Node's
 * diagnostics channels ('net.server.socket' for the client side, 'net.client.socket' for the
 * connections undici opens to the upstream). What keygate holds at any instant is
 *
 *   bytes it has read from the sending side's socket
 *   − bytes it has handed to the kernel on the receiving side's socket
 *     (socket.bytesWritten counts queued bytes too, so writableLength is subtracted)
 *
 * i.e. everything between the two kernels: undici's parser, stream buffers, the response's and
 * the socket's write queues. Kernel socket buffers are left out on purpose: on loopback Linux
 * autotunes them up to net.ipv4.tcp_rmem/tcp_wmem's maximum (32 MB + 4 MB on the CI machine),
 * which would swamp any end-to-end measure, and they are not keygate's memory anyway.
 *
 * BOUND = 4 MB: keygate's own buffers are a few 16-64 KB chunks (a socket read, undici's
 * parser, the writable highWaterMarks), a few hundred KB at worst; 4 MB is ten times that and
 * 1/16 of the 64 MB body. A proxy that read the body into memory, or ignored write()'s false,
 * would hold tens of MB here while the slow side sits still. The headers (a few hundred bytes)
 * are counted with the body; the bound absorbs them. No timing is asserted: waits only let the
 * pipeline fill, and the sampler records the largest value seen.
 */
const SIZE = 64 * 1024 * 1024;
const BOUND = 4 * 1024 * 1024;
const CHUNK = Buffer.alloc(256 * 1024, 'k');
/** How much the slow side reads per step before pausing again. */
const STEP = 1024 * 1024;

let redis: RedisServer;

beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => {
  await redis?.destroy();
});

/** Every socket created in this process while the test runs, by role. */
function watchSockets(): { server: Socket[]; client: Socket[] } {
  const seen = { server: [] as Socket[], client: [] as Socket[] };
  const onServer = (m: unknown) => seen.server.push((m as { socket: Socket }).socket);
  const onClient = (m: unknown) => seen.client.push((m as { socket: Socket }).socket);
  diagnostics_channel.subscribe('net.server.socket', onServer);
  diagnostics_channel.subscribe('net.client.socket', onClient);
  onTestFinished(() => {
    diagnostics_channel.unsubscribe('net.server.socket', onServer);
    diagnostics_channel.unsubscribe('net.client.socket', onClient);
  });
  return seen;
}

/** Bytes a socket has handed to the kernel: bytesWritten includes what is still queued. */
const flushed = (s: Socket) => s.bytesWritten - s.writableLength;

/** Samples `measure` every few ms (and on demand) and keeps the peak. */
function sampler(measure: () => number): { sample(): void; peak(): number; stop(): void } {
  let peak = 0;
  const sample = () => {
    peak = Math.max(peak, measure());
  };
  const timer = setInterval(sample, 2);
  return {
    sample,
    peak: () => peak,
    stop: () => clearInterval(timer),
  };
}

/** Waits until `progress()` stops moving for a while (or `done()`): the pipeline is full. */
async function untilStalled(progress: () => number, done: () => boolean): Promise<void> {
  let last = -1;
  while (!done()) {
    const now = progress();
    if (now === last) return;
    last = now;
    await sleep(300);
  }
}

async function setup(): Promise<{
  upstream: RecordingUpstream;
  gw: Gateway;
  key: string;
  sockets: { server: Socket[]; client: Socket[] };
}> {
  const sockets = watchSockets();
  const upstream = await RecordingUpstream.start();
  onTestFinished(() => upstream.close());
  const gw = await startGateway({
    config: testConfig(upstream.url, { store: { type: 'redis', redis: { url: redis.url } } }),
  });
  onTestFinished(() => gw.close());
  const key = (await gw.issue('bulk', 'member')).key;
  return { upstream, gw, key, sockets };
}

async function openClient(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  onTestFinished(() => void socket.destroy());
  return socket;
}

describe('keygate buffers no body: backpressure reaches the sender (64 MB, bound 4 MB)', () => {
  it('fast upstream, slow client: keygate holds ≤ 4 MB of a 64 MB download at every sample', async () => {
    const { upstream, gw, key, sockets } = await setup();
    const upstreamPort = Number(new URL(upstream.url).port);
    let produced = 0;
    let upstreamWaiting = false;
    upstream.onStream('/download', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': SIZE });
      const pump = () => {
        upstreamWaiting = false;
        while (produced < SIZE) {
          produced += CHUNK.length;
          if (!res.write(CHUNK)) {
            upstreamWaiting = true;
            return void res.once('drain', pump);
          }
        }
        res.end();
      };
      pump();
    });

    const client = await openClient(gw.port);
    client.pause(); // reads nothing until the pipeline is full
    const front = () => sockets.server.find((s) => s.remotePort === client.localPort);
    const toUpstream = () => sockets.client.filter((s) => s.remotePort === upstreamPort);
    const held = sampler(() => {
      const f = front();
      const readFromUpstream = toUpstream().reduce((n, s) => n + s.bytesRead, 0);
      return f === undefined ? 0 : readFromUpstream - flushed(f);
    });
    onTestFinished(() => held.stop());

    client.write(
      `GET /model/download HTTP/1.1\r\nhost: keygate\r\nx-api-key: ${key}\r\nconnection: close\r\n\r\n`,
    );
    // Phase 1: the client reads nothing. The upstream writes until every buffer on the way
    // is full and its write() says wait; a buffering keygate would take all 64 MB instead.
    await untilStalled(
      () => produced,
      () => produced >= SIZE && !upstreamWaiting,
    );
    held.sample();
    const stalledAt = produced;
    expect(front(), 'keygate accepted the client connection').toBeDefined();
    expect(toUpstream().length, 'keygate connected to the upstream').toBeGreaterThan(0);
    expect(held.peak()).toBeLessThanOrEqual(BOUND);

    // Phase 2: the client reads 1 MB at a time, pausing between steps so the pipe refills.
    let raw = Buffer.alloc(0);
    let headerEnd = -1;
    let body = 0;
    const ended = new Promise<void>((resolve) => client.once('end', resolve));
    client.on('data', (chunk: Buffer) => {
      if (headerEnd === -1) {
        raw = Buffer.concat([raw, chunk]);
        headerEnd = raw.indexOf('\r\n\r\n');
        if (headerEnd !== -1) body += raw.length - (headerEnd + 4);
      } else {
        body += chunk.length;
      }
      held.sample();
    });
    let ends = false;
    void ended.then(() => (ends = true));
    while (!ends) {
      const target = body + STEP;
      client.resume();
      while (body < target && !ends) await sleep(1);
      client.pause();
      held.sample();
      await sleep(5);
    }
    held.stop();

    expect(raw.subarray(0, 12).toString('latin1')).toBe('HTTP/1.1 200');
    expect(body).toBe(SIZE);
    expect(produced).toBe(SIZE);
    console.log(
      `download: upstream stalled at ${(stalledAt / 1048576).toFixed(1)} MB of 64 MB while the client read nothing; ` +
        `keygate held at most ${(held.peak() / 1024).toFixed(0)} KB (bound ${BOUND / 1048576} MB)`,
    );
    expect(held.peak()).toBeLessThanOrEqual(BOUND);
  });

  it('fast client, slow upstream: keygate holds ≤ 4 MB of a 64 MB upload at every sample', async () => {
    const { upstream, gw, key, sockets } = await setup();
    const upstreamPort = Number(new URL(upstream.url).port);
    let upstreamReq: IncomingMessage | undefined;
    let consumed = 0;
    upstream.onStream('/upload', (req, res) => {
      req.pause(); // the test reads it, slowly, below
      upstreamReq = req;
      req.on('data', (c: Buffer) => (consumed += c.length));
      req.on('end', () => res.end(JSON.stringify({ bytes: consumed })));
    });

    const client = await openClient(gw.port);
    let response = '';
    client.on('data', (c: Buffer) => (response += c.toString('latin1')));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const front = () => sockets.server.find((s) => s.remotePort === client.localPort);
    const toUpstream = () => sockets.client.filter((s) => s.remotePort === upstreamPort);
    const held = sampler(() => {
      const f = front();
      const flushedUpstream = toUpstream().reduce((n, s) => n + flushed(s), 0);
      return f === undefined ? 0 : f.bytesRead - flushedUpstream;
    });
    onTestFinished(() => held.stop());

    client.write(
      `PUT /model/upload HTTP/1.1\r\nhost: keygate\r\nx-api-key: ${key}\r\n` +
        `content-type: application/octet-stream\r\ncontent-length: ${SIZE}\r\nconnection: close\r\n\r\n`,
    );
    let sent = 0;
    let clientWaiting = false;
    const pump = () => {
      clientWaiting = false;
      while (sent < SIZE) {
        sent += CHUNK.length;
        if (!client.write(CHUNK)) {
          clientWaiting = true;
          return void client.once('drain', pump);
        }
      }
    };
    pump();

    // Phase 1: the upstream reads nothing. The client writes until every buffer on the way
    // is full; a buffering keygate would read all 64 MB from it instead.
    await untilStalled(
      () => sent,
      () => sent >= SIZE && !clientWaiting,
    );
    held.sample();
    const stalledAt = sent;
    expect(upstreamReq, 'the upstream got the request').toBeDefined();
    expect(held.peak()).toBeLessThanOrEqual(BOUND);

    // Phase 2: the upstream reads 1 MB at a time, pausing between steps.
    const req = upstreamReq as IncomingMessage;
    let ends = false;
    req.once('end', () => (ends = true));
    req.on('data', () => held.sample());
    while (!ends) {
      const target = consumed + STEP;
      req.resume();
      while (consumed < target && !ends) await sleep(1);
      req.pause();
      held.sample();
      await sleep(5);
    }
    await closed;
    held.stop();

    expect(consumed).toBe(SIZE);
    expect(response.startsWith('HTTP/1.1 200')).toBe(true);
    expect(response).toContain(`{"bytes":${SIZE}}`);
    console.log(
      `upload: client stalled at ${(stalledAt / 1048576).toFixed(1)} MB of 64 MB while the upstream read nothing; ` +
        `keygate held at most ${(held.peak() / 1024).toFixed(0)} KB (bound ${BOUND / 1048576} MB)`,
    );
    expect(held.peak()).toBeLessThanOrEqual(BOUND);
  });
});
