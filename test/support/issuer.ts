import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createHmac,
  generateKeyPair,
  generateKeyPairSync,
  type KeyObject,
  sign as cryptoSign,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import jsonwebtoken from 'jsonwebtoken';
import { IntrospectionEndpoint } from './introspection-endpoint.js';

type Claims = Record<string, unknown>;

/**
 * The claims of a fixture file under test/fixtures/casdoor, `_source` (the Casdoor code it
 * mirrors) dropped and `_extends` (the file it modifies, as Casdoor re-signs an access token's
 * claims as the refresh token) resolved.
 */
export function casdoorFixture(path: string): Claims {
  const url = new URL(`../fixtures/casdoor/${path}`, import.meta.url);
  const { _source, _extends, ...claims } = JSON.parse(readFileSync(url, 'utf8')) as Claims;
  if (typeof _source !== 'string') throw new Error(`${path}: no _source naming the Casdoor code`);
  if (_extends === undefined) return claims;
  if (typeof _extends !== 'string') throw new Error(`${path}: _extends must name a file`);
  const base = new URL(_extends, url).pathname.split('/fixtures/casdoor/')[1];
  return { ...casdoorFixture(base), ...claims };
}

/** The claims of a real Casdoor access token (test/fixtures/casdoor), to be re-targeted per test. */
export const CASDOOR_CLAIMS = casdoorFixture('access-token-claims.json');

/** The token formats a Casdoor application chooses from (its "Token format"). */
export const TOKEN_FORMATS = ['JWT', 'JWT-Empty', 'JWT-Standard', 'JWT-Custom'] as const;
export type TokenFormat = (typeof TOKEN_FORMATS)[number];

/**
 * Fixture shapes beyond the formats: `bare`, a JWT-Custom token without the optional `name`,
 * `email` and `azp`; `refresh-claims`, the minimal refresh token of releases after v3.158.
 */
export type TokenShape = TokenFormat | 'bare';

/** The access and refresh claims of a shape, from test/fixtures/casdoor. */
export function formatClaims(shape: TokenShape, kind: 'access' | 'refresh'): Claims {
  return shape === 'JWT' && kind === 'access'
    ? { ...CASDOOR_CLAIMS }
    : casdoorFixture(`formats/${shape.toLowerCase()}.${kind}.json`);
}

/** The minimal refresh token every format gets in releases after v3.158 (getRefreshClaims). */
export const REFRESH_CLAIMS = casdoorFixture('formats/refresh-claims.json');

/** What a Casdoor application signs with (its "Token signing method"). */
export const CASDOOR_TOKEN_ALGORITHMS = ['RS256', 'RS512', 'ES256', 'ES384', 'ES512'] as const;

export type SigningAlgorithm =
  (typeof CASDOOR_TOKEN_ALGORITHMS)[number] | 'RS384' | 'PS256' | 'PS384' | 'PS512';

/** Casdoor's default RSA key size (object/init.go: cert-built-in, BitSize 4096). */
export const CASDOOR_RSA_BITS = 4096;

interface SigningKey {
  kid: string;
  alg: SigningAlgorithm;
  /** The `alg` the JWKS lists: Casdoor writes the cert's crypto algorithm, not the token's. */
  jwkAlg: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** The named curve of an ES algorithm (object/cert_util.go generateEsKeys: ES512 is P-521). */
const CURVES: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

type KeyPairOptions =
  | { type: 'rsa'; options: { modulusLength: number } }
  | { type: 'ec'; options: { namedCurve: string } };

function keyPairOptions(alg: SigningAlgorithm, modulusLength: number): KeyPairOptions {
  return alg.startsWith('ES')
    ? { type: 'ec', options: { namedCurve: CURVES[alg] } }
    : { type: 'rsa', options: { modulusLength } };
}

function generate(kid: string, alg: SigningAlgorithm, modulusLength: number): SigningKey {
  const { type, options } = keyPairOptions(alg, modulusLength);
  const pair =
    type === 'rsa' ? generateKeyPairSync('rsa', options) : generateKeyPairSync('ec', options);
  return { kid, alg, jwkAlg: alg, ...pair };
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
  /** Fields that replace those of the discovery document (a misconfigured Casdoor's). */
  discoveryOverrides: Record<string, unknown> = {};
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

  /**
   * Publishes a new key. `jwkAlg` is the `alg` the JWKS lists for it when that differs from the
   * algorithm it signs with (a Casdoor PS256 cert signs an application's RS256 tokens).
   */
  addKey(kid: string, alg: SigningAlgorithm = 'RS256', modulusLength = 2048, jwkAlg = alg): void {
    this.keys.set(kid, { ...generate(kid, alg, modulusLength), jwkAlg });
  }

  /** addKey with the key generated off the main thread (RSA 4096 takes a second or more). */
  async addKeyAsync(
    kid: string,
    alg: SigningAlgorithm = 'RS256',
    modulusLength = CASDOOR_RSA_BITS,
    jwkAlg: string = alg,
  ): Promise<void> {
    const { type, options } = keyPairOptions(alg, modulusLength);
    const pair = await new Promise<{ publicKey: KeyObject; privateKey: KeyObject }>(
      (resolve, reject) => {
        const done = (error: Error | null, publicKey: KeyObject, privateKey: KeyObject) =>
          error ? reject(error) : resolve({ publicKey, privateKey });
        if (type === 'rsa') generateKeyPair('rsa', options, done);
        else generateKeyPair('ec', options, done);
      },
    );
    this.keys.set(kid, { kid, alg, jwkAlg, ...pair });
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

  /** Stops publishing a key that keeps signing (a deleted cert whose tokens are still out). */
  retireKey(kid: string): void {
    const key = this.keys.get(kid);
    if (!key) throw new Error(`no key ${kid}`);
    this.keys.delete(kid);
    this.unpublished.set(kid, key);
  }

  /**
   * A Casdoor token for `audience` with these scopes: the claims of `base` (the default "JWT"
   * access token, or formatClaims' shape of another format or of a refresh token) re-targeted at
   * this issuer and now; overrides replace claims.
   */
  token(options: {
    audience: string | string[];
    scope?: string;
    kid?: string;
    /** Signs with this algorithm, not the key's (Casdoor signs RS512 with an RS256 cert). */
    alg?: SigningAlgorithm;
    base?: Claims;
    claims?: Claims;
    header?: Claims;
  }): string {
    const kid = options.kid ?? 'cert-built-in';
    const key = this.keys.get(kid) ?? this.unpublished.get(kid);
    if (!key) throw new Error(`no key ${kid}`);
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      ...(options.base ?? CASDOOR_CLAIMS),
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
    const alg = options.alg ?? key.alg;
    return jsonwebtoken.sign(claims, key.privateKey, {
      algorithm: alg,
      header: { alg, kid, typ: 'JWT', ...options.header },
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
      alg: key.jwkAlg,
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
        ...this.discoveryOverrides,
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
