/**
 * A Casdoor-shaped authorization server on loopback for the benchmark: OIDC discovery and a JWKS
 * with one RSA 4096 key (kid cert-built-in, as Casdoor's built-in cert), and RS256 access tokens
 * signed with it whose claims are those of a real Casdoor token
 * (test/fixtures/casdoor/access-token-claims.json), re-targeted at the server under test. Its
 * introspection endpoint (Casdoor's /api/login/oauth/introspect) answers `active: true` for its
 * own unexpired tokens asked about by `introspectionClient`, as Casdoor does for live tokens.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { URLSearchParams } from 'node:url';
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
const INTROSPECTION_PATH = '/api/login/oauth/introspect';
const INTROSPECTION_CLIENT = { id: CASDOOR_CLAIMS.azp, secret: 'bench-introspection-secret' };

export async function startIssuer() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 4096 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' };
  let url = '';
  let jwksRequests = 0;
  let introspectionCalls = 0;
  const basic = `Basic ${Buffer.from(`${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`).toString('base64')}`;

  /** Casdoor's answer for a token: its claims if this issuer signed it and it is live. */
  const introspect = (token) => {
    try {
      const claims = jsonwebtoken.verify(token, publicKey, { issuer: url });
      if (claims.azp !== INTROSPECTION_CLIENT.id) return { active: false };
      const { scope, exp, iat, nbf, sub, aud, iss, jti, name } = claims;
      const live = {
        scope,
        client_id: INTROSPECTION_CLIENT.id,
        username: name,
        token_type: 'Bearer',
      };
      return { active: true, ...live, exp, iat, nbf, sub, aud, iss, jti };
    } catch {
      return { active: false };
    }
  };

  const server = createServer((request, response) => {
    const json = (status, body) => {
      response.writeHead(status, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    const path = request.url ?? '/';
    if (request.method === 'POST' && path === INTROSPECTION_PATH) {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        introspectionCalls++;
        if (request.headers.authorization !== basic) return json(401, { error: 'invalid_client' });
        json(200, introspect(new URLSearchParams(body).get('token') ?? ''));
      });
      return;
    }
    if (path === '/.well-known/openid-configuration')
      return json(200, {
        issuer: url,
        authorization_endpoint: `${url}/login/oauth/authorize`,
        token_endpoint: `${url}/api/login/oauth/access_token`,
        jwks_uri: `${url}/.well-known/jwks`,
        introspection_endpoint: `${url}${INTROSPECTION_PATH}`,
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
    introspectionClient: INTROSPECTION_CLIENT,
    get introspectionCalls() {
      return introspectionCalls;
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
