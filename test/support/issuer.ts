import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, type KeyObject, sign as cryptoSign, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import jsonwebtoken from 'jsonwebtoken';
import { IntrospectionEndpoint } from './introspection-endpoint.js';

/** The claims of a real Casdoor access token (test/fixtures/casdoor), to be re-targeted per test. */
export const CASDOOR_CLAIMS = JSON.parse(
  readFileSync(new URL('../fixtures/casdoor/access-token-claims.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

export type SigningAlgorithm = 'RS256' | 'RS512' | 'ES256' | 'ES384';

interface SigningKey {
  kid: string;
  alg: SigningAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function generate(kid: string, alg: SigningAlgorithm, modulusLength: number): SigningKey {
  const pair = alg.startsWith('RS')
    ? generateKeyPairSync('rsa', { modulusLength })
    : generateKeyPairSync('ec', { namedCurve: alg === 'ES256' ? 'P-256' : 'P-384' });
  return { kid, alg, ...pair };
}

const INTROSPECTION_PATH = '/api/login/oauth/introspect';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * A Casdoor-shaped authorization server on loopback: discovery and a JWKS with real keys, and
 * tokens signed with them. Keys can be rotated and the JWKS endpoint taken down.
 */
export class TestIssuer {
  readonly keys = new Map<string, SigningKey>();
  /** Keys that sign but are not published (an attacker's, or a retired one). */
  readonly unpublished = new Map<string, SigningKey>();
  jwksRequests = 0;
  jwksDown = false;
  /** Casdoor's /api/login/oauth/introspect: its client, call count, failures (introspection-endpoint.ts). */
  readonly introspection: IntrospectionEndpoint = new IntrospectionEndpoint(this);

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<TestIssuer> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const issuer = new TestIssuer(server, `http://127.0.0.1:${port}`);
    server.on('request', (request: IncomingMessage, response: ServerResponse) =>
      request.method === 'POST' && request.url === INTROSPECTION_PATH
        ? issuer.introspection.handle(request, response)
        : issuer.handle(request.url ?? '/', response),
    );
    // Casdoor's built-in cert is RSA 4096 with kid cert-built-in.
    issuer.addKey('cert-built-in', 'RS256', 4096);
    return issuer;
  }

  addKey(kid: string, alg: SigningAlgorithm = 'RS256', modulusLength = 2048): void {
    this.keys.set(kid, generate(kid, alg, modulusLength));
  }

  /** A key that signs tokens but is not in the JWKS. */
  addUnpublishedKey(kid: string, alg: SigningAlgorithm = 'RS256'): void {
    this.unpublished.set(kid, generate(kid, alg, 2048));
  }

  /** Signs the user out at Casdoor: the token's introspection says `active: false` from now on. */
  revoke(token: string): void {
    this.introspection.revoke(token);
  }

  removeKey(kid: string): void {
    this.keys.delete(kid);
  }

  /** A Casdoor access token for `audience` with these scopes; overrides replace claims. */
  token(options: {
    audience: string | string[];
    scope?: string;
    kid?: string;
    claims?: Record<string, unknown>;
    header?: Record<string, unknown>;
  }): string {
    const kid = options.kid ?? 'cert-built-in';
    const key = this.keys.get(kid) ?? this.unpublished.get(kid);
    if (!key) throw new Error(`no key ${kid}`);
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      ...CASDOOR_CLAIMS,
      iss: this.url,
      aud: Array.isArray(options.audience) ? options.audience : [options.audience],
      scope: options.scope ?? 'db:query',
      iat: now,
      nbf: now,
      exp: now + 3600,
      ...options.claims,
    };
    for (const [name, value] of Object.entries(claims))
      if (value === undefined) delete claims[name];
    if (claims.scope === '') delete claims.scope;
    return jsonwebtoken.sign(claims, key.privateKey, {
      algorithm: key.alg,
      header: { alg: key.alg, kid, typ: 'JWT', ...options.header },
    });
  }

  /** A token with `alg: none` and no signature. */
  static unsigned(claims: Record<string, unknown>, kid = 'cert-built-in'): string {
    return `${b64({ alg: 'none', kid, typ: 'JWT' })}.${b64(claims)}.`;
  }

  /** An HS256 token keyed with the published public key (the classic confusion attack). */
  hs256WithPublicKey(claims: Record<string, unknown>, kid = 'cert-built-in'): string {
    const secret = this.keys.get(kid)!.publicKey.export({ type: 'spki', format: 'pem' });
    const input = `${b64({ alg: 'HS256', kid, typ: 'JWT' })}.${b64(claims)}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  }

  /** Re-signs nothing: swaps in an edited payload, keeping the original signature. */
  static withEditedPayload(token: string, edit: (claims: Record<string, unknown>) => void): string {
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    edit(claims);
    return `${header}.${b64(claims)}.${signature}`;
  }

  /** Signs raw header and claims with a key (for headers jsonwebtoken would not write). */
  signRaw(header: Record<string, unknown>, claims: Record<string, unknown>, kid: string): string {
    const key = this.keys.get(kid) ?? this.unpublished.get(kid)!;
    const input = `${b64(header)}.${b64(claims)}`;
    return `${input}.${cryptoSign('sha256', Buffer.from(input), key.privateKey).toString('base64url')}`;
  }

  publicJwk(kid: string): Record<string, unknown> {
    const key = this.keys.get(kid) ?? this.unpublished.get(kid)!;
    return {
      ...(key.publicKey.export({ format: 'jwk' }) as Record<string, unknown>),
      kid,
      alg: key.alg,
      use: 'sig',
    };
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(path: string, response: ServerResponse): void {
    const json = (status: number, body: unknown) => {
      response.writeHead(status, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (
      path === '/.well-known/openid-configuration' ||
      path === '/.well-known/oauth-authorization-server'
    ) {
      return json(200, {
        issuer: this.url,
        authorization_endpoint: `${this.url}/login/oauth/authorize`,
        token_endpoint: `${this.url}/api/login/oauth/access_token`,
        registration_endpoint: `${this.url}/api/oauth/register`,
        jwks_uri: `${this.url}/.well-known/jwks`,
        introspection_endpoint: `${this.url}${INTROSPECTION_PATH}`,
        code_challenge_methods_supported: ['S256'],
        id_token_signing_alg_values_supported: ['RS256', 'RS512', 'ES256', 'ES384', 'ES512'],
      });
    }
    if (path === '/.well-known/jwks') {
      this.jwksRequests++;
      if (this.jwksDown) return json(503, { error: 'unavailable' });
      // Newest first, as Casdoor lists its certs.
      return json(200, { keys: [...this.keys.keys()].reverse().map((kid) => this.publicJwk(kid)) });
    }
    json(404, { error: 'not found' });
  }
}
