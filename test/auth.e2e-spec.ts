// Bearer-token validation and OAuth challenges over real HTTP: RFC 6750 (bearer usage and
// WWW-Authenticate), RFC 9728 (protected resource metadata), RFC 8707 (audience = resource) and the
// MCP authorization spec (scope step-up), against the listening app and a real loopback issuer.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { freePort, startTestApp, type TestApp } from './support/app.js';
import { CASDOOR_CLAIMS, TestIssuer } from './support/issuer.js';
import {
  callTool,
  challengeParams,
  initialize,
  type McpResponse,
  postMcp,
  rpc,
} from './support/mcp-http.js';

const REALM = 'MCP Server';
const WELL_KNOWN = '/.well-known/oauth-protected-resource';
const ALL_SCOPES = ['db:admin', 'db:modify', 'db:query'];

const NOT_IN_JWKS = "the token's signing key (kid) is not in the issuer's JWKS";
const JWKS_UNAVAILABLE = "the issuer's signing keys could not be fetched";
const JWKS_RATE_LIMITED =
  "the token's signing key (kid) is unknown and the JWKS was refetched too often to look again";
const BAD_SIGNATURE = "the token's signature does not verify";
const WRONG_AUDIENCE = "the token's audience (aud) does not include this resource";
const WRONG_ISSUER = 'the token was issued by another issuer than AUTH_ISSUER';
const REFRESH_TOKEN = 'a refresh token cannot be used as an access token';
const NO_EXPIRY = 'the token has no expiry (exp)';
const algorithmRefused = (accepted: string) =>
  `the token's signing algorithm is not accepted (accepted: ${accepted})`;

const now = () => Math.floor(Date.now() / 1000);
const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

function decodePayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

interface AuditRow {
  id: number;
  outcome: string;
  subject: string | null;
  subjectUnverified: number;
  clientId: string | null;
  tokenId: string | null;
  tool: string | null;
  reason: string | null;
  requiredScopes: string | null;
  grantedScopes: string | null;
}

/** The app's audit_log, read through a separate read-only connection to the audit database. */
class AuditTrail {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
  }

  lastId(): number {
    return (
      this.db.prepare('SELECT coalesce(max(id), 0) AS id FROM audit_log').get() as { id: number }
    ).id;
  }

  since(id: number): AuditRow[] {
    return this.db
      .prepare('SELECT * FROM audit_log WHERE id > ? ORDER BY id')
      .all(id) as AuditRow[];
  }

  /** Tool successes are recorded after the response is sent; wait for them. */
  async waitFor(id: number, count: number): Promise<AuditRow[]> {
    const deadline = Date.now() + 3000;
    let rows = this.since(id);
    while (rows.length < count && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      rows = this.since(id);
    }
    return rows;
  }

  hasTable(name: string): boolean {
    return (
      this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !==
      undefined
    );
  }

  close(): void {
    this.db.close();
  }
}

/** One running app with what the assertions need to know about it. */
interface Target {
  sut: TestApp;
  audit: AuditTrail;
  mcpUrl: string;
  resourceUrl: string;
  metadataUrl: string;
}

async function start(
  env: Record<string, string>,
  urls?: { port: number; resourceUrl: string },
): Promise<Target> {
  const sut = await startTestApp({
    ...env,
    ...(urls && { PORT: String(urls.port), RESOURCE_URL: urls.resourceUrl }),
  });
  const origin = urls ? `http://localhost:${urls.port}` : sut.baseUrl;
  const resourceUrl = urls?.resourceUrl ?? `${origin}/mcp`;
  const resourcePath = new URL(resourceUrl).pathname.replace(/^\/$/, '');
  return {
    sut,
    audit: new AuditTrail(sut.auditDatabasePath),
    mcpUrl: `${origin}/mcp`,
    resourceUrl,
    metadataUrl: `${origin}${WELL_KNOWN}${resourcePath}`,
  };
}

async function stop(target: Target | undefined): Promise<void> {
  target?.audit.close();
  await target?.sut.close();
}

interface Exchange {
  response: McpResponse;
  /** The audit rows written while the request was handled. */
  rows: AuditRow[];
}

async function send(
  target: Target,
  body: unknown,
  options: { token?: string; authorization?: string; query?: string } = {},
): Promise<Exchange> {
  const before = target.audit.lastId();
  const response = await postMcp(`${target.mcpUrl}${options.query ?? ''}`, body, {
    token: options.token,
    headers: options.authorization === undefined ? {} : { Authorization: options.authorization },
  });
  return { response, rows: target.audit.since(before) };
}

