import { KeygateError } from '../errors.js';
import type { ResponseSink, UpstreamClient, UpstreamRequest } from './upstream-client.js';

/**
 * Caps the requests waiting for or using an upstream connection. The undici pool queues
 * without limit; behind a stalled upstream that queue grows until every client times out.
 * Beyond `connections + queue` keygate answers 503 upstream_saturated at once, so clients
 * retry (Retry-After) or fail over instead of waiting for minutes.
 */
export class BoundedUpstreamClient implements UpstreamClient {
  private active = 0;

  constructor(
    private readonly inner: UpstreamClient,
    private readonly limit: number,
  ) {}

  /** Requests using or waiting for an upstream connection now. */
  get pending(): number {
    return this.active;
  }

  async forward(request: UpstreamRequest, sink: ResponseSink): Promise<void> {
    if (this.active >= this.limit) {
      throw new KeygateError(
        'upstream_saturated',
        'the upstream has too many requests waiting; retry shortly',
      );
    }
    this.active++;
    try {
      await this.inner.forward(request, sink);
    } finally {
      this.active--;
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
