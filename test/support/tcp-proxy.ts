import { createServer, type Server, type Socket, connect } from 'node:net';
import { freePort } from './app.js';

/**
 * A TCP relay on a fixed loopback port to `target`, which can be taken down and brought back on
 * the same port: a network path to a service that fails and recovers.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** The client side of each connection. */
  private readonly inbound = new Set<Socket>();

  private constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), target);
    await proxy.up();
    return proxy;
  }

  /** Listens again (after `down`). */
  async up(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(this.target.port, this.target.host);
      for (const socket of [inbound, outbound]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        // A reset on one side ends the other; the error itself is the point of the exercise.
        socket.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      this.inbound.add(inbound);
      inbound.on('close', () => this.inbound.delete(inbound));
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((listening) => server.listen(this.port, '127.0.0.1', listening));
    this.server = server;
  }

  /** Holds what clients send on the open connections: a service that hangs, connections up. */
  stall(): void {
    for (const socket of this.inbound) {
      socket.unpipe();
      socket.pause();
    }
  }

  /** Stops listening and cuts every connection, as a crashed service would. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise((closed) => server.close(closed));
  }
}