/** Neither the token nor any sizeable part of it comes back in the response or lands in the audit log. */
function expectNoLeak(token: string, { response, rows }: Exchange): void {
  expectNotIn(token, [
    response.body,
    ...[...response.headers].map(([name, value]) => `${name}: ${value}`),
    ...rows.flatMap((row) => Object.values(row).map(String)),
  ]);
}

function expectNotIn(token: string, texts: string[]): void {
  const secrets = [token, ...token.split('.').filter((part) => part.length >= 16)];
  for (const secret of secrets) for (const text of texts) expect(text).not.toContain(secret);
}

function expectNoCredentialsChallenge(
  target: Target,
  exchange: Exchange,
  scope = 'db:query',
): void {
  const { response, rows } = exchange;
  expect(response.status).toBe(401);
  expect(response.headers.get('www-authenticate')).toBe(
    `Bearer realm="${REALM}", resource_metadata="${target.metadataUrl}", scope="${scope}"`,
  );
  expect(challengeParams(response.headers.get('www-authenticate'))).not.toHaveProperty('error');
  const body = JSON.parse(response.body) as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(['error', 'message']);
  expect(body.error).toBe('unauthorized');
  expect(rows).toEqual([
    expect.objectContaining({ outcome: 'refused_no_token', subject: null, tool: null }),
  ]);
}

async function expectInvalidToken(
  target: Target,
  token: string,
  description: string,
  body: unknown = initialize(),
): Promise<Exchange> {
  const exchange = await send(target, body, { token });
  const { response, rows } = exchange;
  expect(response.status).toBe(401);
  expect(challengeParams(response.headers.get('www-authenticate'))).toEqual({
    realm: REALM,
    error: 'invalid_token',
    error_description: description,
    resource_metadata: target.metadataUrl,
    scope: 'db:query',
  });
  expect(JSON.parse(response.body)).toEqual({
    error: 'invalid_token',
    error_description: description,
    message: description,
  });
  expect(rows).toEqual([
    expect.objectContaining({ outcome: 'refused_invalid_token', reason: description }),
  ]);
  expectNoLeak(token, exchange);
  return exchange;
}

async function expectAccepted(target: Target, token: string): Promise<void> {
  const exchange = await send(target, initialize(), { token });
  expect(exchange.response.status).toBe(200);
  expect(exchange.response.message?.result?.serverInfo).toEqual(
    expect.objectContaining({ name: 'scopedb-mcp' }),
  );
  expect(exchange.rows).toEqual([]);
  expectNoLeak(token, exchange);
}

async function expectScopeChallenge(
  target: Target,
  token: string,
  body: unknown,
  expected: { tool: string; missing: string; required: string[]; scope: string },
): Promise<Exchange> {
  const exchange = await send(target, body, { token });
  const { response, rows } = exchange;
  const description = `The tool ${expected.tool} requires the scope ${expected.missing}`;
  expect(response.status).toBe(403);
  expect(challengeParams(response.headers.get('www-authenticate'))).toEqual({
    realm: REALM,
    error: 'insufficient_scope',
    error_description: description,
    resource_metadata: target.metadataUrl,
    scope: expected.scope,
  });
  expect(JSON.parse(response.body)).toEqual({
    error: 'insufficient_scope',
    error_description: description,
    message: description,
    required_scopes: expected.required,
  });
  expect(rows).toEqual([
    expect.objectContaining({
      outcome: 'refused_scope',
      tool: expected.tool,
      reason: description,
      requiredScopes: expected.required.join(' '),
      subject: CASDOOR_CLAIMS.sub,
      subjectUnverified: 0,
    }),
  ]);
  expectNoLeak(token, exchange);
  return exchange;
}

