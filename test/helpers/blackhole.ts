// A TCP server on 127.0.0.1 that accepts connections and never sends a byte: a broker host that is
// "up" for TCP but hangs (for connect-timeout tests).

import * as net from 'node:net';

export interface Blackhole {
  port: number;
  /** amqp://guest:secret@127.0.0.1:<port> */
  url: string;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

export function startBlackhole(): Promise<Blackhole> {
  const sockets = new Set<net.Socket>();
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    // Read and discard whatever the client sends, answer nothing.
    socket.resume();
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        port,
        url: `amqp://guest:secret@127.0.0.1:${port}`,
        accepted: () => count,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
