import { createHash, randomBytes } from 'node:crypto';
import { OAuthError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DEMO_USERS, type DemoUser } from '../sandbox/accounts.js';
import { ClientPages, launchChromium } from './support/chromium.js';
import { mcpHeaders, mcpMessageJson } from './support/mcp-wire.mjs';
import { HeadlessOAuthClient, redeemCode, requestAuthorization } from './support/oauth-client.js';
import { startSandbox, type Sandbox } from './support/sandbox.js';
import { toolClient } from './support/tool-client.js';
import { LoopbackCallback } from './support/user-agent.js';

const [ALICE, BOB] = DEMO_USERS;

/** Launching Chromium and walking a sign-in take seconds on a loaded machine. */
const BROWSER_TIMEOUT_MS = 90_000;

/**
 * The sandbox's login and consent pages in Debian's Chromium (headless, through playwright-core),
 * and a browser-based client calling the sandbox issuer across origins, as MCP Inspector does in
 * Direct mode.
 */
describe('the sandbox issuer in Chromium', () => {
  let browser: Browser;
  let sandbox: Sandbox;
  let pages: ClientPages;
  let callback: LoopbackCallback;
  let context: BrowserContext;
  let page: Page;
  beforeAll(async () => {
    browser = await launchChromium();
    pages = await ClientPages.start();
    sandbox = await startSandbox({ MCP_ALLOWED_ORIGINS: pages.origin });
    callback = await LoopbackCallback.start();
  }, BROWSER_TIMEOUT_MS);
  afterAll(async () => {
    await browser?.close();
    await callback?.close();
    await sandbox?.close();
    await pages?.close();
  });
  // A new browser context per test: no cookies, so no sign-in carried over.
  beforeEach(async () => {
    context = await browser.newContext();
    page = await context.newPage();
  });
  afterEach(() => context.close());

  /** An MCP client with a loopback redirect_uri whose browser is this Chromium page. */
  function nativeClient(user: DemoUser) {
    return new HeadlessOAuthClient(
      { open: (url) => page.goto(url.href) },
      callback,
      `Chromium e2e (${user.name})`,
    );
  }

  async function logIn(user: DemoUser, clientName: string) {
    await expect(page.locator('h1').textContent()).resolves.toBe(
      `Sign in to continue to ${clientName}`,
    );
    await page.getByLabel('User name').fill(user.name);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/interaction\//);
  }

  /** Waits until Chromium is at `redirectUri`; the parameters it carried. */
  async function redirectedTo(redirectUri: string): Promise<URLSearchParams> {
    await page.waitForURL((url) => url.href.startsWith(`${redirectUri}?`));
    return new URL(page.url()).searchParams;
  }

  const scopeBox = (scope: string) => page.locator(`input[name="scope"][value="${scope}"]`);

  it(
    'alice signs in, sees the scopes, unticks and ticks them, allows; the code buys a token that calls /mcp',
    async () => {
      const oauth = nativeClient(ALICE);
      await requestAuthorization(oauth, sandbox.app.mcpUrl, 'db:query db:modify');

      await logIn(ALICE, 'Chromium e2e (alice)');
      await expect(page.locator('h1').textContent()).resolves.toBe(
        'Chromium e2e (alice) asks for access',
      );
      const offered = await Promise.all(
        (await page.locator('input[name="scope"]').all()).map(async (box) => [
          await box.getAttribute('value'),
          await box.isChecked(),
        ]),
      );
      expect(offered).toEqual([
        ['db:query', true],
        ['db:modify', true],
        ['offline_access', true],
      ]);
      await expect(page.getByText('Insert, update and delete rows').isVisible()).resolves.toBe(
        true,
      );
      await scopeBox('db:modify').uncheck();
      await scopeBox('offline_access').uncheck();
      await page.getByText('Change data').click(); // the label ticks it again
      await expect(scopeBox('db:modify').isChecked()).resolves.toBe(true);
      await page.getByRole('button', { name: 'Allow' }).click();

      const answer = await redirectedTo(callback.url);
      await expect(page.locator('body').textContent()).resolves.toContain('Signed in');
      expect(answer.get('iss')).toBe(sandbox.issuer.url);
      await redeemCode(oauth, sandbox.app.mcpUrl, answer);

      const tokens = oauth.tokens()!;
      expect(String(oauth.accessTokenClaims().scope).split(' ').sort()).toEqual([
        'db:modify',
        'db:query',
      ]);
      expect(tokens.refresh_token).toBeUndefined();
      await expect(
        toolClient(sandbox.app.mcpUrl, tokens.access_token).ok('execute', {
          sql: 'UPDATE products SET stock = stock WHERE id = ?',
          params: [1],
        }),
      ).resolves.toMatchObject({ affected_rows: 1 });
    },
    BROWSER_TIMEOUT_MS,
  );

  it(
    'bob steps up to db:modify: the page says he may not grant it, and the client gets access_denied saying so',
    async () => {
      const oauth = nativeClient(BOB);
      await requestAuthorization(oauth, sandbox.app.mcpUrl, 'db:query');
      await logIn(BOB, 'Chromium e2e (bob)');
      await page.getByRole('button', { name: 'Allow' }).click();
      const token = await redeemCode(oauth, sandbox.app.mcpUrl, await redirectedTo(callback.url));

      await requestAuthorization(oauth, sandbox.app.mcpUrl, 'db:query db:modify');

      await expect(page.locator('h1').textContent()).resolves.toBe(
        'Chromium e2e (bob) asks for access you may not grant',
      );
      await expect(page.getByRole('alert').textContent()).resolves.toBe(
        'Your account (bob) may not grant Change data db:modify. An administrator decides which scopes each account may grant.',
      );
      await expect(page.getByRole('button', { name: 'Allow' }).count()).resolves.toBe(0);
      await page.getByRole('button', { name: 'Back to Chromium e2e (bob)' }).click();

      const answer = await redirectedTo(callback.url);
      expect(answer.has('code')).toBe(false);
      const transport = new StreamableHTTPClientTransport(new URL(sandbox.app.mcpUrl), {
        authProvider: oauth,
      });
      const shown = transport.finishAuth(answer);
      await expect(shown).rejects.toBeInstanceOf(OAuthError);
      await expect(shown).rejects.toMatchObject({
        code: 'access_denied',
        message:
          'the account bob may not grant db:modify (an administrator decides which scopes each account may grant)',
      });
      expect(oauth.tokens()!.access_token).toBe(token);
    },
    BROWSER_TIMEOUT_MS,
  );

  it(
    'a browser-based client (MCP Inspector, Direct mode) discovers, registers, signs in, redeems the code and calls /mcp, all across origins',
    async () => {
      const redirectUri = `${pages.origin}/oauth/callback`;
      await page.goto(`${pages.origin}/`);

      const setup = await page.evaluate(
        async ({ mcpUrl, redirectUri }) => {
          const challenge = await fetch(mcpUrl, { method: 'POST' });
          const resource = (await (
            await fetch(
              `${new URL(mcpUrl).origin}/.well-known/oauth-protected-resource${new URL(mcpUrl).pathname}`,
              { headers: { 'MCP-Protocol-Version': '2025-11-25' } },
            )
          ).json()) as { authorization_servers: string[] };
          const [issuer] = resource.authorization_servers;
          const metadata = (await (
            await fetch(`${issuer}/.well-known/oauth-authorization-server`, {
              headers: { 'MCP-Protocol-Version': '2025-11-25' },
            })
          ).json()) as Record<string, string>;
          const registration = await fetch(metadata.registration_endpoint, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({
              client_name: 'MCP Inspector',
              redirect_uris: [redirectUri],
              grant_types: ['authorization_code', 'refresh_token'],
              response_types: ['code'],
              token_endpoint_auth_method: 'none',
            }),
          });
          const client = (await registration.json()) as { client_id: string };
          await fetch(metadata.jwks_uri).then((response) => response.json());
          return {
            challengeStatus: challenge.status,
            issuer,
            metadata,
            registrationStatus: registration.status,
            clientId: client.client_id,
          };
        },
        { mcpUrl: sandbox.app.mcpUrl, redirectUri },
      );
      expect(setup).toMatchObject({
        challengeStatus: 401,
        issuer: sandbox.issuer.url,
        registrationStatus: 201,
        clientId: expect.any(String) as string,
      });

      const verifier = randomBytes(32).toString('base64url');
      const authorization = new URL(setup.metadata.authorization_endpoint);
      authorization.search = new URLSearchParams({
        response_type: 'code',
        client_id: setup.clientId,
        redirect_uri: redirectUri,
        scope: 'db:query',
        state: randomBytes(16).toString('base64url'),
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
        resource: sandbox.app.mcpUrl,
      }).toString();
      await page.goto(authorization.href);
      await logIn(ALICE, 'MCP Inspector');
      await page.getByRole('button', { name: 'Allow' }).click();
      const answer = await redirectedTo(redirectUri);
      expect(answer.get('state')).toBe(authorization.searchParams.get('state'));

      const redeemed = await page.evaluate(
        async ({ tokenEndpoint, clientId, code, verifier, redirectUri, mcpUrl, headers }) => {
          const tokenResponse = await fetch(tokenEndpoint, {
            method: 'POST',
            headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              grant_type: 'authorization_code',
              client_id: clientId,
              code,
              code_verifier: verifier,
              redirect_uri: redirectUri,
            }),
          });
          const tokens = (await tokenResponse.json()) as { access_token: string; scope: string };
          const mcp = await fetch(mcpUrl, {
            method: 'POST',
            headers: { ...headers, Authorization: `Bearer ${tokens.access_token}` },
            body: JSON.stringify({
              jsonrpc: '2.0',
              id: 1,
              method: 'tools/call',
              params: { name: 'query', arguments: { sql: 'SELECT 6 * 7 AS answer' } },
            }),
          });
          return {
            tokenStatus: tokenResponse.status,
            scope: tokens.scope,
            mcpStatus: mcp.status,
            contentType: mcp.headers.get('content-type') ?? '',
            body: await mcp.text(),
          };
        },
        {
          tokenEndpoint: setup.metadata.token_endpoint,
          clientId: setup.clientId,
          code: answer.get('code') ?? '',
          verifier,
          redirectUri,
          mcpUrl: sandbox.app.mcpUrl,
          headers: mcpHeaders(),
        },
      );
      expect(redeemed).toMatchObject({ tokenStatus: 200, scope: 'db:query', mcpStatus: 200 });
      expect(JSON.parse(mcpMessageJson(redeemed.contentType, redeemed.body)!)).toMatchObject({
        result: { structuredContent: { rows: [[42]] } },
      });
    },
    BROWSER_TIMEOUT_MS,
  );

  it(
    "a page at another origin may register, but cannot read the token endpoint's answers for a client called back elsewhere",
    async () => {
      // The same server under another name: another origin.
      await page.goto(`http://localhost:${pages.port}/`);

      const outcome = await page.evaluate(
        async ({ issuer, redirectUri }) => {
          const registration = await fetch(`${issuer}/api/oauth/register`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({
              redirect_uris: [redirectUri],
              token_endpoint_auth_method: 'none',
            }),
          });
          const { client_id: clientId } = (await registration.json()) as { client_id: string };
          const token = await fetch(`${issuer}/api/login/oauth/access_token`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              grant_type: 'refresh_token',
              refresh_token: 'not-a-refresh-token',
              client_id: clientId,
            }),
          }).then(
            (response) => `answered ${response.status}`,
            (error: Error) => `${error.name}: ${error.message}`,
          );
          return { registrationStatus: registration.status, token };
        },
        { issuer: sandbox.issuer.url, redirectUri: `${pages.origin}/oauth/callback` },
      );

      expect(outcome).toEqual({
        registrationStatus: 201,
        token: 'TypeError: Failed to fetch',
      });
    },
    BROWSER_TIMEOUT_MS,
  );
});
