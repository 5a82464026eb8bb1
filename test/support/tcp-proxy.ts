import { AddressInfo, createServer, Server, Socket, connect } from 'node:net';

/** One client connection and, once it is forwarded, its upstream connection. */
interface Pair {
  client: Socket;
  upstream: Socket | undefined;
}

/**
 * A TCP proxy in front of a real service (Postgres, Redis, RabbitMQ), for two kinds of fault that leave the
 * shared service itself alone:
 * - `stop()` makes the service vanish as a stopped server would (connections reset, new ones refused);
 *   `start()` brings it back on the same port.
 * - `freeze()` is a silent partition: nothing is forwarded any more in either direction and nothing is
 *   closed or refused. Bytes stay in the socket buffers, as TCP would keep retransmitting them; new
 *   connections are accepted by the kernel and then hear nothing. `thaw()` lets everything that waited
 *   through, in order, as a healed network would.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<Pair>();
  private frozen = false;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  get isFrozen(): boolean {
    return this.frozen;
  }

  async start(): Promise<this> {
    const server = createServer({ pauseOnConnect: true }, (client) => {
      const pair: Pair = { client, upstream: undefined };
      this.pairs.add(pair);
      client.on('error', () => this.drop(pair)).on('close', () => this.drop(pair));
      // A connection made during a partition reaches nothing until the partition heals.
      if (!this.frozen) this.forward(pair);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.frozen = false;
    for (const pair of [...this.pairs]) this.drop(pair);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Stops forwarding without closing anything (see the class comment). */
  freeze(): void {
    if (this.frozen) return;
    this.frozen = true;
    for (const { client, upstream } of this.pairs) {
      if (!upstream) continue;
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  /** Forwards again, starting with whatever waited in the buffers during the freeze. */
  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    for (const pair of [...this.pairs]) {
      if (!pair.upstream) {
        this.forward(pair);
      } else {
        pair.client.pipe(pair.upstream);
        pair.upstream.pipe(pair.client);
      }
    }
  }

  private forward(pair: Pair): void {
    const upstream = connect(this.targetPort, this.targetHost);
    pair.upstream = upstream;
    upstream.on('error', () => this.drop(pair)).on('close', () => this.drop(pair));
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
