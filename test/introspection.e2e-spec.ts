// Revocation through Casdoor's introspection (RFC 7662, AUTH_INTROSPECTION): real HTTP against the
// listening app and the loopback issuer, whose /api/login/oauth/introspect answers as Casdoor's
// controllers/token.go IntrospectToken does (test/support/introspection-endpoint.ts).
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, startTestApp, type TestApp } from './support/app.js';
import { logLines, untilReadiness } from './support/audit-outage.js';
import { readAuditRows } from './support/audit-rows.js';
import { TestIssuer } from './support/issuer.js';
import { challengeParams, initialize, postMcp, type McpResponse } from './support/mcp-http.js';
import { movement, scrape } from './support/metrics.js';
import { type ServerProcess, startNode, startServer } from './support/node-process.js';
import { nextRequestId } from './support/request-ids.js';

const REVOKED = 'the token was revoked or has expired at the issuer (introspection)';
const UNREACHABLE =
  "Casdoor's introspection cannot be reached, so the token cannot be confirmed; retry later";

let issuer: TestIssuer;
beforeAll(async () => {
  issuer = await TestIssuer.start();
});
afterAll(() => issuer.close());
afterEach(() => {
  issuer.introspection.failure = undefined;
  issuer.discoveryOverrides = {};
});

/**
 * A token of the test issuer with a `jti` of its own: two tokens signed in the same second with the
 * same claims would be the same string, and one's revocation (or cached answer) the other's.
 */
const freshToken = (options: Parameters<TestIssuer['token']>[0]) =>
  issuer.token({ ...options, claims: { jti: `admin/${randomUUID()}`, ...options.claims } });

/** The settings that turn introspection on with the test issuer's client. */
const introspectionOn = (env: Record<string, string> = {}) => ({
  AUTH_ISSUER: issuer.url,
  AUTH_INTROSPECTION: 'true',
  AUTH_INTROSPECTION_CLIENT_ID: issuer.introspection.client.id,
  AUTH_INTROSPECTION_CLIENT_SECRET: issuer.introspection.client.secret,
  ...env,
});

/** Polls `request` until `done` holds for its answer (at most `seconds`); returns that answer. */
async function until(
  request: () => Promise<McpResponse>,
  done: (response: McpResponse) => boolean,
  seconds = 30,
): Promise<McpResponse> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const response = await request();
    if (done(response) || Date.now() > deadline) return response;
    await new Promise((wait) => setTimeout(wait, 100));
  }
}

async function readiness(app: { baseUrl: string }) {
  const response = await fetch(`${app.baseUrl}/readyz`);
  const body = (await response.json()) as {
    details: Record<string, Record<string, unknown>>;
  };
  return { status: response.status, introspection: body.details.introspection };
}

