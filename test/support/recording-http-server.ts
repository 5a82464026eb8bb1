import * as http from 'node:http';
import * as net from 'node:net';
import { AddressInfo } from 'node:net';

/** A request as the server received it. */
export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A node:http server on 127.0.0.1:0 that records requests and counts (open) sockets. */
export interface TestServer {
  port: number;
  origin: string;
  requests: Received[];
  /** 'connection' events so far. */
  connections: () => number;
  /** Sockets currently open. */
  open: () => number;
  close: () => Promise<void>;
}

export type Handler = (req: Received, res: http.ServerResponse) => void;

export async function startHttpServer(handler: Handler): Promise<TestServer> {
  const requests: Received[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(received);
      handler(received, res);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (socket: net.Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `127.0.0.1:${port}`,
    requests,
    connections: () => connections,
    open: () => sockets.size,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
