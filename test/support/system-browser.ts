import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { resolve } from 'node:path';
import type { HeadlessUserAgent } from './user-agent.js';

const BROWSER_SCRIPT = resolve('test/support/browser.mjs');
const CALLBACK_PATIENCE_MS = 60_000;

/** Whether something accepts TCP connections at `url`'s host and port right now. */
function accepting(url: URL): Promise<boolean> {
  return new Promise((answer) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), autoSelectFamily: true });
    socket.once('connect', () => {
      socket.destroy();
      answer(true);
    });
    socket.once('error', () => answer(false));
  });
}

/** The scopes an authorization URL asks for, sorted. */
export function requestedScopes(authorization: URL): string[] {
  return (authorization.searchParams.get('scope') ?? '').split(' ').sort();
}

/**
 * The system browser of a desktop MCP client run as a child process (mcp-remote, as Claude
 * Desktop runs it): the client opens a URL through `open`/xdg-open, which runs `$BROWSER <url>`
 * when there is no desktop; that script hands the URL to this loopback server, and the headless
 * user agent opens it (signs in, answers consent, follows the redirect to the client's callback).
 */
export class SystemBrowser {
  /** Every URL the client opened, in order. */
  readonly opened: URL[] = [];
  private readonly visits: Promise<URL>[] = [];
  private readonly waiting: (() => void)[] = [];
  private closed = false;

  private constructor(
    private readonly server: Server,
    private readonly handoffUrl: string,
    private readonly agent: HeadlessUserAgent,
  ) {}

  static async start(agent: HeadlessUserAgent): Promise<SystemBrowser> {
    const server = createServer();
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const browser = new SystemBrowser(server, `http://127.0.0.1:${port}/open`, agent);
    server.on('request', (request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        const valid = URL.canParse(body);
        response.writeHead(valid ? 204 : 400).end();
        if (valid) browser.visit(new URL(body));
      });
    });
    return browser;
  }

  /** The environment that makes a child process open its URLs here (no desktop, this BROWSER). */
  get env(): Record<string, string> {
    return { BROWSER: BROWSER_SCRIPT, SCOPEDB_TEST_BROWSER: this.handoffUrl };
  }

  /** Where the `count`-th URL opened led, once the user agent is done with it. */
  async visited(count: number): Promise<URL> {
    while (this.visits.length < count) await new Promise<void>((next) => this.waiting.push(next));
    return this.visits[count - 1];
  }

  /** Stops taking URLs; a visit still waiting for its callback gives up. */
  close(): Promise<void> {
    this.closed = true;
    this.server.closeAllConnections();
    return new Promise((done) => this.server.close(() => done()));
  }

  private visit(url: URL): void {
    this.opened.push(url);
    const visit = this.untilCallbackListens(url).then(() => this.agent.open(url));
    // Awaited through `visited`; a visit no test waits for must not fail the run unhandled.
    visit.catch(() => undefined);
    this.visits.push(visit);
    for (const next of this.waiting.splice(0)) next();
  }

  /**
   * Waits until the redirect_uri of an authorization URL accepts connections. A desktop client
   * may open the browser a moment before its callback server listens (mcp-remote does when a
   * challenge starts the sign-in); a person takes longer than that to sign in, the agent not.
   */
  private async untilCallbackListens(authorization: URL): Promise<void> {
    const redirect = authorization.searchParams.get('redirect_uri');
    if (!redirect) return;
    const deadline = Date.now() + CALLBACK_PATIENCE_MS;
    while (!(await accepting(new URL(redirect)))) {
      if (this.closed || Date.now() > deadline) throw new Error(`nothing listens at ${redirect}`);
      await new Promise((wait) => setTimeout(wait, 50));
    }
  }
}
