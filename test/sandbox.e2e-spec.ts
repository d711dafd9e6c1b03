import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { OAuthClientMetadata } from '@modelcontextprotocol/client';
import Database from 'better-sqlite3';
import { DEMO_USERS, type DemoUser } from '../sandbox/accounts.js';
import { DEMO_SIZES } from '../sandbox/demo-database.js';
import { freePort } from './support/app.js';
import { challengeParams, initialize, postMcp, preflight } from './support/mcp-http.js';
import { type NodeProcess, startNode } from './support/node-process.js';
import { HeadlessOAuthClient, redeemCode, requestAuthorization } from './support/oauth-client.js';
import { toolClient } from './support/tool-client.js';
import { HeadlessUserAgent, LoopbackCallback, type OfferedScope } from './support/user-agent.js';

const SANDBOX = resolve('dist-sandbox/sandbox/main.js');
const MAIN = resolve('dist/main.js');

/** Resolves once stdout contains `text`; rejects if the process exits first. */
function waitFor(running: NodeProcess, text: string): Promise<void> {
  return new Promise((done, fail) => {
    const check = () => {
      if (running.output().stdout.includes(text)) {
        running.child.stdout!.off('data', check);
        done();
      }
    };
    running.child.stdout!.on('data', check);
    void running.exited.then(({ code }) => {
      const { stdout, stderr } = running.output();
      if (!stdout.includes(text)) fail(new Error(`exited with ${code}: ${stdout}${stderr}`));
    });
    check();
  });
}

describe('npm run dev (dist-sandbox/sandbox/main.js)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-sandbox-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses to start with NODE_ENV=production, with a message saying why', async () => {
    const sut = startNode(SANDBOX, { NODE_ENV: 'production' }, dir);

    expect((await sut.exited).code).toBe(1);
    expect(sut.output().stderr).toContain('NODE_ENV is production');
    expect(sut.output().stderr).toContain('node dist/main.js');
    expect(sut.output().stdout).toBe('');
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });

  it('seeds the demo database, serves a Casdoor-shaped issuer and ScopeDB, and says what to do next', async () => {
    const [port, issuerPort] = [await freePort(), await freePort()];
    const issuer = `http://localhost:${issuerPort}`;
    const mcpUrl = `http://localhost:${port}/mcp`;
    const sut = startNode(
      SANDBOX,
      { PORT: String(port), SANDBOX_ISSUER_PORT: String(issuerPort) },
      dir,
    );
    try {
      await waitFor(sut, 'Stop with Ctrl+C');
      const { stdout } = sut.output();
      expect(stdout).toContain(`MCP endpoint (Streamable HTTP)   ${mcpUrl}`);
      expect(stdout).toContain(issuer);
      expect(stdout).toContain('alice / alice-demo');
      expect(stdout).toContain('bob / bob-demo');
      expect(stdout).toContain('npx @modelcontextprotocol/inspector');
      expect(stdout).toContain('"args": [\n            "-y",\n            "mcp-remote"');

      const discovery = (await (
        await fetch(`${issuer}/.well-known/openid-configuration`)
      ).json()) as Record<string, unknown>;
      expect(discovery).toMatchObject({
        issuer,
        authorization_endpoint: `${issuer}/login/oauth/authorize`,
        token_endpoint: `${issuer}/api/login/oauth/access_token`,
        registration_endpoint: `${issuer}/api/oauth/register`,
        jwks_uri: `${issuer}/.well-known/jwks`,
        code_challenge_methods_supported: ['S256'],
      });
      const asMetadata = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
      expect(await asMetadata.json()).toEqual(discovery);

      const unauthenticated = await postMcp(mcpUrl, initialize());
      expect(unauthenticated.status).toBe(401);
      const metadataUrl = challengeParams(
        unauthenticated.headers.get('www-authenticate'),
      ).resource_metadata;
      expect(await (await fetch(metadataUrl)).json()).toMatchObject({
        resource: mcpUrl,
        authorization_servers: [issuer],
      });

      const db = new Database(join(dir, 'data/demo.sqlite'), { readonly: true });
      try {
        expect(db.prepare('SELECT count(*) AS n FROM customers').get()).toEqual({
          n: DEMO_SIZES.customers,
        });
      } finally {
        db.close();
      }
    } finally {
      sut.child.kill('SIGTERM');
    }
    expect((await sut.exited).code).toBe(0);
  });
});

