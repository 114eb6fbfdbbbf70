import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay that holds every byte travelling from the target back to the client for
 * `delayMs`: a real socket path with a slow return leg, so tests can widen a race window
 * (e.g. a replica that learns of a revocation late) without touching the code under test.
 */
export class DelayProxy {
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, delayMs: number): Promise<DelayProxy> {
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      sockets.add(client);
      sockets.add(upstream);
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        setTimeout(() => {
          if (!client.destroyed) client.write(chunk);
        }, delayMs);
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', () => setTimeout(end, delayMs));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const proxy = new DelayProxy(server, typeof address === 'object' && address ? address.port : 0);
    for (const s of sockets) proxy.sockets.add(s);
    server.on('connection', (s) => proxy.sockets.add(s));
    return proxy;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
