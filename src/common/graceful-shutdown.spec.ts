import { Agent, createServer, get, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { drainHttpServer } from './graceful-shutdown.js';

interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
}

describe(drainHttpServer.name, () => {
  let server: Server;
  let port: number;
  let agent: Agent;
  /** Requests that reached the handler, each with the function that finishes its response. */
  let arrived: ((body?: string) => void)[];
  let onArrival: () => void;

  beforeEach(async () => {
    arrived = [];
    onArrival = () => undefined;
    // Headers go out at once, so responses in flight keep their keep-alive connection.
    server = createServer((_request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/plain' });
      response.write('started;');
      arrived.push((body = 'done') => response.end(body));
      onArrival();
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    agent = new Agent({ keepAlive: true });
  });

  afterEach(async () => {
    agent.destroy();
    server.closeAllConnections();
    if (server.listening) await new Promise((resolve) => server.close(resolve));
  });

  function request(): Promise<Answer> {
    return new Promise((resolve, reject) => {
      get({ host: '127.0.0.1', port, agent }, (response: IncomingMessage) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            connection: response.headers.connection,
            body,
          }),
        );
        response.on('error', reject);
      }).on('error', reject);
    });
  }

  async function untilArrived(count: number): Promise<void> {
    if (arrived.length >= count) return;
    await new Promise<void>((resolve) => {
      onArrival = () => {
        if (arrived.length >= count) resolve();
      };
    });
  }

  /** The promise's value, or 'pending' if it takes longer than ms. */
  function within<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'pending'>((resolve) => (timer = setTimeout(resolve, ms, 'pending')));
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  }

  it('refuses new connections and resolves true once the requests in flight are answered', async () => {
    const inFlight = request();
    await untilArrived(1);

    const sut = drainHttpServer(server, 5_000);
    const late = await request().then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code,
    );
    arrived[0]();

    await expect(inFlight).resolves.toEqual({
      status: 200,
      connection: 'keep-alive',
      body: 'started;done',
    });
    await expect(sut).resolves.toBe(true);
    expect(late).toBe('ECONNREFUSED');
  });

  it('closes keep-alive connections as they fall idle, long before their keep-alive timeout', async () => {
    const first = request();
    const second = request();
    await untilArrived(2);
    arrived[0]();
    await first;

    const sut = drainHttpServer(server, 5_000);
    arrived[1]();

    await expect(second).resolves.toMatchObject({ status: 200, body: 'started;done' });
    await expect(within(sut, 2_000)).resolves.toBe(true);
  });

  it('answers requests that arrive on open connections while draining with Connection: close', async () => {
    const socket = connect(port, '127.0.0.1');
    let raw = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (raw += chunk));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write('GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await untilArrived(1);

    const sut = drainHttpServer(server, 5_000);
    // The next request on the same connection, pipelined behind the one in flight.
    socket.write('GET /second HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await untilArrived(2);
    arrived[0]();
    arrived[1]();
    await closed;

    expect([...raw.matchAll(/^connection: (\S+)\r$/gim)].map((m) => m[1])).toEqual([
      'keep-alive',
      'close',
    ]);
    await expect(sut).resolves.toBe(true);
  });

  it('destroys the connections still open at the bound and resolves false', async () => {
    const stuck = request();
    await untilArrived(1);

    const sut = await within(drainHttpServer(server, 200), 2_000);

    expect(sut).toBe(false);
    await expect(stuck).rejects.toThrow();
  });
});