/** `npm run dev` in `dir` on free ports, once it has said what to do next. */
async function startDev(dir: string, env: Record<string, string> = {}) {
  const [port, issuerPort] = [await freePort(), await freePort()];
  const sut = startNode(
    SANDBOX,
    { PORT: String(port), SANDBOX_ISSUER_PORT: String(issuerPort), ...env },
    dir,
  );
  await waitFor(sut, 'Stop with Ctrl+C');
  return {
    sut,
    mcpUrl: `http://localhost:${port}/mcp`,
    issuerUrl: `http://localhost:${issuerPort}`,
  };
}

/** Sends the browser to the sandbox issuer as an MCP client does, asking for `scope`; its answer. */
async function authorize(oauth: HeadlessOAuthClient, mcpUrl: string, scope: string) {
  await requestAuthorization(oauth, mcpUrl, scope);
  return oauth.callbackParameters();
}

/**
 * The browser and client of `user` at the sandbox issuer; `consent` answers the consent form (by
 * default: what it has checked). `offered` collects what the forms offered.
 */
function userAndClient(
  callback: LoopbackCallback,
  user: DemoUser,
  consent: (offered: readonly OfferedScope[]) => readonly string[] = (offered) =>
    offered.filter((item) => item.checked && !item.disabled).map((item) => item.scope),
  metadata: Partial<OAuthClientMetadata> = {},
) {
  const offered: OfferedScope[] = [];
  const browser = new HeadlessUserAgent({
    username: user.name,
    password: user.password,
    consent: (items) => {
      offered.push(...items);
      return consent(items);
    },
  });
  const oauth = new HeadlessOAuthClient(browser, callback, `sandbox e2e (${user.name})`, metadata);
  return { browser, oauth, offered };
}

/** Signs `user` in as an MCP client does, asking for `scope`; its token. */
async function signIn(
  mcpUrl: string,
  callback: LoopbackCallback,
  user: DemoUser,
  scope: string,
  consent?: (offered: readonly OfferedScope[]) => readonly string[],
) {
  const agent = userAndClient(callback, user, consent);
  const token = await redeemCode(agent.oauth, mcpUrl, await authorize(agent.oauth, mcpUrl, scope));
  return { ...agent, token };
}

/** The error_description of a refusal because `user` may not grant `scopes`. */
const mayNotGrant = (user: DemoUser, scopes: string) =>
  `the account ${user.name} may not grant ${scopes} (an administrator decides which scopes each account may grant)`;

/** The MCP SDK adds offline_access to what it asks for when the issuer supports it. */
const OFFLINE_ACCESS: OfferedScope = { scope: 'offline_access', checked: true, disabled: false };

const scopesOf = (claims: Record<string, unknown>) => String(claims.scope).split(' ').sort();

/** MCP Inspector's web UI: 1.x opens on the first, 2.x on the second. */
const INSPECTOR_ORIGINS = ['http://localhost:6274', 'http://127.0.0.1:6274'];

/** The response's CORS headers (none allows credentials). */
function corsHeaders(response: Response): Record<string, string> {
  return Object.fromEntries(
    [...response.headers].filter(
      ([name]) => name.startsWith('access-control-allow-') || name === 'access-control-max-age',
    ),
  );
}

