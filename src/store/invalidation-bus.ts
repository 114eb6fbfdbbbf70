import { EventEmitter } from 'node:events';
import type { Cluster, Redis } from 'ioredis';

/** A write that may weaken cached verdicts: every replica must drop what it cached. */
export type Invalidation = { kind: 'key'; id: string } | { kind: 'account'; name: string };

export interface InvalidationBus {
  publish(event: Invalidation): Promise<void>;
  /**
   * `onEvent` for each invalidation from any replica (this one included); `onResync` whenever
   * events may have been missed (the subscription reconnected), so the cache must be dropped.
   */
  subscribe(onEvent: (event: Invalidation) => void, onResync: () => void): Promise<void>;
  close(): Promise<void>;
}

/** For the file store: one process holds the store, so in-process delivery is everything. */
export class LocalInvalidationBus implements InvalidationBus {
  private readonly emitter = new EventEmitter();

  async publish(event: Invalidation): Promise<void> {
    this.emitter.emit('event', event);
  }

  async subscribe(onEvent: (event: Invalidation) => void): Promise<void> {
    this.emitter.on('event', onEvent);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

export function parseInvalidation(message: string): Invalidation | undefined {
  try {
    const event = JSON.parse(message) as Partial<Invalidation> & Record<string, unknown>;
    if (event.kind === 'key' && typeof event.id === 'string') return { kind: 'key', id: event.id };
    if (event.kind === 'account' && typeof event.name === 'string')
      return { kind: 'account', name: event.name };
  } catch {
    // fall through: an unreadable message is treated as "something changed"
  }
  return undefined;
}

/**
 * Redis pub/sub on one channel. The subscriber is its own connection (a subscribed connection
 * can do nothing else); ioredis re-subscribes after a reconnect, and every reconnect after the
 * first is reported as a resync, because messages sent while disconnected are lost.
 */
export class RedisInvalidationBus implements InvalidationBus {
  private subscriber: Redis | Cluster | undefined;

  constructor(
    private readonly publisher: { publish(channel: string, message: string): Promise<number> },
    private readonly createSubscriber: () => Redis | Cluster,
    private readonly channel: string,
  ) {}

  async publish(event: Invalidation): Promise<void> {
    await this.publisher.publish(this.channel, JSON.stringify(event));
  }

  async subscribe(onEvent: (event: Invalidation) => void, onResync: () => void): Promise<void> {
    const subscriber = this.createSubscriber();
    this.subscriber = subscriber;
    let connectedBefore = false;
    subscriber.on('ready', () => {
      if (connectedBefore) onResync();
      connectedBefore = true;
    });
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const event = parseInvalidation(message);
      if (event) onEvent(event);
      else onResync();
    });
    // Errors surface through reconnects; the listener keeps ioredis from printing them.
    subscriber.on('error', () => {});
    // Not awaited: with Redis down at start the SUBSCRIBE waits in the offline queue and goes
    // out on connect; start-up must not hang on it.
    subscriber.subscribe(this.channel).catch(() => {});
  }

  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    if (!subscriber) return;
    try {
      await subscriber.quit();
    } catch {
      subscriber.disconnect();
    }
  }
}