describe('the test issuer answers introspection as Casdoor does', () => {
  const endpoint = () => `${issuer.url}/api/login/oauth/introspect`;
  const introspect = async (
    form: Record<string, string>,
    credentials = `${issuer.introspection.client.id}:${issuer.introspection.client.secret}`,
  ) => {
    const response = await fetch(endpoint(), {
      method: 'POST',
      headers: {
        Authorization: `Basic ${Buffer.from(credentials).toString('base64')}`,
        'Content-Type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams(form),
    });
    return {
      status: response.status,
      headers: response.headers,
      body: (await response.json()) as Record<string, unknown>,
    };
  };
  const access = () => freshToken({ audience: 'https://mcp.example.com', scope: 'db:query' });
  const refresh = () =>
    freshToken({ audience: 'https://mcp.example.com', claims: { tokenType: 'refresh-token' } });

  it('is advertised in discovery', async () => {
    const doc = (await (
      await fetch(`${issuer.url}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(doc.introspection_endpoint).toBe(endpoint());
  });

  it('describes a live access token of its own application', async () => {
    const token = access();
    const { status, body } = await introspect({ token, token_type_hint: 'access_token' });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      active: true,
      client_id: issuer.introspection.client.id,
      token_type: 'Bearer',
      scope: 'db:query',
      iss: issuer.url,
      aud: ['https://mcp.example.com'],
    });
    expect(typeof body.exp).toBe('number');
  });

  it.each([
    ['an unknown value', () => 'not-a-token-casdoor-issued'],
    [
      'a revoked (signed out) token',
      () => {
        const token = access();
        issuer.revoke(token);
        return token;
      },
    ],
    [
      'an expired token',
      () => freshToken({ audience: 'x', claims: { exp: Math.floor(Date.now() / 1000) - 10 } }),
    ],
    [
      "another application's token",
      () => freshToken({ audience: 'x', claims: { azp: 'another-app' } }),
    ],
    ['a refresh token looked up as an access token', refresh],
  ])('answers {"active": false} for %s', async (_, tokenOf) => {
    const { status, body } = await introspect({
      token: tokenOf(),
      token_type_hint: 'access_token',
    });
    expect({ status, body }).toEqual({ status: 200, body: { active: false } });
  });

  it('finds a refresh token under its own hint, or under none', async () => {
    const token = refresh();
    expect((await introspect({ token, token_type_hint: 'refresh_token' })).body.active).toBe(true);
    expect((await introspect({ token })).body.active).toBe(true);
  });

  it('refuses a wrong secret with 401 invalid_client, missing credentials with 400', async () => {
    const wrong = await introspect({ token: access() }, `${issuer.introspection.client.id}:wrong`);
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: 'invalid_client' });
    expect(wrong.headers.get('www-authenticate')).toBe('Basic realm="OAuth2"');
    const none = await fetch(endpoint(), {
      method: 'POST',
      body: new URLSearchParams({ token: 'x' }),
    });
    expect(none.status).toBe(400);
    expect(await none.json()).toEqual({ error: 'invalid_request' });
  });
});

describe('AUTH_INTROSPECTION=true', () => {
  describe('a revoked token (AUTH_INTROSPECTION_CACHE_S=2)', () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(introspectionOn({ AUTH_INTROSPECTION_CACHE_S: '2' }));
    });
    afterAll(() => app.close());

    it('is accepted before its revocation and refused within the cache time after it', async () => {
      const token = freshToken({ audience: app.mcpUrl, claims: { sub: 'revoked-user' } });
      expect((await postMcp(app.mcpUrl, initialize(), { token })).status).toBe(200);

      issuer.revoke(token);
      const revokedAt = Date.now();
      const requestId = () => nextRequestId('revoked');
      let lastId = '';
      const refused = await until(
        () =>
          postMcp(app.mcpUrl, initialize(), {
            token,
            headers: { 'X-Request-Id': (lastId = requestId()) },
          }),
        (response) => response.status === 401,
      );
      expect(refused.status).toBe(401);
      // Within the cache time (2 s), with a generous margin for a loaded machine.
      expect(Date.now() - revokedAt).toBeLessThan(30_000);
      expect(challengeParams(refused.headers.get('www-authenticate'))).toMatchObject({
        error: 'invalid_token',
        error_description: REVOKED,
      });
      expect(JSON.parse(refused.body)).toMatchObject({
        error: 'invalid_token',
        error_description: REVOKED,
      });
      expect(readAuditRows(app.auditDatabasePath, lastId)).toEqual([
        expect.objectContaining({
          outcome: 'refused_invalid_token',
          subject: 'revoked-user',
          reason: REVOKED,
        }),
      ]);
    });

    it("refuses a token of another Casdoor application (Casdoor answers only for the client's own)", async () => {
      const token = freshToken({
        audience: app.mcpUrl,
        claims: { azp: 'dynamically-registered-client' },
      });
      const response = await postMcp(app.mcpUrl, initialize(), { token });
      expect(response.status).toBe(401);
      expect(challengeParams(response.headers.get('www-authenticate')).error_description).toBe(
        REVOKED,
      );
    });

    it('shows the mode in /readyz', async () => {
      const { status, introspection } = await readiness(app);
      expect(status).toBe(200);
      expect(introspection).toMatchObject({ status: 'up', state: 'up', onFailure: 'refuse' });
    });
  });

  describe("discovery naming an introspection endpoint off the issuer's origin", () => {
    let trap: Server;
    const seen: (string | undefined)[] = [];
    beforeAll(async () => {
      trap = createServer((request, response) => {
        seen.push(request.headers.authorization);
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify({ active: true }));
      });
      await new Promise<void>((listening) => trap.listen(0, '127.0.0.1', listening));
    });
    afterAll(() => new Promise((closed) => trap.close(closed)));

    it("never sends the client secret there: the issuer's own endpoint is asked instead", async () => {
      const { port } = trap.address() as AddressInfo;
      issuer.discoveryOverrides = {
        introspection_endpoint: `http://127.0.0.1:${port}/api/login/oauth/introspect`,
      };
      const app = await startTestApp(introspectionOn());
      try {
        const calls = issuer.introspection.calls;
        const token = freshToken({ audience: app.mcpUrl, claims: { sub: 'elsewhere' } });
        expect((await postMcp(app.mcpUrl, initialize(), { token })).status).toBe(200);
        issuer.revoke(token);
        const other = freshToken({ audience: app.mcpUrl, claims: { sub: 'revoked-elsewhere' } });
        issuer.revoke(other);
        expect((await postMcp(app.mcpUrl, initialize(), { token: other })).status).toBe(401);

        expect(seen).toEqual([]);
        expect(issuer.introspection.calls).toBeGreaterThan(calls);
      } finally {
        await app.close();
      }
    });
  });

  describe('one new token, many requests at once', () => {
    let app: TestApp;
    let metricsUrl: string;
    beforeAll(async () => {
      const metricsPort = await freePort();
      metricsUrl = `http://127.0.0.1:${metricsPort}`;
      app = await startTestApp(introspectionOn({ METRICS_PORT: String(metricsPort) }));
    });
    afterAll(() => app.close());

    it('costs Casdoor one introspection call for 100 concurrent requests', async () => {
      const token = freshToken({ audience: app.mcpUrl, claims: { sub: 'busy-client' } });
      const before = await scrape(metricsUrl);
      const calls = issuer.introspection.calls;
      const responses = await Promise.all(
        Array.from({ length: 100 }, () => postMcp(app.mcpUrl, initialize(), { token })),
      );
      expect(responses.map((response) => response.status)).toEqual(Array(100).fill(200));
      expect(issuer.introspection.calls - calls).toBe(1);
      const moved = movement(before, await scrape(metricsUrl));
      expect(moved('scopedb_introspection_calls_total', { result: 'active' })).toBe(1);
      expect(moved('scopedb_introspection_cache_hits_total')).toBe(99);
    });
  });

  describe('when Casdoor cannot be reached, AUTH_INTROSPECTION_ON_FAILURE=refuse (the default)', () => {
    let app: TestApp;
    let metricsUrl: string;
    beforeAll(async () => {
      const metricsPort = await freePort();
      metricsUrl = `http://127.0.0.1:${metricsPort}`;
      // Down from the start: the server starts all the same, and says it is not ready.
      issuer.introspection.failure = 'down';
      app = await startTestApp(
        introspectionOn({
          AUTH_INTROSPECTION_CACHE_S: '1',
          AUTH_INTROSPECTION_TIMEOUT_MS: '500',
          METRICS_PORT: String(metricsPort),
        }),
      );
    });
    afterAll(() => app.close());

    it.each(['down', 'error', 'slow'] as const)(
      'answers 503 with Retry-After, audited, when the endpoint is %s',
      async (failure) => {
        issuer.introspection.failure = failure;
        const calls = issuer.introspection.calls;
        // Fresh tokens until one has reached the endpoint in this failure (retries are spaced).
        let requestId = '';
        const response = await until(
          () => {
            requestId = nextRequestId(`outage-${failure}`);
            const token = freshToken({
              audience: app.mcpUrl,
              claims: { sub: `outage-${failure}` },
            });
            return postMcp(app.mcpUrl, initialize(), {
              token,
              headers: { 'X-Request-Id': requestId },
            });
          },
          () => issuer.introspection.calls > calls,
        );
        expect(issuer.introspection.calls).toBeGreaterThan(calls);
        expect(response.status).toBe(503);
        expect(response.headers.get('retry-after')).toBe('1');
        expect(response.headers.get('www-authenticate')).toBeNull();
        expect(response.message?.error).toEqual({ code: -32001, message: UNREACHABLE });
        expect(readAuditRows(app.auditDatabasePath, requestId)).toEqual([
          expect.objectContaining({
            outcome: 'refused_invalid_token',
            subject: `outage-${failure}`,
            reason: UNREACHABLE,
          }),
        ]);
        expect((await scrape(metricsUrl)).value('scopedb_introspection_reachable')).toBe(0);
      },
    );

    it('is not ready while Casdoor is down, and ready and accepting once it answers again', async () => {
      issuer.introspection.failure = 'down';
      await untilReadiness(app.baseUrl, 503);
      const { introspection } = await readiness(app);
      expect(introspection.status).toBe('down');
      expect(introspection.message).toContain('AUTH_INTROSPECTION_ON_FAILURE=refuse');
      issuer.introspection.failure = undefined;
      await untilReadiness(app.baseUrl, 200);
      const token = freshToken({ audience: app.mcpUrl });
      expect((await postMcp(app.mcpUrl, initialize(), { token })).status).toBe(200);
      expect((await scrape(metricsUrl)).value('scopedb_introspection_reachable')).toBe(1);
    });
  });

  describe('when Casdoor cannot be reached, AUTH_INTROSPECTION_ON_FAILURE=accept', () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(
        introspectionOn({
          AUTH_INTROSPECTION_ON_FAILURE: 'accept',
          AUTH_INTROSPECTION_GRACE_S: '8',
          AUTH_INTROSPECTION_CACHE_S: '1',
          AUTH_INTROSPECTION_TIMEOUT_MS: '500',
        }),
      );
    });
    afterAll(() => app.close());

    it('accepts locally verified tokens within the grace period, then refuses them', async () => {
      const revoked = freshToken({ audience: app.mcpUrl, claims: { sub: 'signed-out-user' } });
      issuer.revoke(revoked);
      expect((await postMcp(app.mcpUrl, initialize(), { token: revoked })).status).toBe(401);
      issuer.introspection.failure = 'slow';
      const token = freshToken({ audience: app.mcpUrl, claims: { sub: 'grace-user' } });
      expect((await postMcp(app.mcpUrl, initialize(), { token })).status).toBe(200);
      // Past AUTH_INTROSPECTION_CACHE_S, a token Casdoor said was revoked is still refused.
      await new Promise((wait) => setTimeout(wait, 1500));
      const stillRevoked = await postMcp(app.mcpUrl, initialize(), { token: revoked });
      expect(stillRevoked.status).toBe(401);
      expect(challengeParams(stillRevoked.headers.get('www-authenticate')).error_description).toBe(
        REVOKED,
      );
      expect((await readiness(app)).introspection).toEqual(
        expect.objectContaining({ status: 'up', state: 'degraded', onFailure: 'accept' }),
      );
      // A token that does not verify locally is refused as ever: grace covers Casdoor's word only.
      const forged = TestIssuer.withEditedPayload(token, (claims) => (claims.sub = 'mallory'));
      expect((await postMcp(app.mcpUrl, initialize(), { token: forged })).status).toBe(401);

      const refused = await until(
        () => postMcp(app.mcpUrl, initialize(), { token }),
        (response) => response.status !== 200,
      );
      expect(refused.status).toBe(503);
      expect(refused.message?.error?.message).toContain('AUTH_INTROSPECTION_GRACE_S (8 s)');
      await untilReadiness(app.baseUrl, 503);
    });
  });
});

