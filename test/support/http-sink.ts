import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';

export interface SinkHit {
  path: string;
  method: string;
  key: string;
  attempt: number;
  planId: string;
  taskId: string;
  headers: IncomingMessage['headers'];
  body: string;
  receivedAt: number;
}

/**
 * A local HTTP target for REST actions that records every call (by Idempotency-Key). Paths choose the
 * answer: `/fail` always 500; `/nul` always 500 with the body `bad\u0000gateway` (binary or compressed error
 * pages carry NUL bytes, which PostgreSQL refuses in text); `/flaky/N` fails the first N calls of each task
 * then answers 200; `/slow/MS` answers after MS ms; anything else 200.
 */
export class HttpSink {
  readonly hits: SinkHit[] = [];
  private server: Server | undefined;
  port = 0;

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get baseUrl(): string {
    return `127.0.0.1:${this.port}`;
  }

  hitsFor(taskOrPath: string): SinkHit[] {
    return this.hits.filter((h) => h.taskId === taskOrPath || h.key === taskOrPath || h.path === taskOrPath);
  }

  /** Calls per Idempotency-Key. */
  counts(): Map<string, number> {
    const m = new Map<string, number>();
    for (const h of this.hits) m.set(h.key, (m.get(h.key) ?? 0) + 1);
    return m;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    server?.closeAllConnections();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const header = (name: string) => String(req.headers[name] ?? '');
      const hit: SinkHit = {
        path: req.url ?? '',
        method: req.method ?? '',
        key: header('idempotency-key'),
        attempt: Number(header('x-karya-attempt')),
        planId: header('x-karya-plan-id'),
        taskId: header('x-karya-task-id'),
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
        receivedAt: Date.now(),
      };
      this.hits.push(hit);
      const flaky = /^\/flaky\/(\d+)/.exec(hit.path);
      const slow = /^\/slow\/(\d+)/.exec(hit.path);
      if (hit.path.startsWith('/nul')) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('bad\u0000gateway');
      } else if (hit.path.startsWith('/fail')) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('sink says no');
      } else if (flaky && this.hits.filter((h) => h.key === hit.key).length <= Number(flaky[1])) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('flaky');
      } else if (slow) {
        setTimeout(() => res.writeHead(200).end('ok'), Number(slow[1]));
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      }
    });
  }
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
