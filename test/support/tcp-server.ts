import * as net from 'node:net';
import { AddressInfo } from 'node:net';

export interface TestTcpServer {
  port: number;
  /** Connections accepted so far. */
  connections: () => number;
  /** Destroys every open socket and stops listening. */
  close: () => Promise<void>;
}

/**
 * A raw TCP server on 127.0.0.1 (on `port`, or any free one) that counts connections; `onSocket` scripts
 * what it does with each. The plugin specs use it to play servers that misbehave at the socket level.
 */
export async function startTcpServer(onSocket: (socket: net.Socket) => void, port = 0): Promise<TestTcpServer> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port with nothing listening on it (bound once, then released). */
export async function closedPort(): Promise<number> {
  const s = await startTcpServer(() => undefined);
  await s.close();
  return s.port;
}