/** What MCP Inspector registers in Direct mode: a public client called back on its own page. */
function inspectorRegistration(origin: string) {
  return {
    client_name: 'MCP Inspector',
    redirect_uris: [`${origin}/oauth/callback`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    scope: 'db:query',
  };
}

describe('npm run dev with the worked example extension (on by default)', () => {
  const [ALICE, BOB] = DEMO_USERS;
  let dir: string;
  let dev: Awaited<ReturnType<typeof startDev>>;
  let callback: LoopbackCallback;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-sandbox-'));
    dev = await startDev(dir);
    callback = await LoopbackCallback.start();
  });
  afterAll(async () => {
    await callback.close();
    dev.sut.child.kill('SIGTERM');
    await dev.sut.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints every scope the server declares, reports:read among them, and who may grant what', () => {
    const { stdout } = dev.sut.output();

    expect(stdout).toMatch(
      /alice \/ alice-demo +may grant db:admin db:modify db:query reports:read\n/,
    );
    expect(stdout).toMatch(/bob \/ bob-demo +may grant db:query\n/);
    expect(stdout).toMatch(/reports:read +Read sales reports +revenue_by_month, top_customers\n/);
    expect(stdout).toMatch(
      /db:modify +Change data +insert_rows, update_rows, delete_rows, execute/,
    );
    expect(stdout).toContain('REPORTS_EXAMPLE=false leaves it out');
  });

  it.each(INSPECTOR_ORIGINS)(
    "lets MCP Inspector's web UI at %s call the endpoint (CORS preflight)",
    async (origin) => {
      const response = await preflight(dev.mcpUrl, origin);

      expect(response.status).toBe(204);
      expect(response.headers.get('access-control-allow-origin')).toBe(origin);
    },
  );

  it('offers alice reports:read at consent, with its words; she grants it and runs both reports over MCP', async () => {
    const { browser, oauth, offered, token } = await signIn(
      dev.mcpUrl,
      callback,
      ALICE,
      'db:query reports:read',
    );

    expect(offered).toEqual([
      { scope: 'db:query', checked: true, disabled: false },
      { scope: 'reports:read', checked: true, disabled: false },
      OFFLINE_ACCESS,
    ]);
    const [login, consent] = browser.pages;
    expect(login.html).toContain('<td>db:admin db:modify db:query reports:read</td>');
    expect(consent.html).toContain('<strong>Read sales reports</strong> <code>reports:read</code>');
    expect(consent.html).toContain(
      'Run the reviewed sales reports (revenue by month, top customers), nothing else',
    );
    expect(scopesOf(oauth.accessTokenClaims())).toEqual(['db:query', 'reports:read']);

    const client = toolClient(dev.mcpUrl, token);
    const top = await client.ok('top_customers', { limit: 3 });
    const months = await client.ok('revenue_by_month', {});

    const db = new Database(join(dir, 'data/demo.sqlite'), { readonly: true });
    try {
      expect(top).toEqual({
        customers: db
          .prepare(
            `SELECT c.id, c.name, c.country, count(*) AS orders, sum(t.total_cents) AS revenue_cents
               FROM order_totals t JOIN customers c ON c.id = t.customer_id
              WHERE t.status <> 'cancelled'
              GROUP BY c.id ORDER BY revenue_cents DESC, c.id LIMIT 3`,
          )
          .all(),
      });
      const totals = (months.months as { orders: number; revenue_cents: number }[]).reduce(
        (sum, month) => ({
          orders: sum.orders + month.orders,
          revenue_cents: sum.revenue_cents + month.revenue_cents,
        }),
        { orders: 0, revenue_cents: 0 },
      );
      expect({ totals, truncated: months.truncated }).toEqual({
        totals: db
          .prepare(
            `SELECT count(*) AS orders, sum(total_cents) AS revenue_cents
               FROM order_totals WHERE status <> 'cancelled'`,
          )
          .get(),
        truncated: false,
      });
    } finally {
      db.close();
    }
  });

  it('tells bob he may not grant reports:read, and the client gets access_denied saying so, not a token without it', async () => {
    const { browser, oauth } = userAndClient(callback, BOB);

    const answer = await authorize(oauth, dev.mcpUrl, 'db:query reports:read');

    const refusal = browser.pages.at(-1)!;
    expect(refusal.kind).toBe('consent');
    expect(refusal.html).toContain(
      '<p class="error" role="alert">Your account (bob) may not grant <strong>Read sales reports</strong> <code>reports:read</code>. An administrator decides which scopes each account may grant.</p>',
    );
    expect(refusal.html).toContain(
      '<li class="scope"><strong>Read sales reports</strong> <code>reports:read</code>: <span class="error">you may not grant this</span>',
    );
    expect(refusal.html).toContain(
      '<li class="scope"><strong>Read the database</strong> <code>db:query</code>: you may grant this',
    );
    expect(refusal.html).not.toContain('value="allow"');
    expect(refusal.html).toContain('<button type="submit" name="decision" value="deny">Back to');
    expect(Object.fromEntries(answer)).toMatchObject({
      error: 'access_denied',
      error_description: mayNotGrant(BOB, 'reports:read'),
    });
    expect(answer.has('code')).toBe(false);
    expect(oauth.tokens()).toBeUndefined();
  });

  describe('bob steps up to db:modify, which he may not grant', () => {
    it('the consent page says so; the client gets access_denied naming the scope and keeps its token', async () => {
      const { browser, oauth, token } = await signIn(dev.mcpUrl, callback, BOB, 'db:query');

      const answer = await authorize(oauth, dev.mcpUrl, 'db:query db:modify');

      expect(browser.pages.map((page) => page.kind)).toEqual(['login', 'consent', 'consent']);
      expect(browser.pages[2].html).toContain(
        'Your account (bob) may not grant <strong>Change data</strong> <code>db:modify</code>.',
      );
      expect(Object.fromEntries(answer)).toMatchObject({
        error: 'access_denied',
        error_description: mayNotGrant(BOB, 'db:modify'),
      });
      expect(oauth.tokens()!.access_token).toBe(token);
      await toolClient(dev.mcpUrl, token).ok('query', { sql: 'SELECT 1 AS one' });
    });

    it('a forged Allow with db:modify ticked ends the same way: no token, not a narrower one', async () => {
      const { browser, oauth, token } = await signIn(dev.mcpUrl, callback, BOB, 'db:query');
      browser.answer({ decision: 'allow', consent: () => ['db:query', 'db:modify'] });

      const answer = await authorize(oauth, dev.mcpUrl, 'db:query db:modify');

      expect(Object.fromEntries(answer)).toMatchObject({
        error: 'access_denied',
        error_description: mayNotGrant(BOB, 'db:modify'),
      });
      expect(oauth.tokens()!.access_token).toBe(token);
    });
  });

  it('asks alice again for a scope she unticked before, rather than answering from her refusal', async () => {
    // A web client (MCP Inspector 1.x) that asks for no refresh tokens: it sends no
    // prompt=consent, and oidc-provider shows the page to native clients only, so nothing else
    // brings the consent page back.
    const { browser, oauth } = userAndClient(
      callback,
      ALICE,
      (offered) => offered.map((item) => item.scope).filter((scope) => scope !== 'db:modify'),
      { application_type: 'web', grant_types: ['authorization_code'] },
    );
    await redeemCode(oauth, dev.mcpUrl, await authorize(oauth, dev.mcpUrl, 'db:query db:modify'));
    expect(scopesOf(oauth.accessTokenClaims())).toEqual(['db:query']);
    browser.answer({ consent: (offered) => offered.map((item) => item.scope) });

    await redeemCode(oauth, dev.mcpUrl, await authorize(oauth, dev.mcpUrl, 'db:query db:modify'));

    expect(oauth.authorizationUrls.map((url) => url.searchParams.get('prompt'))).toEqual([
      null,
      null,
    ]);
    expect(browser.pages.map((page) => page.kind)).toEqual(['login', 'consent', 'consent']);
    expect(scopesOf(oauth.accessTokenClaims())).toEqual(['db:modify', 'db:query']);
  });

  describe.each(INSPECTOR_ORIGINS)(
    'a browser-based client at %s (MCP Inspector in Direct mode)',
    (origin) => {
      it.each([
        ['/.well-known/openid-configuration', 'GET'],
        ['/.well-known/oauth-authorization-server', 'GET'],
        ['/.well-known/jwks', 'GET'],
        ['/api/oauth/register', 'POST'],
        ['/api/login/oauth/access_token', 'POST'],
        ['/api/userinfo', 'GET'],
        ['/api/login/oauth/introspect', 'POST'],
      ])(
        'may call %s (%s): the preflight allows its origin, the method and headers',
        async (path, method) => {
          const response = await preflight(`${dev.issuerUrl}${path}`, origin, {
            method,
            headers: 'content-type, mcp-protocol-version',
          });

          expect(response.status).toBe(204);
          expect(corsHeaders(response)).toEqual({
            'access-control-allow-origin': origin,
            'access-control-allow-methods': expect.stringContaining(method) as string,
            'access-control-allow-headers': 'content-type, mcp-protocol-version',
            'access-control-max-age': '3600',
          });
        },
      );

      it("reads discovery and JWKS, registers, and reads the token endpoint's answers; a page elsewhere cannot use its client", async () => {
        for (const path of [
          '/.well-known/openid-configuration',
          '/.well-known/oauth-authorization-server',
          '/.well-known/jwks',
        ]) {
          const response = await fetch(`${dev.issuerUrl}${path}`, { headers: { Origin: origin } });
          expect({ path, status: response.status, cors: corsHeaders(response) }).toEqual({
            path,
            status: 200,
            cors: { 'access-control-allow-origin': origin },
          });
        }

        const registration = await fetch(`${dev.issuerUrl}/api/oauth/register`, {
          method: 'POST',
          headers: { Origin: origin, 'Content-Type': 'application/json' },
          body: JSON.stringify(inspectorRegistration(origin)),
        });
        expect(registration.status).toBe(201);
        expect(corsHeaders(registration)).toEqual({ 'access-control-allow-origin': origin });
        const { client_id: clientId } = (await registration.json()) as { client_id: string };

        const token = (from: string) =>
          fetch(`${dev.issuerUrl}/api/login/oauth/access_token`, {
            method: 'POST',
            headers: { Origin: from, 'Content-Type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              grant_type: 'refresh_token',
              refresh_token: 'not-a-refresh-token',
              client_id: clientId,
            }),
          });
        const own = await token(origin);
        expect(own.status).toBe(400);
        expect(corsHeaders(own)).toMatchObject({ 'access-control-allow-origin': origin });
        expect(await own.json()).toMatchObject({ error: 'invalid_grant' });
        const elsewhere = await token('http://localhost:6275');
        expect(elsewhere.status).toBe(400);
        expect(corsHeaders(elsewhere)).not.toHaveProperty('access-control-allow-origin');
      });
    },
  );
});

