import {
  Client,
  OAuthError,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';
import { DEMO_USERS } from '../sandbox/accounts.js';
import { DEMO_SIZES } from '../sandbox/demo-database.js';
import { callTool, challengeParams, postMcp } from './support/mcp-http.js';
import { HeadlessOAuthClient } from './support/oauth-client.js';
import { expectListsAndQueries, startSandbox, type Sandbox } from './support/sandbox.js';
import {
  HeadlessUserAgent,
  type HeadlessUserAgentOptions,
  LoopbackCallback,
} from './support/user-agent.js';

const [ALICE, BOB] = DEMO_USERS;

function scopesOf(value: unknown): string[] {
  return typeof value === 'string' ? value.split(' ').sort() : [];
}

/**
 * @modelcontextprotocol/client 2.4 against the real app and the sandbox issuer: discovery,
 * registration, PKCE sign-in with a resource indicator, tool calls, step-up and refresh.
 */
describe('@modelcontextprotocol/client 2.4 with the sandbox issuer', () => {
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

  function newClient(pinned: boolean): Client {
    return new Client(
      { name: 'scopedb-e2e', version: '1.0.0' },
      pinned ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
    );
  }

  function transport(oauth: HeadlessOAuthClient): StreamableHTTPClientTransport {
    return new StreamableHTTPClientTransport(new URL(sandbox.app.mcpUrl), { authProvider: oauth });
  }

  /** Connects as a host does: the first attempt sends the user to sign in, then it retries. */
  async function signIn(oauth: HeadlessOAuthClient, client: Client) {
    const first = transport(oauth);
    await expect(client.connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    await first.finishAuth(oauth.callbackParameters());
    const connected = transport(oauth);
    await client.connect(connected);
    return connected;
  }

  it.each([
    ['2025-11-25 (initialize)', false],
    ['2026-07-28 (pinned)', true],
  ])(
    '%s: 401 -> discovery -> registration -> sign-in -> query; execute -> 403 -> step-up -> execute',
    async (_era, pinned) => {
      const browser = new HeadlessUserAgent({ username: ALICE.name, password: ALICE.password });
      const oauth = new HeadlessOAuthClient(browser, callback, `sdk-2.4 pinned=${pinned}`);
      const client = newClient(pinned);

      const connected = await signIn(oauth, client);

      const [authorization] = oauth.authorizationUrls;
      expect(`${authorization.origin}${authorization.pathname}`).toBe(
        `${sandbox.issuer.url}/login/oauth/authorize`,
      );
      expect(authorization.searchParams.get('resource')).toBe(sandbox.app.mcpUrl);
      expect(authorization.searchParams.get('code_challenge_method')).toBe('S256');
      expect(authorization.searchParams.get('scope')?.split(' ')).toContain('db:query');
      expect(authorization.searchParams.get('client_id')).toBe(
        oauth.clientInformation()?.client_id,
      );
      expect(browser.pages.map((page) => page.kind)).toEqual(['login', 'consent']);
      expect(oauth.accessTokenClaims()).toMatchObject({
        iss: sandbox.issuer.url,
        aud: sandbox.app.mcpUrl,
        sub: ALICE.id,
        scope: 'db:query',
        azp: oauth.clientInformation()?.client_id,
        name: ALICE.name,
        email: ALICE.email,
        tokenType: 'access-token',
      });

      try {
        await expectListsAndQueries(client);

        // The 403 makes the client re-authorize with the union of scopes (no new sign-in).
        await expect(
          client.callTool({
            name: 'execute',
            arguments: { sql: 'UPDATE products SET stock = stock + 1 WHERE id = ?', params: [1] },
          }),
        ).rejects.toBeInstanceOf(UnauthorizedError);
        expect(oauth.authorizationUrls).toHaveLength(2);
        expect(scopesOf(oauth.authorizationUrls[1].searchParams.get('scope'))).toEqual(
          expect.arrayContaining(['db:modify', 'db:query']),
        );
        expect(browser.pages.map((page) => page.kind)).toEqual(['login', 'consent', 'consent']);
        await connected.finishAuth(oauth.callbackParameters());
        expect(scopesOf(oauth.accessTokenClaims().scope)).toEqual(['db:modify', 'db:query']);

        const write = await client.callTool({
          name: 'execute',
          arguments: { sql: 'UPDATE products SET stock = stock + 1 WHERE id = ?', params: [1] },
        });
        expect(write.isError).toBeFalsy();
        expect(write.structuredContent).toMatchObject({ affected_rows: 1 });
      } finally {
        await client.close();
      }
    },
  );

  it('refreshes a token the server refuses, and the refreshed token keeps the audience', async () => {
    const browser = new HeadlessUserAgent({ username: ALICE.name, password: ALICE.password });
    const oauth = new HeadlessOAuthClient(browser, callback, 'sdk-2.4 refresh');
    const client = newClient(false);
    await signIn(oauth, client);
    try {
      const before = oauth.tokens();
      expect(before?.refresh_token).toEqual(expect.any(String));
      // A token the server refuses (here: a broken signature) answers 401; the client refreshes.
      const broken = `${before!.access_token.slice(0, -4)}AAAA`;
      oauth.saveTokens({ ...before!, access_token: broken });

      const read = await client.callTool({
        name: 'query',
        arguments: { sql: 'SELECT count(*) AS n FROM products' },
      });

      expect(read.structuredContent).toMatchObject({ rows: [[DEMO_SIZES.products]] });
      expect(oauth.authorizationUrls).toHaveLength(1);
      expect(oauth.tokens()?.access_token).not.toBe(before!.access_token);
      expect(oauth.accessTokenClaims()).toMatchObject({
        iss: sandbox.issuer.url,
        aud: sandbox.app.mcpUrl,
        sub: ALICE.id,
        scope: 'db:query',
      });
    } finally {
      await client.close();
    }
  });

  describe('the read-only demo user', () => {
    /** Bob signs in with db:query, then a call to execute makes the client step up. */
    async function stepUpAsBob(answer: Partial<HeadlessUserAgentOptions> = {}) {
      const browser = new HeadlessUserAgent({ username: BOB.name, password: BOB.password });
      const oauth = new HeadlessOAuthClient(browser, callback, 'sdk-2.4 read-only');
      const client = newClient(false);
      const connected = await signIn(oauth, client);
      const token = oauth.tokens()!.access_token;
      browser.answer(answer);
      await expect(
        client.callTool({ name: 'execute', arguments: { sql: 'DELETE FROM order_items' } }),
      ).rejects.toBeInstanceOf(UnauthorizedError);
      return { browser, oauth, client, connected, token };
    }

    const MAY_NOT_GRANT =
      'the account bob may not grant db:modify (an administrator decides which scopes each account may grant)';

    it('is told at consent that he may not grant db:modify; the client gets access_denied saying so, and execute stays refused', async () => {
      const { browser, oauth, client, connected, token } = await stepUpAsBob();
      try {
        const consent = browser.pages.at(-1)!;
        expect(consent.kind).toBe('consent');
        expect(consent.html).toContain(
          'Your account (bob) may not grant <strong>Change data</strong> <code>db:modify</code>.',
        );
        expect(consent.html).toContain('Insert, update and delete rows');
        expect(consent.html).not.toContain('value="allow"');

        const failed = connected.finishAuth(oauth.callbackParameters());

        await expect(failed).rejects.toBeInstanceOf(OAuthError);
        await expect(failed).rejects.toMatchObject({
          code: 'access_denied',
          message: MAY_NOT_GRANT,
        });
        expect(oauth.tokens()!.access_token).toBe(token);
        const refused = await postMcp(
          sandbox.app.mcpUrl,
          callTool('execute', { sql: 'DELETE FROM order_items' }),
          { token },
        );
        expect(refused.status).toBe(403);
        expect(challengeParams(refused.headers.get('www-authenticate'))).toMatchObject({
          error: 'insufficient_scope',
          scope: 'db:query db:modify',
        });
      } finally {
        await client.close();
      }
    });

    it('a consent form forged to grant db:modify ends the same way, with no token', async () => {
      const { oauth, client, connected, token } = await stepUpAsBob({
        decision: 'allow',
        consent: () => ['db:query', 'db:modify', 'offline_access'],
      });
      try {
        await expect(connected.finishAuth(oauth.callbackParameters())).rejects.toMatchObject({
          code: 'access_denied',
          message: MAY_NOT_GRANT,
        });
        expect(oauth.tokens()!.access_token).toBe(token);
      } finally {
        await client.close();
      }
    });
  });

  it('a user who unchecks db:modify at consent gets a token without it', async () => {
    const browser = new HeadlessUserAgent({ username: ALICE.name, password: ALICE.password });
    const oauth = new HeadlessOAuthClient(browser, callback, 'sdk-2.4 unchecks');
    const client = newClient(false);
    const connected = await signIn(oauth, client);
    try {
      browser.answer({
        consent: (offered) => offered.map((item) => item.scope).filter((s) => s !== 'db:modify'),
      });
      await expect(
        client.callTool({ name: 'execute', arguments: { sql: 'DELETE FROM order_items' } }),
      ).rejects.toBeInstanceOf(UnauthorizedError);
      await connected.finishAuth(oauth.callbackParameters());

      expect(scopesOf(oauth.accessTokenClaims().scope)).toEqual(['db:query']);
    } finally {
      await client.close();
    }
  });

  it('a user who denies the request sends the client back with access_denied', async () => {
    const browser = new HeadlessUserAgent({
      username: BOB.name,
      password: BOB.password,
      decision: 'deny',
    });
    const oauth = new HeadlessOAuthClient(browser, callback, 'sdk-2.4 denied');

    await expect(newClient(false).connect(transport(oauth))).rejects.toBeInstanceOf(
      UnauthorizedError,
    );

    expect(Object.fromEntries(oauth.callbackParameters())).toMatchObject({
      error: 'access_denied',
      iss: sandbox.issuer.url,
    });
    expect(oauth.tokens()).toBeUndefined();
  });
});