/** An HTTP server standing in for attacker-controlled `jku`/`x5u` locations; counts its hits. */
class AttackerServer {
  requests = 0;
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(jwks: unknown): Promise<AttackerServer> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const attacker = new AttackerServer(
      server,
      `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    );
    server.on('request', (_request, response) => {
      attacker.requests++;
      response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(jwks));
    });
    return attacker;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('bearer token authentication (e2e)', () => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await TestIssuer.start();
    issuer.addKey('rs512-key', 'RS512');
    issuer.addKey('es256-key', 'ES256');
    issuer.addUnpublishedKey('attacker');
  });
  afterAll(async () => {
    await issuer.close();
  });

  /** The token's claims (a valid, published-key token), for hand-signed variants. */
  const claimsFor = (target: Target, overrides: Record<string, unknown> = {}) => ({
    ...decodePayload(issuer.token({ audience: target.resourceUrl })),
    ...overrides,
  });

  describe('with default settings', () => {
    let target: Target;
    beforeAll(async () => {
      target = await start({ AUTH_ISSUER: issuer.url });
    });
    afterAll(async () => {
      await stop(target);
    });

    describe('protected resource metadata (RFC 9728)', () => {
      const expectMetadata = async (url: string) => {
        const response = await fetch(url);
        expect(response.status).toBe(200);
        expect(await response.json()).toEqual({
          resource: target.resourceUrl,
          authorization_servers: [issuer.url],
          scopes_supported: ALL_SCOPES,
          bearer_methods_supported: ['header'],
          resource_name: 'ScopeDB MCP',
        });
        expect(response.headers.get('cache-control')).toMatch(/^public\b/);
        expect(response.headers.get('access-control-allow-origin')).toBe('*');
      };

      it('is served publicly at the path-suffixed URL named in challenges', async () => {
        expect(target.metadataUrl).toBe(`${target.sut.baseUrl}${WELL_KNOWN}/mcp`);
        await expectMetadata(target.metadataUrl);
      });

      it('is served publicly at the root well-known URL', async () => {
        await expectMetadata(`${target.sut.baseUrl}${WELL_KNOWN}`);
      });

      it('ignores a bad Authorization header (it is public)', async () => {
        const response = await fetch(target.metadataUrl, {
          headers: { Authorization: 'Bearer not-a-jwt' },
        });
        expect(response.status).toBe(200);
      });

      it('answers a CORS preflight with 204', async () => {
        const response = await fetch(target.metadataUrl, {
          method: 'OPTIONS',
          headers: { Origin: 'https://client.example', 'Access-Control-Request-Method': 'GET' },
        });
        expect(response.status).toBe(204);
        expect(response.headers.get('access-control-allow-origin')).toBe('*');
        expect(response.headers.get('access-control-allow-methods')).toMatch(/\bGET\b/);
      });

      it.each(['/other', '/mcp/other', '/mcpx'])(
        'is 404 for another resource path (%s)',
        async (suffix) => {
          const response = await fetch(`${target.sut.baseUrl}${WELL_KNOWN}${suffix}`);
          expect(response.status).toBe(404);
        },
      );
    });

    describe('requests without bearer credentials', () => {
      it('answers 401 with a challenge that has no error code', async () => {
        const exchange = await send(target, initialize());
        expectNoCredentialsChallenge(target, exchange);
        expect(exchange.response.headers.get('cache-control')).toBe('no-store');
        expect((JSON.parse(exchange.response.body) as { message: string }).message).toMatch(
          /Authorization header/,
        );
      });

      it('refuses tools/list without a token', async () => {
        expectNoCredentialsChallenge(target, await send(target, rpc('tools/list')));
      });

      it('does not accept a token in the query string, and says so', async () => {
        const token = issuer.token({ audience: target.resourceUrl });
        const exchange = await send(target, initialize(), {
          query: `?access_token=${encodeURIComponent(token)}`,
        });
        expectNoCredentialsChallenge(target, exchange);
        const { message } = JSON.parse(exchange.response.body) as { message: string };
        expect(message).toMatch(/query string/);
        expect(message).toMatch(/not accepted/);
        expectNoLeak(token, exchange);
      });

      it('treats a Basic Authorization header as no bearer credentials', async () => {
        const exchange = await send(target, initialize(), {
          authorization: 'Basic dXNlcjpwYXNzd29yZA==',
        });
        expectNoCredentialsChallenge(target, exchange);
      });

      it('treats "Bearer" without a token as no bearer credentials', async () => {
        expectNoCredentialsChallenge(
          target,
          await send(target, initialize(), { authorization: 'Bearer ' }),
        );
      });
    });

    describe('the Authorization scheme', () => {
      it.each(['Bearer', 'bearer', 'BEARER', 'bEaReR'])(
        'accepts the scheme spelled %s',
        async (scheme) => {
          const token = issuer.token({ audience: target.resourceUrl });
          const exchange = await send(target, initialize(), {
            authorization: `${scheme} ${token}`,
          });
          expect(exchange.response.status).toBe(200);
          expect(exchange.rows).toEqual([]);
        },
      );

      it.each(['bearer', 'BEARER'])(
        'refuses an expired token under the scheme %s as invalid_token',
        async (scheme) => {
          const exp = now() - 3600;
          const token = issuer.token({ audience: target.resourceUrl, claims: { exp } });
          const exchange = await send(target, initialize(), {
            authorization: `${scheme} ${token}`,
          });
          expect(exchange.response.status).toBe(401);
          expect(challengeParams(exchange.response.headers.get('www-authenticate'))).toEqual(
            expect.objectContaining({
              error: 'invalid_token',
              error_description: `the token expired at ${iso(exp)}`,
            }),
          );
          expect(exchange.rows.map((row) => row.outcome)).toEqual(['refused_invalid_token']);
          expectNoLeak(token, exchange);
        },
      );
    });

    describe('tokens that are accepted', () => {
      it('accepts a token shaped exactly like a Casdoor access token, and audits the verified caller', async () => {
        const fixture = CASDOOR_CLAIMS;
        const iat = now();
        const token = issuer.token({
          audience: target.resourceUrl,
          claims: {
            ...fixture,
            iss: issuer.url,
            aud: [target.resourceUrl],
            iat,
            nbf: iat,
            exp: iat + 168 * 3600,
          },
        });
        expect(Object.keys(decodePayload(token)).sort()).toEqual(Object.keys(fixture).sort());
        expect(token.length).toBeGreaterThan(2000);

        await expectAccepted(target, token);
        const before = target.audit.lastId();
        const call = await postMcp(target.mcpUrl, callTool('query', { sql: 'SELECT 1 AS one' }), {
          token,
        });
        expect(call.status).toBe(200);
        expect(call.message?.result?.structuredContent).toEqual(
          expect.objectContaining({ rows: [[1]] }),
        );
        const rows = await target.audit.waitFor(before, 1);
        expect(rows).toEqual([
          expect.objectContaining({
            outcome: 'success',
            tool: 'query',
            subject: fixture.sub,
            subjectUnverified: 0,
            clientId: fixture.azp,
            tokenId: fixture.jti,
            grantedScopes: 'db:query db:modify',
          }),
        ]);
        expectNoLeak(token, { response: call, rows });
      });

      it('accepts aud as a plain string', async () => {
        await expectAccepted(
          target,
          issuer.token({ audience: [], claims: { aud: target.resourceUrl } }),
        );
      });

      it('accepts an aud array that contains this resource among others', async () => {
        const audience = [
          'https://other.example/mcp',
          target.resourceUrl,
          String(CASDOOR_CLAIMS.azp),
        ];
        await expectAccepted(target, issuer.token({ audience }));
      });

      it('accepts a token without a tokenType claim (issuers other than Casdoor)', async () => {
        await expectAccepted(
          target,
          issuer.token({ audience: target.resourceUrl, claims: { tokenType: undefined } }),
        );
      });

      it('accepts a token that expired 10 s ago (within the 30 s clock tolerance)', async () => {
        await expectAccepted(
          target,
          issuer.token({ audience: target.resourceUrl, claims: { exp: now() - 10 } }),
        );
      });

      it('accepts a token whose nbf is 10 s ahead (within the 30 s clock tolerance)', async () => {
        const nbf = now() + 10;
        await expectAccepted(
          target,
          issuer.token({ audience: target.resourceUrl, claims: { nbf, iat: nbf } }),
        );
      });
    });

    describe('tokens that are refused with invalid_token', () => {
      it('refuses alg "none"', async () => {
        await expectInvalidToken(
          target,
          TestIssuer.unsigned(claimsFor(target)),
          algorithmRefused('RS256'),
        );
      });

      it('refuses HS256 keyed with the published public key', async () => {
        await expectInvalidToken(
          target,
          issuer.hs256WithPublicKey(claimsFor(target)),
          algorithmRefused('RS256'),
        );
      });

      it('refuses RS512 while AUTH_ALGORITHMS is the default RS256, without fetching the JWKS', async () => {
        const before = issuer.jwksRequests;
        const token = issuer.token({ audience: target.resourceUrl, kid: 'rs512-key' });
        await expectInvalidToken(target, token, algorithmRefused('RS256'));
        expect(issuer.jwksRequests).toBe(before);
      });

      it('refuses ES256 while AUTH_ALGORITHMS is the default RS256', async () => {
        const token = issuer.token({ audience: target.resourceUrl, kid: 'es256-key' });
        await expectInvalidToken(target, token, algorithmRefused('RS256'));
      });

      it('refuses a token that expired beyond the clock tolerance', async () => {
        const exp = now() - 60;
        const token = issuer.token({
          audience: target.resourceUrl,
          claims: { exp, iat: exp - 3600, nbf: exp - 3600 },
        });
        await expectInvalidToken(target, token, `the token expired at ${iso(exp)}`);
      });

      it('refuses a token not valid yet (nbf beyond the clock tolerance)', async () => {
        const nbf = now() + 120;
        const token = issuer.token({ audience: target.resourceUrl, claims: { nbf, iat: nbf } });
        await expectInvalidToken(target, token, `the token is not valid before ${iso(nbf)}`);
      });

      it('refuses a token without exp', async () => {
        const token = issuer.token({ audience: target.resourceUrl, claims: { exp: undefined } });
        expect(decodePayload(token)).not.toHaveProperty('exp');
        await expectInvalidToken(target, token, NO_EXPIRY);
      });

      it.each([
        ['another issuer', 'https://casdoor.example.com'],
        ['the issuer with a trailing slash', 'TRAILING'],
      ])('refuses iss from %s', async (_case, iss) => {
        const token = issuer.token({
          audience: target.resourceUrl,
          claims: { iss: iss === 'TRAILING' ? `${issuer.url}/` : iss },
        });
        await expectInvalidToken(target, token, WRONG_ISSUER);
      });

      it('refuses aud = the client id (Casdoor without resource=)', async () => {
        const token = issuer.token({ audience: [String(CASDOOR_CLAIMS.azp)] });
        await expectInvalidToken(target, token, WRONG_AUDIENCE);
      });

      it('refuses an audience that is another resource on the same host', async () => {
        await expectInvalidToken(
          target,
          issuer.token({ audience: target.sut.baseUrl }),
          WRONG_AUDIENCE,
        );
      });

      it('refuses a Casdoor refresh token (tokenType: refresh-token)', async () => {
        const token = issuer.token({
          audience: target.resourceUrl,
          claims: { tokenType: 'refresh-token' },
        });
        await expectInvalidToken(target, token, REFRESH_TOKEN);
      });

      it('refuses a JWT-Custom refresh token (TokenType: refresh-token, tokenType: access-token)', async () => {
        const token = issuer.token({
          audience: target.resourceUrl,
          claims: { tokenType: 'access-token', TokenType: 'refresh-token' },
        });
        await expectInvalidToken(target, token, REFRESH_TOKEN);
      });

      it('refuses a token without sub', async () => {
        const token = issuer.token({ audience: target.resourceUrl, claims: { sub: undefined } });
        await expectInvalidToken(target, token, 'the token has no subject (sub)');
      });

      it('refuses a scope claim that is not a space-separated string', async () => {
        const token = issuer.token({
          audience: target.resourceUrl,
          claims: { scope: ['db:query'] },
        });
        await expectInvalidToken(
          target,
          token,
          'the token scope claim must be a space-separated string',
        );
      });

      it('refuses a payload edited after signing (scope widened)', async () => {
        const token = TestIssuer.withEditedPayload(
          issuer.token({ audience: target.resourceUrl }),
          (claims) => {
            claims.scope = 'db:query db:modify db:admin';
          },
        );
        await expectInvalidToken(
          target,
          token,
          BAD_SIGNATURE,
          callTool('execute', { sql: 'SELECT 1' }),
        );
      });

      it('refuses a token that is not a JWT', async () => {
        await expectInvalidToken(target, 'not-a-jwt', 'the token is not a well-formed JWT');
      });

      it('refuses a correctly signed token with a critical header extension (crit)', async () => {
        const token = issuer.token({
          audience: target.resourceUrl,
          header: { crit: ['exp'] },
        });
        await expectInvalidToken(
          target,
          token,
          'the token has critical header parameters (crit) that are not supported',
        );
      });

      it('refuses an unknown kid (signed by an unpublished key)', async () => {
        await expectInvalidToken(
          target,
          issuer.token({ audience: target.resourceUrl, kid: 'attacker' }),
          NOT_IN_JWKS,
        );
      });

      it('refuses an unpublished key claiming a published kid', async () => {
        const token = issuer.signRaw(
          { alg: 'RS256', kid: 'cert-built-in', typ: 'JWT' },
          claimsFor(target),
          'attacker',
        );
        await expectInvalidToken(target, token, BAD_SIGNATURE);
      });

      it('records who a refused token claimed to be, marked unverified', async () => {
        const token = issuer.token({ audience: target.resourceUrl, kid: 'attacker' });
        const { rows } = await expectInvalidToken(target, token, NOT_IN_JWKS);
        expect(rows[0]).toEqual(
          expect.objectContaining({
            subject: CASDOOR_CLAIMS.sub,
            subjectUnverified: 1,
            clientId: CASDOOR_CLAIMS.azp,
            tokenId: CASDOOR_CLAIMS.jti,
            grantedScopes: null,
          }),
        );
      });

      describe('key-location headers (never followed)', () => {
        let attacker: AttackerServer;
        beforeAll(async () => {
          attacker = await AttackerServer.start({ keys: [issuer.publicJwk('attacker')] });
        });
        afterAll(async () => {
          await attacker.close();
        });

        // Evaluated inside each test, once the attacker's server is listening.
        const variants: [string, () => Record<string, unknown>][] = [
          ['an embedded jwk', () => ({ jwk: issuer.publicJwk('attacker') })],
          ['jku', () => ({ jku: `${attacker.url}/.well-known/jwks` })],
          ['x5u', () => ({ x5u: `${attacker.url}/cert.pem` })],
        ];

        it.each(variants)("refuses %s with the attacker's own kid", async (_name, extra) => {
          const header = { alg: 'RS256', kid: 'attacker', typ: 'JWT', ...extra() };
          await expectInvalidToken(
            target,
            issuer.signRaw(header, claimsFor(target), 'attacker'),
            NOT_IN_JWKS,
          );
          expect(attacker.requests).toBe(0);
        });

        it.each(variants)('refuses %s claiming a published kid', async (_name, extra) => {
          const header = { alg: 'RS256', kid: 'cert-built-in', typ: 'JWT', ...extra() };
          await expectInvalidToken(
            target,
            issuer.signRaw(header, claimsFor(target), 'attacker'),
            BAD_SIGNATURE,
          );
          expect(attacker.requests).toBe(0);
        });
      });
    });

    describe('scopes', () => {
      it('initialize and tools/list need a valid token but no scope', async () => {
        const token = issuer.token({ audience: target.resourceUrl, scope: '' });
        expect(decodePayload(token)).not.toHaveProperty('scope');
        await expectAccepted(target, token);
        const list = await send(target, rpc('tools/list'), { token });
        expect(list.response.status).toBe(200);
        const tools = (list.response.message?.result?.tools ?? []) as { name: string }[];
        expect(tools.map((tool) => tool.name)).toEqual(
          expect.arrayContaining([
            'list_tables',
            'describe_table',
            'query',
            'execute',
            'apply_migration',
          ]),
        );
        expect(list.rows).toEqual([]);
      });

      it('refuses tools/call query for a token without a scope claim (403, scope=db:query)', async () => {
        const token = issuer.token({ audience: target.resourceUrl, scope: '' });
        await expectScopeChallenge(target, token, callTool('query', { sql: 'SELECT 1' }), {
          tool: 'query',
          missing: 'db:query',
          required: ['db:query'],
          scope: 'db:query',
        });
      });

      it('answers execute with db:query by 403 insufficient_scope and the union of scopes, before running it', async () => {
        const token = issuer.token({ audience: target.resourceUrl, scope: 'db:query' });
        const { rows } = await expectScopeChallenge(
          target,
          token,
          callTool('execute', { sql: 'CREATE TABLE refused_execute (x INTEGER)' }),
          {
            tool: 'execute',
            missing: 'db:modify',
            required: ['db:modify'],
            scope: 'db:query db:modify',
          },
        );
        expect(rows[0].grantedScopes).toBe('db:query');
        expect(target.audit.hasTable('refused_execute')).toBe(false);
      });

      it('answers apply_migration with db:query db:modify by 403 naming db:admin', async () => {
        const token = issuer.token({ audience: target.resourceUrl, scope: 'db:query db:modify' });
        await expectScopeChallenge(
          target,
          token,
          callTool('apply_migration', {
            name: 'refused',
            sql: 'CREATE TABLE refused_migration (x INTEGER)',
          }),
          {
            tool: 'apply_migration',
            missing: 'db:admin',
            required: ['db:admin'],
            scope: 'db:query db:modify db:admin',
          },
        );
        expect(target.audit.hasTable('refused_migration')).toBe(false);
      });

      it('refuses a JSON-RPC batch in which one call lacks its scope, and runs none of it', async () => {
        const token = issuer.token({ audience: target.resourceUrl, scope: 'db:query' });
        await expectScopeChallenge(
          target,
          token,
          [
            callTool('query', { sql: 'SELECT 1' }),
            callTool('execute', { sql: 'CREATE TABLE refused_batch (x INTEGER)' }),
          ],
          {
            tool: 'execute',
            missing: 'db:modify',
            required: ['db:modify'],
            scope: 'db:query db:modify',
          },
        );
        expect(target.audit.hasTable('refused_batch')).toBe(false);
      });

      it.each(['db:queryx', 'db:query:x', 'DB:QUERY', 'db:modify db:admin'])(
        'does not let scope "%s" satisfy db:query',
        async (scope) => {
          const token = issuer.token({ audience: target.resourceUrl, scope });
          await expectScopeChallenge(target, token, callTool('query', { sql: 'SELECT 1' }), {
            tool: 'query',
            missing: 'db:query',
            required: ['db:query'],
            scope: `${scope} db:query`,
          });
        },
      );
    });

    describe('the audit trail of refusals', () => {
      it('records one row per refusal, in order, with its outcome and never the token', async () => {
        const valid = issuer.token({ audience: target.resourceUrl, scope: 'db:query' });
        const expired = issuer.token({
          audience: target.resourceUrl,
          claims: { exp: now() - 3600 },
        });
        const before = target.audit.lastId();

        const statuses = [
          (await postMcp(target.mcpUrl, initialize())).status,
          (await postMcp(`${target.mcpUrl}?access_token=${valid}`, initialize())).status,
          (await postMcp(target.mcpUrl, initialize(), { token: expired })).status,
          (await postMcp(target.mcpUrl, callTool('execute', { sql: 'SELECT 1' }), { token: valid }))
            .status,
        ];

        expect(statuses).toEqual([401, 401, 401, 403]);
        const rows = target.audit.since(before);
        expect(rows.map((row) => row.outcome)).toEqual([
          'refused_no_token',
          'refused_no_token',
          'refused_invalid_token',
          'refused_scope',
        ]);
        const stored = rows.flatMap((row) => Object.values(row).map(String));
        for (const token of [valid, expired]) expectNotIn(token, stored);
      });
    });
  });

  describe('with AUTH_BASELINE_SCOPES="db:query db:modify"', () => {
    let target: Target;
    beforeAll(async () => {
      target = await start({ AUTH_ISSUER: issuer.url, AUTH_BASELINE_SCOPES: 'db:query db:modify' });
    });
    afterAll(async () => {
      await stop(target);
    });

    it('challenges requests without credentials with the configured baseline scope', async () => {
      expectNoCredentialsChallenge(target, await send(target, initialize()), 'db:query db:modify');
    });
  });

  describe('with AUTH_ALGORITHMS=RS256,RS512', () => {
    let target: Target;
    beforeAll(async () => {
      target = await start({ AUTH_ISSUER: issuer.url, AUTH_ALGORITHMS: 'RS256,RS512' });
    });
    afterAll(async () => {
      await stop(target);
    });

    it('accepts RS512', async () => {
      await expectAccepted(
        target,
        issuer.token({ audience: target.resourceUrl, kid: 'rs512-key' }),
      );
    });

    it('still accepts RS256', async () => {
      await expectAccepted(target, issuer.token({ audience: target.resourceUrl }));
    });

    it('refuses ES256, naming the accepted algorithms', async () => {
      const token = issuer.token({ audience: target.resourceUrl, kid: 'es256-key' });
      await expectInvalidToken(target, token, algorithmRefused('RS256, RS512'));
    });
  });

  describe('with AUTH_ALGORITHMS=RS256,ES256', () => {
    let target: Target;
    beforeAll(async () => {
      target = await start({ AUTH_ISSUER: issuer.url, AUTH_ALGORITHMS: 'RS256,ES256' });
    });
    afterAll(async () => {
      await stop(target);
    });

    it('accepts an ES256 token signed by an EC key from the JWKS', async () => {
      await expectAccepted(
        target,
        issuer.token({ audience: target.resourceUrl, kid: 'es256-key' }),
      );
    });

    it('refuses RS512', async () => {
      const token = issuer.token({ audience: target.resourceUrl, kid: 'rs512-key' });
      await expectInvalidToken(target, token, algorithmRefused('RS256, ES256'));
    });
  });

  describe('with a root RESOURCE_URL (http://localhost:<port>)', () => {
    let target: Target;
    let origin: string;
    beforeAll(async () => {
      const port = await freePort();
      origin = `http://localhost:${port}`;
      target = await start({ AUTH_ISSUER: issuer.url }, { port, resourceUrl: origin });
    });
    afterAll(async () => {
      await stop(target);
    });

    it('serves the metadata at the root well-known URL only', async () => {
      const root = await fetch(`${origin}${WELL_KNOWN}`);
      expect(root.status).toBe(200);
      expect(await root.json()).toEqual(
        expect.objectContaining({
          resource: origin,
          authorization_servers: [issuer.url],
          scopes_supported: ALL_SCOPES,
        }),
      );
      expect((await fetch(`${origin}${WELL_KNOWN}/mcp`)).status).toBe(404);
    });

    it('names the root metadata URL in challenges, with MCP still served at /mcp', async () => {
      expect(target.metadataUrl).toBe(`${origin}${WELL_KNOWN}`);
      expectNoCredentialsChallenge(target, await send(target, initialize()));
    });

    it.each(['', '/'])('accepts aud "http://localhost:<port>%s"', async (slash) => {
      await expectAccepted(target, issuer.token({ audience: `${origin}${slash}` }));
    });

    it('refuses aud naming the MCP path, which is not this resource', async () => {
      await expectInvalidToken(target, issuer.token({ audience: `${origin}/mcp` }), WRONG_AUDIENCE);
    });
  });

  describe('signing keys: caching, rotation and an unavailable JWKS', () => {
    let target: Target;
    beforeAll(async () => {
      target = await start({ AUTH_ISSUER: issuer.url });
    });
    afterAll(async () => {
      issuer.jwksDown = false;
      await stop(target);
    });

    it('fetches the JWKS once for many concurrent and repeated requests signed with the same key', async () => {
      issuer.addKey('cache-probe');
      const token = issuer.token({ audience: target.resourceUrl, kid: 'cache-probe' });
      const before = issuer.jwksRequests;

      const concurrent = await Promise.all(
        Array.from({ length: 8 }, () => postMcp(target.mcpUrl, initialize(), { token })),
      );
      for (let i = 0; i < 4; i++)
        expect((await postMcp(target.mcpUrl, initialize(), { token })).status).toBe(200);

      expect(concurrent.map((response) => response.status)).toEqual(Array(8).fill(200));
      expect(issuer.jwksRequests - before).toBe(1);
    });

    it('accepts a token signed by a newly rotated-in key (an unknown kid refetches the JWKS)', async () => {
      await expectAccepted(target, issuer.token({ audience: target.resourceUrl }));
      issuer.addKey('rotated-2026');
      const before = issuer.jwksRequests;

      await expectAccepted(
        target,
        issuer.token({ audience: target.resourceUrl, kid: 'rotated-2026' }),
      );

      expect(issuer.jwksRequests - before).toBe(1);
      await expectAccepted(target, issuer.token({ audience: target.resourceUrl }));
      expect(issuer.jwksRequests - before).toBe(1);
    });

    it('keeps accepting cached keys while the JWKS is down, refuses never-seen kids with 401, and recovers', async () => {
      await expectAccepted(target, issuer.token({ audience: target.resourceUrl }));
      issuer.addKey('published-while-down');
      const unseen = issuer.token({ audience: target.resourceUrl, kid: 'published-while-down' });

      issuer.jwksDown = true;
      try {
        const before = issuer.jwksRequests;
        await expectAccepted(target, issuer.token({ audience: target.resourceUrl }));
        expect(issuer.jwksRequests).toBe(before);
        await expectInvalidToken(target, unseen, JWKS_UNAVAILABLE);
        expect(issuer.jwksRequests).toBe(before + 1);
      } finally {
        issuer.jwksDown = false;
      }

      await expectAccepted(target, unseen);
    });
  });

  describe('with AUTH_JWKS_CACHE_MAX_AGE_S=1', () => {
    const pastCacheAge = () => new Promise((resolve) => setTimeout(resolve, 1100));
    let target: Target;
    beforeAll(async () => {
      target = await start({ AUTH_ISSUER: issuer.url, AUTH_JWKS_CACHE_MAX_AGE_S: '1' });
    });
    afterAll(async () => {
      issuer.jwksDown = false;
      await stop(target);
    });

    it('keeps accepting a known key past its cache age while the JWKS is down', async () => {
      issuer.addKey('outlives-outage');
      const token = issuer.token({ audience: target.resourceUrl, kid: 'outlives-outage' });
      await expectAccepted(target, token);
      await pastCacheAge();

      issuer.jwksDown = true;
      try {
        const before = issuer.jwksRequests;
        await expectAccepted(target, token);
        expect(issuer.jwksRequests).toBe(before + 1);
      } finally {
        issuer.jwksDown = false;
      }
    });

    it('refuses a key that the JWKS no longer lists once its cache age has passed', async () => {
      issuer.addKey('retired');
      const token = issuer.token({ audience: target.resourceUrl, kid: 'retired' });
      await expectAccepted(target, token);
      issuer.removeKey('retired');
      await pastCacheAge();

      await expectInvalidToken(target, token, NOT_IN_JWKS);
    });
  });

  describe('a flood of tokens with made-up kids', () => {
    let target: Target;
    beforeAll(async () => {
      target = await start({ AUTH_ISSUER: issuer.url });
    });
    afterAll(async () => {
      await stop(target);
    });

    it('answers each with 401 (never 5xx), rate-limits JWKS fetches, and keeps cached keys working', async () => {
      await expectAccepted(target, issuer.token({ audience: target.resourceUrl }));
      const before = issuer.jwksRequests;
      const descriptions = new Set<string>();

      for (let i = 0; i < 15; i++) {
        const token = issuer.signRaw(
          { alg: 'RS256', kid: `made-up-${i}`, typ: 'JWT' },
          claimsFor(target),
          'cert-built-in',
        );
        const { response, rows } = await send(target, initialize(), { token });
        expect(response.status).toBe(401);
        const params = challengeParams(response.headers.get('www-authenticate'));
        expect(params.error).toBe('invalid_token');
        descriptions.add(params.error_description);
        expect(rows.map((row) => row.outcome)).toEqual(['refused_invalid_token']);
      }

      expect([...descriptions].sort()).toEqual([JWKS_RATE_LIMITED, NOT_IN_JWKS].sort());
      expect(issuer.jwksRequests - before).toBeLessThanOrEqual(10);
      await expectAccepted(target, issuer.token({ audience: target.resourceUrl }));
    });
  });
});
