import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { DEMO_USERS, type DemoUser } from '../sandbox/accounts.js';
import { DEMO_SIZES } from '../sandbox/demo-database.js';
import { readAuditRows } from './support/audit-rows.js';
import { expectListsAndQueries, startSandbox, type Sandbox } from './support/sandbox.js';
import { requestedScopes, SystemBrowser } from './support/system-browser.js';
import { HeadlessUserAgent } from './support/user-agent.js';

const [ALICE, BOB] = DEMO_USERS;
const MCP_REMOTE = resolve('node_modules/mcp-remote/dist/proxy.js');
const RAISE_STOCK = {
  name: 'execute',
  arguments: { sql: 'UPDATE products SET stock = stock + 1 WHERE id = ?', params: [1] },
};

/**
 * mcp-remote 0.15 (built on MCP SDK 2.x) run as Claude Desktop runs it: a child process spoken to
 * over stdio, opening the system browser for sign-in (here BROWSER hands the URL to the headless
 * user agent), keeping its tokens in its config directory (a temporary one per test).
 */
describe('mcp-remote 0.15 (stdio, as Claude Desktop runs it) with the sandbox', () => {
  let sandbox: Sandbox;
  let configDir: string;
  beforeAll(async () => {
    sandbox = await startSandbox();
  });
  afterAll(() => sandbox.close());
  beforeEach(() => {
    configDir = mkdtempSync(join(tmpdir(), 'scopedb-mcp-remote-'));
  });
  afterEach(() => rmSync(configDir, { recursive: true, force: true }));

  /** A user at a desktop: their browser, where the headless agent signs in as `user`. */
  async function desktop(user: DemoUser) {
    const agent = new HeadlessUserAgent({ username: user.name, password: user.password });
    return { agent, browser: await SystemBrowser.start(agent) };
  }

  /** `mcp-remote <mcpUrl>` over stdio, with its stderr kept for failure messages. */
  function mcpRemote(browser: SystemBrowser) {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [MCP_REMOTE, sandbox.app.mcpUrl],
      env: { HOME: configDir, MCP_REMOTE_CONFIG_DIR: join(configDir, '.mcp-auth'), ...browser.env },
      stderr: 'pipe',
    });
    let log = '';
    transport.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const client = new Client({ name: 'claude-desktop-e2e', version: '1.0.0' });
    return { client, transport, log: () => log };
  }

  /** Fails with what mcp-remote logged, which says where a sign-in went wrong. */
  async function explained<T>(work: Promise<T>, log: () => string): Promise<T> {
    return work.catch((error: unknown) => {
      throw new Error(`${String(error)}\nmcp-remote said:\n${log()}`);
    });
  }

  it('signs in, queries, steps up to db:modify by itself and executes; every call audited as alice', async () => {
    const { agent, browser } = await desktop(ALICE);
    const { client, transport, log } = mcpRemote(browser);
    try {
      await explained(Promise.all([client.connect(transport), browser.visited(1)]), log);

      const [signIn] = browser.opened;
      expect(`${signIn.origin}${signIn.pathname}`).toBe(
        `${sandbox.issuer.url}/login/oauth/authorize`,
      );
      expect(signIn.searchParams.get('resource')).toBe(sandbox.app.mcpUrl);
      expect(signIn.searchParams.get('code_challenge_method')).toBe('S256');
      expect(requestedScopes(signIn)).toEqual(['db:query', 'offline_access']);
      expect(agent.pages.map((page) => page.kind)).toEqual(['login', 'consent']);

      await expectListsAndQueries(client);

      // The 403 names db:query db:modify; mcp-remote re-authorizes with it and retries the call.
      const [write] = await explained(
        Promise.all([client.callTool(RAISE_STOCK), browser.visited(2)]),
        log,
      );

      expect(write.isError).toBeFalsy();
      expect(write.structuredContent).toMatchObject({ affected_rows: 1 });
      expect(browser.opened).toHaveLength(2);
      expect(requestedScopes(browser.opened[1])).toEqual([
        'db:modify',
        'db:query',
        'offline_access',
      ]);
      expect(agent.pages.map((page) => page.kind)).toEqual(['login', 'consent', 'consent']);
      expect(
        readAuditRows(sandbox.app.auditDatabasePath)
          .filter((row) => row.clientId === signIn.searchParams.get('client_id') && row.tool)
          .map(({ tool, outcome, principalName, subject, grantedScopes }) => ({
            tool,
            outcome,
            principalName,
            subject,
            grantedScopes,
          })),
      ).toEqual([
        {
          tool: 'query',
          outcome: 'success',
          principalName: ALICE.name,
          subject: ALICE.id,
          grantedScopes: 'db:query',
        },
        {
          tool: 'execute',
          outcome: 'refused_scope',
          principalName: ALICE.name,
          subject: ALICE.id,
          grantedScopes: 'db:query',
        },
        {
          tool: 'execute',
          outcome: 'success',
          principalName: ALICE.name,
          subject: ALICE.id,
          grantedScopes: 'db:query db:modify',
        },
      ]);
    } finally {
      await client.close();
      await browser.close();
    }
  }, 120_000);

  it('started again (Claude Desktop restarted), it uses the tokens it stored: no browser', async () => {
    const { browser } = await desktop(ALICE);
    try {
      const first = mcpRemote(browser);
      await explained(
        Promise.all([first.client.connect(first.transport), browser.visited(1)]),
        first.log,
      );
      await first.client.close();

      const again = mcpRemote(browser);
      await explained(again.client.connect(again.transport), again.log);
      try {
        const read = await again.client.callTool({
          name: 'query',
          arguments: { sql: 'SELECT count(*) AS n FROM products' },
        });

        expect(read.structuredContent).toMatchObject({ rows: [[DEMO_SIZES.products]] });
        expect(browser.opened).toHaveLength(1);
      } finally {
        await again.client.close();
      }
    } finally {
      await browser.close();
    }
  }, 120_000);

  it('bob is asked again for db:modify, is told he may not grant it, and the host shows access_denied', async () => {
    const { agent, browser } = await desktop(BOB);
    const { client, transport, log } = mcpRemote(browser);
    try {
      await explained(Promise.all([client.connect(transport), browser.visited(1)]), log);

      // The issuer's access_denied, with its description, reaches the host as mcp-remote's error.
      await expect(client.callTool(RAISE_STOCK)).rejects.toMatchObject({
        code: -32001,
        message: expect.stringContaining(
          'Authorization failed: access_denied - the account bob may not grant db:modify',
        ) as string,
      });

      // Asked again for db:modify, which bob's account cannot grant: his token never gains it.
      expect(requestedScopes(browser.opened[1])).toEqual([
        'db:modify',
        'db:query',
        'offline_access',
      ]);
      expect(agent.pages.filter((page) => page.kind === 'login')).toHaveLength(1);
      const writes = readAuditRows(sandbox.app.auditDatabasePath).filter(
        (row) => row.subject === BOB.id && row.tool === 'execute',
      );
      expect(writes.length).toBeGreaterThan(0);
      expect(new Set(writes.map((row) => `${row.outcome} with ${row.grantedScopes}`))).toEqual(
        new Set(['refused_scope with db:query']),
      );
    } finally {
      await client.close();
      await browser.close();
    }
  }, 120_000);
});
