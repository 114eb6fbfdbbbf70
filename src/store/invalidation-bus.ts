import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/** A write that may weaken cached verdicts: every replica must drop what it cached. */
export type Invalidation = { kind: 'key'; id: string } | { kind: 'account'; name: string };

/** What a publish achieved: how many replicas received the event, and how many confirmed it. */
export interface PublishResult {
  receivers: number;
  confirmed: number;
}

export interface InvalidationBus {
  /**
   * Resolves once every other replica that received the event has dropped its cached verdicts
   * (each confirms), or after a bounded wait: then `confirmed < receivers`. The publisher
   * applies the event to its own cache itself, before publishing (see keys/key-runtime.ts).
   */
  publish(event: Invalidation): Promise<PublishResult>;
  /**
   * `onEvent` for each invalidation published through another bus (another replica, or the
   * CLI); never for this bus's own echo, which its publisher has applied already. `onResync`
   * whenever events may have been missed (the subscription reconnected), so the cache must be
   * dropped.
   */
  subscribe(onEvent: (event: Invalidation) => void, onResync: () => void): Promise<void>;
  close(): Promise<void>;
}

interface LocalSubscriber {
  origin: string;
  onEvent: (event: Invalidation) => void;
}

/**
 * In-process delivery: every LocalInvalidationBus built on one channel sees the others'
 * events. For the file store one process holds the store, so its bus has nobody to tell
 * (receivers 0); tests share a channel between runtimes to play replicas without Redis.
 */
export class LocalInvalidationChannel {
  readonly subscribers = new Set<LocalSubscriber>();
}

export class LocalInvalidationBus implements InvalidationBus {
  /** Who this bus is on its channel: its own events are not delivered back to it. */
  readonly origin = randomUUID();
  private readonly own = new Set<LocalSubscriber>();

  constructor(private readonly channel = new LocalInvalidationChannel()) {}

  async publish(event: Invalidation): Promise<PublishResult> {
    // Subscribers run synchronously: when the loop ends, every one of them has applied it.
    let receivers = 0;
    for (const subscriber of [...this.channel.subscribers]) {
      if (subscriber.origin === this.origin) continue;
      receivers++;
      subscriber.onEvent(event);
    }
    return { receivers, confirmed: receivers };
  }

  async subscribe(onEvent: (event: Invalidation) => void): Promise<void> {
    const subscriber = { origin: this.origin, onEvent };
    this.own.add(subscriber);
    this.channel.subscribers.add(subscriber);
  }

  async close(): Promise<void> {
    for (const subscriber of this.own) this.channel.subscribers.delete(subscriber);
    this.own.clear();
  }
}

/**
 * An event on the wire, with the id its publisher waits to see confirmed and the publisher's
 * origin (both absent from old replicas: such an event is applied, as it always was).
 */
export interface WireMessage {
  event: Invalidation;
  ack: string | undefined;
  origin: string | undefined;
}

/** Longer ids are not ours (ours are UUIDs): ignored rather than compared. */
const MAX_ID_LENGTH = 64;

function shortString(value: unknown): string | undefined {
  return typeof value === 'string' && value.length <= MAX_ID_LENGTH ? value : undefined;
}

export function parseWireMessage(message: string): WireMessage | undefined {
  try {
    const raw = JSON.parse(message) as Record<string, unknown>;
    const ack = shortString(raw.ack);
    const origin = shortString(raw.origin);
    if (raw.kind === 'key' && typeof raw.id === 'string')
      return { event: { kind: 'key', id: raw.id }, ack, origin };
    if (raw.kind === 'account' && typeof raw.name === 'string')
      return { event: { kind: 'account', name: raw.name }, ack, origin };
  } catch {
    // fall through: an unreadable message is treated as "something changed"
  }
  return undefined;
}

/** How long a publisher waits for every replica to confirm an invalidation. */
const DEFAULT_CONFIRM_TIMEOUT_MS = 2000;

interface PendingConfirm {
  needed: number;
  got: number;
  done: () => void;
}

