import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`; .ci/run installs it when missing). */
export const CHROMIUM = '/usr/bin/chromium';

// No sandbox (CI runs as root, in a container); nothing that reaches out to Google's services.
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Headless Chromium; each launch has a fresh profile (Playwright gives it a new temporary
 * user-data-dir, deleted at close). Fails, never skips, when Chromium is not installed.
 */
export function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: apt-get install chromium (.ci/run installs it when missing)`,
    );
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

/**
 * The web server of a browser-based client (MCP Inspector's UI) on loopback: every path answers
 * an empty page, the redirect_uri included. `origin` is http://127.0.0.1:<port>; the same
 * server as http://localhost:<port> is another origin.
 */
export class ClientPages {
  private constructor(
    private readonly server: Server,
    readonly origin: string,
    readonly port: number,
  ) {}

  static async start(): Promise<ClientPages> {
    const server = createServer((_request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      response.end('<!doctype html><title>MCP client</title><p>MCP client</p>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return new ClientPages(server, `http://127.0.0.1:${port}`, port);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
