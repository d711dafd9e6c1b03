import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { DEMO_USERS } from '../sandbox/accounts.js';
import { DEMO_SIZES } from '../sandbox/demo-database.js';
import { HeadlessOAuthClient } from './support/oauth-client.js';
import { startSandbox, type Sandbox } from './support/sandbox.js';
import { HeadlessUserAgent, LoopbackCallback } from './support/user-agent.js';

const [ALICE] = DEMO_USERS;

/**
 * @modelcontextprotocol/sdk 1.32, the client generation many hosts still ship (mcp-remote among
 * them), against the real app and the sandbox issuer.
 */
describe('@modelcontextprotocol/sdk 1.32 with the sandbox issuer', () => {
  let callback: LoopbackCallback;
  beforeAll(async () => {
    callback = await LoopbackCallback.start();
  });
  afterAll(() => callback.close());

  async function signIn(sandbox: Sandbox, name: string) {
    const browser = new HeadlessUserAgent({ username: ALICE.name, password: ALICE.password });
    const oauth = new HeadlessOAuthClient(browser, callback, name);
    const client = new Client({ name: 'scopedb-e2e-v1', version: '1.0.0' });
    const url = new URL(sandbox.app.mcpUrl);
    const first = new StreamableHTTPClientTransport(url, { authProvider: oauth });
    await expect(client.connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    await first.finishAuth(oauth.callbackParameters().get('code')!);
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider: oauth }));
    return { oauth, client };
  }

  describe('with the default 401 scope (db:query)', () => {
    let sandbox: Sandbox;
    beforeAll(async () => {
      sandbox = await startSandbox();
    });
    afterAll(() => sandbox.close());

    it('401 -> discovery -> registration -> PKCE sign-in with resource -> tools/list -> query', async () => {
      const { oauth, client } = await signIn(sandbox, 'sdk-1.32');
      try {
        const [authorization] = oauth.authorizationUrls;
        expect(authorization.searchParams.get('resource')).toBe(sandbox.app.mcpUrl);
        expect(authorization.searchParams.get('code_challenge_method')).toBe('S256');
        expect(oauth.accessTokenClaims()).toMatchObject({
          iss: sandbox.issuer.url,
          aud: sandbox.app.mcpUrl,
          sub: ALICE.id,
          scope: 'db:query',
        });

        const { tools } = await client.listTools();
        expect(tools.map((tool) => tool.name)).toEqual(expect.arrayContaining(['query']));
        const read = await client.callTool({
          name: 'query',
          arguments: { sql: 'SELECT count(*) AS n FROM orders' },
        });
        expect(read.structuredContent).toMatchObject({ rows: [[DEMO_SIZES.orders]] });
      } finally {
        await client.close();
      }
    });

    it('known limitation: on 403 it refreshes instead of re-authorizing, so execute stays refused', async () => {
      const { oauth, client } = await signIn(sandbox, 'sdk-1.32 limitation');
      try {
        const refreshToken = oauth.tokens()?.refresh_token;

        const refused = await client
          .callTool({ name: 'execute', arguments: { sql: 'DELETE FROM order_items' } })
          .then(
            () => undefined,
            (error: unknown) => error,
          );

        expect(refused).toBeInstanceOf(StreamableHTTPError);
        expect((refused as StreamableHTTPError).code).toBe(403);
        expect(oauth.authorizationUrls).toHaveLength(1);
        expect(oauth.tokens()?.refresh_token).not.toBe(refreshToken);
        expect(oauth.accessTokenClaims()).toMatchObject({ scope: 'db:query' });
      } finally {
        await client.close();
      }
    });
  });

  describe('with AUTH_BASELINE_SCOPES="db:query db:modify" (the scopes asked for up front)', () => {
    let sandbox: Sandbox;
    beforeAll(async () => {
      sandbox = await startSandbox({ AUTH_BASELINE_SCOPES: 'db:query db:modify' });
    });
    afterAll(() => sandbox.close());

    it('asks for both scopes at sign-in, and execute succeeds', async () => {
      const { oauth, client } = await signIn(sandbox, 'sdk-1.32 up front');
      try {
        expect(oauth.authorizationUrls[0].searchParams.get('scope')?.split(' ')).toEqual(
          expect.arrayContaining(['db:query', 'db:modify']),
        );

        const write = await client.callTool({
          name: 'execute',
          arguments: { sql: 'UPDATE customers SET country = ? WHERE id = ?', params: ['PT', 7] },
        });

        expect(write.isError).toBeFalsy();
        expect(write.structuredContent).toMatchObject({ affected_rows: 1 });
      } finally {
        await client.close();
      }
    });
  });
});
