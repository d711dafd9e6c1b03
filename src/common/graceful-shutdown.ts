import type { IncomingMessage, Server, ServerResponse } from 'node:http';

// Node's close() closes only the connections idle at the call; keep-alive ones idle later stay open.
const IDLE_SWEEP_MS = 50;

/**
 * Stops accepting connections and resolves once every request in flight has been answered:
 * keep-alive connections are closed as they fall idle, and responses started meanwhile carry
 * `Connection: close`. Past `boundMs` the remaining connections are destroyed. Resolves with
 * whether everything drained within the bound.
 */
export function drainHttpServer(server: Server, boundMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let drained = true;
    const closeAfterResponse = (_request: IncomingMessage, response: ServerResponse) => {
      if (!response.headersSent) response.setHeader('Connection', 'close');
    };
    server.prependListener('request', closeAfterResponse);
    const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
    const bound = setTimeout(() => {
      drained = false;
      server.closeAllConnections();
    }, boundMs);
    // An error here only says the server was not listening: nothing left to drain.
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(bound);
      server.removeListener('request', closeAfterResponse);
      resolve(drained);
    });
  });
}