/**
 * Redis pub/sub on one channel, with confirmations. The subscriber is its own connection (a
 * subscribed connection can do nothing else); ioredis re-subscribes after a reconnect, and
 * every reconnect after the first is reported as a resync, because messages sent while
 * disconnected are lost.
 *
 * "Revocation means now" across replicas: PUBLISH answers how many subscribers received the
 * event; each replica, once it has dropped its cached verdicts, publishes the event's id on
 * `<channel>:ack`; `publish` resolves when that many confirmations arrived (or after
 * `confirmTimeoutMs`). So when a revoke returns, every replica has already forgotten the key.
 * On Redis Cluster, PUBLISH counts only the receivers on the node that ran it, so the wait
 * there may end early; the cache TTL remains the bound for the rest.
 *
 * Each message carries this bus's `origin`: its own subscriber receives it too (and PUBLISH
 * counts it), so it confirms its own echo without delivering it: the publisher has applied the
 * event already, and applying it twice would only bump the verifier's epoch again.
 */
export class RedisInvalidationBus implements InvalidationBus {
  private subscriber: Redis | Cluster | undefined;
  private ackReady: Promise<void> | undefined;
  private readonly pending = new Map<string, PendingConfirm>();
  private readonly ackChannel: string;
  /** Who this bus is on the channel: a fresh id per bus, so per process. */
  readonly origin = randomUUID();

  constructor(
    private readonly publisher: { publish(channel: string, message: string): Promise<number> },
    private readonly createSubscriber: () => Redis | Cluster,
    private readonly channel: string,
    private readonly confirmTimeoutMs = DEFAULT_CONFIRM_TIMEOUT_MS,
  ) {
    this.ackChannel = `${channel}:ack`;
  }

  async publish(event: Invalidation): Promise<PublishResult> {
    // Confirmations are only seen once subscribed to them: subscribe first (the CLI, which
    // never subscribes to events, gets a subscriber for confirmations here). Bounded: with
    // Redis away the SUBSCRIBE waits in the offline queue, and the PUBLISH below fails fast.
    await withTimeout(this.listenForAcks(), this.confirmTimeoutMs);
    const ack = randomUUID();
    let done = () => {};
    const confirmed = new Promise<void>((resolve) => {
      done = resolve;
    });
    const entry: PendingConfirm = { needed: 0, got: 0, done };
    this.pending.set(ack, entry);
    try {
      entry.needed = await this.publisher.publish(
        this.channel,
        JSON.stringify({ ...event, ack, origin: this.origin }),
      );
      if (entry.got < entry.needed) await withTimeout(confirmed, this.confirmTimeoutMs);
      return { receivers: entry.needed, confirmed: Math.min(entry.got, entry.needed) };
    } finally {
      this.pending.delete(ack);
    }
  }

  async subscribe(onEvent: (event: Invalidation) => void, onResync: () => void): Promise<void> {
    const subscriber = this.ensureSubscriber();
    let connectedBefore = false;
    subscriber.on('ready', () => {
      if (connectedBefore) onResync();
      connectedBefore = true;
    });
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const parsed = parseWireMessage(message);
      if (parsed === undefined) onResync();
      else if (parsed.origin !== this.origin) onEvent(parsed.event);
      // Confirm only after the verdicts are gone (onEvent/onResync are synchronous).
      if (parsed?.ack !== undefined)
        this.publisher.publish(this.ackChannel, parsed.ack).catch(() => {});
    });
    // Not awaited: with Redis down at start the SUBSCRIBE waits in the offline queue and goes
    // out on connect; start-up must not hang on it.
    subscriber.subscribe(this.channel).catch(() => {});
    void this.listenForAcks().catch(() => {});
  }

  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.ackReady = undefined;
    for (const entry of this.pending.values()) entry.done();
    if (!subscriber) return;
    try {
      await subscriber.quit();
    } catch {
      subscriber.disconnect();
    }
  }

  private ensureSubscriber(): Redis | Cluster {
    if (this.subscriber) return this.subscriber;
    const subscriber = this.createSubscriber();
    this.subscriber = subscriber;
    // Errors surface through reconnects; the listener keeps ioredis from printing them.
    subscriber.on('error', () => {});
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.ackChannel) return;
      const entry = this.pending.get(message);
      if (entry === undefined) return;
      entry.got++;
      if (entry.needed > 0 && entry.got >= entry.needed) entry.done();
    });
    return subscriber;
  }

  private listenForAcks(): Promise<void> {
    this.ackReady ??= this.ensureSubscriber()
      .subscribe(this.ackChannel)
      .then(
        () => undefined,
        (err: unknown) => {
          this.ackReady = undefined; // try again with the next publish
          throw err;
        },
      );
    return this.ackReady;
  }
}

/** Waits for `promise` at most `ms`; never rejects (a late or failed subscribe only means fewer confirmations). */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}
