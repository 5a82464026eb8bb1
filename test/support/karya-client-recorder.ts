import { Agent, createServer, IncomingHttpHeaders, IncomingMessage, request as httpRequest, Server } from 'node:http';
import { AddressInfo } from 'node:net';

/** One request as the client put it on the wire, and the server's answer as it came back. */
export interface Exchange {
  method: string;
  /** The raw request target, before any server-side normalisation (the JS client sends `//v1/...`). */
  url: string;
  requestHeaders: IncomingHttpHeaders;
  requestBody: string;
  status: number;
  responseHeaders: IncomingHttpHeaders;
  responseBody: string;
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

/**
 * A small HTTP proxy in front of the app that records every exchange verbatim. The client's own response
 * classes copy only the keys they know (and invent `undefined` for missing ones), so exact key sets and
 * JSON types can only be checked on the raw bytes; the raw request shows what the client really sends.
 * An exchange is recorded before its response is relayed, so it is there once the client's promise settles.
 */
export class RecordingProxy {
  private server: Server | undefined;
  private readonly upstreamAgent = new Agent({ keepAlive: false });
  private exchanges: Exchange[] = [];
  /** Every exchange since start, never cleared by take(). */
  readonly history: Exchange[] = [];
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  /** The base URL to give the client's ClientConfig. */
  get url(): URL {
    return new URL(`http://127.0.0.1:${this.port}`);
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      void (async () => {
        const requestBody = await readAll(req);
        const upstream = httpRequest({
          host: this.targetHost,
          port: this.targetPort,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent: this.upstreamAgent,
        });
        const answer = new Promise<IncomingMessage>((resolve, reject) => {
          upstream.once('response', resolve).once('error', reject);
        });
        upstream.end(requestBody);
        const response = await answer;
        const responseBody = await readAll(response);
        const exchange: Exchange = {
          method: req.method ?? '',
          url: req.url ?? '',
          requestHeaders: req.headers,
          requestBody: requestBody.toString('utf8'),
          status: response.statusCode ?? 0,
          responseHeaders: response.headers,
          responseBody: responseBody.toString('utf8'),
        };
        this.exchanges.push(exchange);
        this.history.push(exchange);
        res.writeHead(response.statusCode ?? 502, response.headers);
        res.end(responseBody);
      })().catch((err: unknown) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`recording proxy: ${String(err)}`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** The exchanges recorded since the previous call, oldest first. */
  take(): Exchange[] {
    const taken = this.exchanges;
    this.exchanges = [];
    return taken;
  }

  /** The one exchange recorded since the previous call (fails if there were none or several). */
  takeOne(): Exchange {
    const taken = this.take();
    if (taken.length !== 1) {
      throw new Error(`expected exactly one recorded request, got ${taken.length}: ${taken.map((e) => `${e.method} ${e.url}`).join(', ')}`);
    }
    return taken[0];
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.upstreamAgent.destroy();
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