describe('start-up and logs (node dist/main.js)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-introspection-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stops with a clear error, without the secret, when Casdoor refuses the credentials', async () => {
    const secret = 'not-the-secret-4b3a2918';
    const node = startNode(
      resolve('dist/main.js'),
      {
        ...introspectionOn({ AUTH_INTROSPECTION_CLIENT_SECRET: secret }),
        PORT: String(await freePort()),
        LOG_LEVEL: 'debug',
      },
      dir,
    );
    expect((await node.exited).code).toBe(1);
    const { stdout, stderr } = node.output();
    expect(stderr).toContain(
      `Start-up failed: Casdoor refused the introspection credentials of client ${issuer.introspection.client.id} (invalid_client, HTTP 401)`,
    );
    expect(stdout + stderr).not.toContain(secret);
    expect(stdout + stderr).not.toContain(
      Buffer.from(`${issuer.introspection.client.id}:${secret}`).toString('base64'),
    );
  });

  it('stops with a configuration error when the secret is missing', async () => {
    const env = introspectionOn();
    delete (env as Record<string, string | undefined>).AUTH_INTROSPECTION_CLIENT_SECRET;
    const node = startNode(
      resolve('dist/main.js'),
      { ...env, PORT: String(await freePort()) },
      dir,
    );
    expect((await node.exited).code).toBe(1);
    expect(node.output().stderr).toContain(
      'Configuration error: AUTH_INTROSPECTION_CLIENT_SECRET: is required with AUTH_INTROSPECTION=true',
    );
  });

  describe('a running server', () => {
    let server: ServerProcess | undefined;
    let secret: string;
    beforeAll(() => {
      secret = issuer.introspection.client.secret;
    });
    afterEach(async () => {
      issuer.introspection.client.secret = secret;
      server?.child.kill('SIGTERM');
      await server?.exited;
    });

    it('logs the outage once and its end once, never a secret or a token', async () => {
      const sut = await startServer(
        dir,
        issuer.url,
        introspectionOn({ LOG_LEVEL: 'debug', AUTH_INTROSPECTION_CACHE_S: '1' }),
      );
      server = sut;
      const tokens: string[] = [];
      const call = () => {
        const token = freshToken({ audience: sut.mcpUrl });
        tokens.push(token);
        return postMcp(sut.mcpUrl, initialize(), { token });
      };
      expect((await call()).status).toBe(200);
      const revoked = freshToken({ audience: sut.mcpUrl });
      tokens.push(revoked);
      issuer.revoke(revoked);
      expect((await postMcp(sut.mcpUrl, initialize(), { token: revoked })).status).toBe(401);

      // Credentials rotated at Casdoor while running: an outage of its own kind.
      issuer.introspection.client.secret = 'rotated-elsewhere';
      await until(call, (response) => response.status === 503);
      issuer.introspection.client.secret = secret;
      issuer.introspection.failure = 'error';
      await until(call, (response) => response.status === 503, 5);
      issuer.introspection.failure = undefined;
      await until(call, (response) => response.status === 200);

      const [outage] = await logLines(sut, /^Casdoor's introspection failed/);
      expect(outage.msg).toContain('invalid_client');
      await logLines(sut, /^Casdoor's introspection answers again/);
      const output = sut.output().stdout + sut.output().stderr;
      expect(output.match(/Casdoor's introspection failed/g)).toHaveLength(1);
      expect(output.match(/Casdoor's introspection answers again/g)).toHaveLength(1);
      expect(output).not.toContain(secret);
      expect(output).not.toContain(
        Buffer.from(`${issuer.introspection.client.id}:${secret}`).toString('base64'),
      );
      for (const token of tokens) expect(output).not.toContain(token.split('.')[2]);
    });
  });
});
