// Every token format a Casdoor application can choose, signed with every method Casdoor offers
// (test/fixtures/casdoor/README.md): the access token is accepted and its principal recorded as
// well as the format allows; the refresh token, signed alike, is refused.
import { startTestApp, type TestApp } from './support/app.js';
import { type AuditRow, postAudited } from './support/audit-rows.js';
import {
  CASDOOR_TOKEN_ALGORITHMS,
  formatClaims,
  REFRESH_CLAIMS,
  TestIssuer,
  TOKEN_FORMATS,
  type TokenShape,
} from './support/issuer.js';
import { callTool, challengeParams, toolResultOf } from './support/mcp-http.js';

type Algorithm = (typeof CASDOOR_TOKEN_ALGORITHMS)[number];

const REFRESH_TOKEN = 'a refresh token cannot be used as an access token';
const SUBJECT = '3f1c2a9e-6b7d-4e21-9a0b-5c8d7e6f1a2b';
const CLIENT_ID = 'a1b2c3d4e5f6a7b8c9d0';
const USER = { principalName: 'alice', principalEmail: 'alice@example.com', clientId: CLIENT_ID };

/** Casdoor's certs, one per signing method (kid = the cert's name; cert-built-in is RSA 4096). */
const KIDS: Record<Algorithm, string> = {
  RS256: 'cert-built-in',
  RS512: 'cert-rs512',
  ES256: 'cert-es256',
  ES384: 'cert-es384',
  ES512: 'cert-es512',
};

/** Who the audit record names for each shape, written out rather than derived. */
const PRINCIPALS: Record<TokenShape, Partial<AuditRow>> = {
  JWT: USER,
  'JWT-Empty': USER,
  // `name` is the display name here; the user name is `preferred_username`.
  'JWT-Standard': USER,
  'JWT-Custom': USER,
  bare: { principalName: null, principalEmail: null, clientId: null },
};

const SHAPES: TokenShape[] = [...TOKEN_FORMATS, 'bare'];
const MATRIX = SHAPES.flatMap((shape) =>
  CASDOOR_TOKEN_ALGORITHMS.map((alg) => [shape, alg] as const),
);

describe('Casdoor token formats and signing methods (e2e)', () => {
  let issuer: TestIssuer;
  let sut: TestApp;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    await Promise.all([
      issuer.addKeyAsync(KIDS.RS512, 'RS512'),
      // A PS256 cert: the JWKS lists it as PS256, the application still signs RS256 with it.
      issuer.addKeyAsync('cert-ps256', 'RS256', undefined, 'PS256'),
    ]);
    issuer.addKey(KIDS.ES256, 'ES256');
    issuer.addKey(KIDS.ES384, 'ES384');
    issuer.addKey(KIDS.ES512, 'ES512');
    sut = await startTestApp({
      AUTH_ISSUER: issuer.url,
      AUTH_ALGORITHMS: CASDOOR_TOKEN_ALGORITHMS.join(','),
    });
  });
  afterAll(async () => {
    await sut?.close();
    await issuer?.close();
  });

  const tokenOf = (base: Record<string, unknown>, alg: Algorithm, kid = KIDS[alg]) =>
    issuer.token({ audience: sut.mcpUrl, scope: 'db:query', base, kid });

  /** A list_tables call with `token`: the answer and its audit record. */
  const call = (token: string) =>
    postAudited(sut, 'token-formats', callTool('list_tables'), { token });

  async function expectAcceptedAs(token: string, principal: Partial<AuditRow>, tokenId: unknown) {
    const { response, records } = await call(token);

    expect(response.status).toBe(200);
    expect(toolResultOf(response).isError).toBeFalsy();
    expect(records).toEqual([
      expect.objectContaining({
        outcome: 'success',
        tool: 'list_tables',
        subject: SUBJECT,
        subjectUnverified: 0,
        tokenId,
        grantedScopes: 'db:query',
        ...principal,
      }),
    ]);
  }

  async function expectRefreshRefused(token: string) {
    const { response, records } = await call(token);

    expect(response.status).toBe(401);
    expect(challengeParams(response.headers.get('www-authenticate'))).toMatchObject({
      error: 'invalid_token',
      error_description: REFRESH_TOKEN,
    });
    expect(records).toEqual([
      expect.objectContaining({
        outcome: 'refused_invalid_token',
        reason: REFRESH_TOKEN,
        subject: SUBJECT,
        subjectUnverified: 1,
        principalName: null,
        tool: null,
      }),
    ]);
  }

  describe.each(MATRIX)('%s signed with %s', (shape, alg) => {
    it('accepts the access token and records its principal', async () => {
      const claims = formatClaims(shape, 'access');

      await expectAcceptedAs(tokenOf(claims, alg), PRINCIPALS[shape], claims.jti);
    });

    it('refuses its refresh token', async () => {
      await expectRefreshRefused(tokenOf(formatClaims(shape, 'refresh'), alg));
    });
  });

  it.each(CASDOOR_TOKEN_ALGORITHMS)(
    'refuses the minimal refresh token of later releases signed with %s',
    async (alg) => {
      await expectRefreshRefused(tokenOf(REFRESH_CLAIMS, alg));
    },
  );

  it('accepts an RS512 token signed with cert-built-in (the JWKS lists the cert, alg RS256)', async () => {
    const claims = formatClaims('JWT', 'access');
    const token = issuer.token({
      audience: sut.mcpUrl,
      kid: 'cert-built-in',
      alg: 'RS512',
      base: claims,
    });

    await expectAcceptedAs(token, USER, claims.jti);
  });

  it('accepts an RS256 token signed with a PS256 cert (the JWKS lists the cert, alg PS256)', async () => {
    const claims = formatClaims('JWT', 'access');

    await expectAcceptedAs(tokenOf(claims, 'RS256', 'cert-ps256'), USER, claims.jti);
  });
});
