import { InsufficientScopeError } from '@modelcontextprotocol/client';
import { DEMO_USERS } from '../sandbox/accounts.js';
import { DEMO_SIZES } from '../sandbox/demo-database.js';
import { connectWithOAuth, connectWithToken } from './examples/sdk-client.js';
import { accessTokenFor, HeadlessOAuthClient } from './support/oauth-client.js';
import { startSandbox, type Sandbox } from './support/sandbox.js';
import { HeadlessUserAgent, LoopbackCallback } from './support/user-agent.js';

const [ALICE] = DEMO_USERS;
const COUNT_CUSTOMERS = { sql: 'SELECT count(*) AS n FROM customers' };
const RAISE_STOCK = { sql: 'UPDATE products SET stock = stock + 1 WHERE id = ?', params: [3] };

/** The README's plain SDK 2.x client (test/examples/sdk-client.ts) against the sandbox. */
describe('the README SDK 2.x client with the sandbox', () => {
  let sandbox: Sandbox;
  let callback: LoopbackCallback;
  beforeAll(async () => {
    sandbox = await startSandbox();
    callback = await LoopbackCallback.start();
  });
  afterAll(async () => {
    await callback.close();
    await sandbox.close();
  });

  it('with a token: query answers; execute rejects with the scopes to ask for', async () => {
    const token = await accessTokenFor(sandbox.app.mcpUrl, ALICE, 'db:query');
    const client = await connectWithToken(sandbox.app.mcpUrl, token);
    try {
      const read = await client.callTool({ name: 'query', arguments: COUNT_CUSTOMERS });
      expect(read.structuredContent).toMatchObject({ rows: [[DEMO_SIZES.customers]] });

      const refused = await client.callTool({ name: 'execute', arguments: RAISE_STOCK }).then(
        () => undefined,
        (error: unknown) => error,
      );

      expect(refused).toBeInstanceOf(InsufficientScopeError);
      expect(refused).toMatchObject({ requiredScope: 'db:query db:modify' });
    } finally {
      await client.close();
    }
  });

  it('with OAuth: signs in, queries, steps up to db:modify and executes', async () => {
    const browser = new HeadlessUserAgent({ username: ALICE.name, password: ALICE.password });
    const oauth = new HeadlessOAuthClient(browser, callback, 'README SDK client');
    const { client, callTool } = await connectWithOAuth(sandbox.app.mcpUrl, oauth, () =>
      Promise.resolve(oauth.callbackParameters()),
    );
    try {
      const read = await callTool('query', COUNT_CUSTOMERS);
      expect(read.structuredContent).toMatchObject({ rows: [[DEMO_SIZES.customers]] });

      const write = await callTool('execute', RAISE_STOCK);

      expect(write.structuredContent).toMatchObject({ affected_rows: 1 });
      expect(oauth.authorizationUrls).toHaveLength(2);
      expect(browser.pages.map((page) => page.kind)).toEqual(['login', 'consent', 'consent']);
      expect(String(oauth.accessTokenClaims().scope).split(' ').sort()).toEqual([
        'db:modify',
        'db:query',
      ]);
    } finally {
      await client.close();
    }
  });
});