describe('REPORTS_EXAMPLE=false npm run dev', () => {
  let dir: string;
  let callback: LoopbackCallback;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-sandbox-'));
    callback = await LoopbackCallback.start();
  });
  afterAll(async () => {
    await callback.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('offers no reports:read: neither printed, nor at consent, nor in the token', async () => {
    const dev = await startDev(dir, { REPORTS_EXAMPLE: 'false' });
    try {
      const { stdout } = dev.sut.output();
      expect(stdout).not.toContain('reports:read');
      expect(stdout).toMatch(/alice \/ alice-demo +may grant db:admin db:modify db:query\n/);
      expect(stdout).toContain('REPORTS_EXAMPLE=true serves it');

      const [alice] = DEMO_USERS;
      const { offered, oauth } = await signIn(dev.mcpUrl, callback, alice, 'db:query reports:read');

      expect(offered).toEqual([
        { scope: 'db:query', checked: true, disabled: false },
        OFFLINE_ACCESS,
      ]);
      expect(scopesOf(oauth.accessTokenClaims())).toEqual(['db:query']);
    } finally {
      dev.sut.child.kill('SIGTERM');
    }
    expect((await dev.sut.exited).code).toBe(0);
  });
});

describe('the production entrypoint (node dist/main.js)', () => {
  it('contains no sandbox code: nothing in dist/ imports oidc-provider or the sandbox', () => {
    const files = readdirSync('dist', { recursive: true, encoding: 'utf8' }).filter((file) =>
      file.endsWith('.js'),
    );

    expect(files).toContain('main.js');
    for (const file of files) {
      const text = readFileSync(join('dist', file), 'utf8');
      expect({ file, oidcProvider: text.includes('oidc-provider') }).toEqual({
        file,
        oidcProvider: false,
      });
      expect({ file, sandbox: /from ['"][./]*sandbox\//.test(text) }).toEqual({
        file,
        sandbox: false,
      });
    }
  });

  it('serves none of the issuer routes, whatever the settings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopedb-main-'));
    const port = await freePort();
    const base = `http://localhost:${port}`;
    const sut = startNode(
      MAIN,
      { AUTH_ISSUER: base, PORT: String(port), NODE_ENV: 'development' },
      dir,
    );
    try {
      await waitFor(sut, 'MCP endpoint');
      for (const path of [
        '/.well-known/openid-configuration',
        '/.well-known/oauth-authorization-server',
        '/.well-known/jwks',
        '/login/oauth/authorize?client_id=x&response_type=code',
        '/interaction/x',
      ])
        expect({ path, status: (await fetch(`${base}${path}`)).status }).toEqual({
          path,
          status: 404,
        });
      for (const path of ['/api/oauth/register', '/api/login/oauth/access_token'])
        expect({
          path,
          status: (await fetch(`${base}${path}`, { method: 'POST', body: '{}' })).status,
        }).toEqual({ path, status: 404 });
    } finally {
      sut.child.kill('SIGTERM');
      await sut.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
