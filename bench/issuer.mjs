/**
 * A Casdoor-shaped authorization server on loopback for the benchmark: OIDC discovery and a JWKS
 * with one RSA 4096 key (kid cert-built-in, as Casdoor's built-in cert), and RS256 access tokens
 * signed with it whose claims are those of a real Casdoor token
 * (test/fixtures/casdoor/access-token-claims.json), re-targeted at the server under test.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import jsonwebtoken from 'jsonwebtoken';

// `_source` names the Casdoor code the fixture mirrors; it is not a claim.
const CASDOOR_CLAIMS = JSON.parse(
  readFileSync(
    new URL('../test/fixtures/casdoor/access-token-claims.json', import.meta.url),
    'utf8',
  ),
);
delete CASDOOR_CLAIMS._source;

const KID = 'cert-built-in';

export async function startIssuer() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 4096 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' };
  let url = '';
  let jwksRequests = 0;

  const server = createServer((request, response) => {
    const json = (status, body) => {
      response.writeHead(status, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    const path = request.url ?? '/';
    if (path === '/.well-known/openid-configuration')
      return json(200, {
        issuer: url,
        authorization_endpoint: `${url}/login/oauth/authorize`,
        token_endpoint: `${url}/api/login/oauth/access_token`,
        jwks_uri: `${url}/.well-known/jwks`,
        id_token_signing_alg_values_supported: ['RS256'],
      });
    if (path === '/.well-known/jwks') {
      jwksRequests++;
      return json(200, { keys: [jwk] });
    }
    return json(404, { error: 'not found' });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${server.address().port}`;

  return {
    url,
    get jwksRequests() {
      return jwksRequests;
    },
    /** An access token for `audience` with these scopes, valid for an hour. */
    token({ audience, scope = 'db:query' }) {
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        ...CASDOOR_CLAIMS,
        iss: url,
        aud: [audience],
        scope,
        iat: now,
        nbf: now,
        exp: now + 3600,
      };
      return jsonwebtoken.sign(claims, privateKey, {
        algorithm: 'RS256',
        header: { alg: 'RS256', kid: KID, typ: 'JWT' },
      });
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
