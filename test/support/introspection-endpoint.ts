import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KeyObject } from 'node:crypto';
import jsonwebtoken from 'jsonwebtoken';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../fixtures/casdoor/${name}`, import.meta.url), 'utf8'));

/** The application of the fixture's tokens (their `azp`). */
const APPLICATION = (fixture('access-token-claims.json') as { azp: string }).azp;

/** Casdoor's introspection answers (test/fixtures/casdoor/introspection.json names the source). */
const SHAPES = fixture('introspection.json') as {
  active: Record<string, unknown>;
  inactive: Record<string, unknown>;
  invalidClient: { status: number; body: Record<string, unknown> };
  invalidRequest: { status: number; body: Record<string, unknown> };
};

/** How the endpoint fails when told to: connection reset, HTTP 500, or no answer in time. */
export type IntrospectionFailure = 'down' | 'error' | 'slow';

/** What the endpoint needs of its issuer: where it is and the keys it publishes. */
export interface IntrospectingIssuer {
  readonly url: string;
  readonly keys: ReadonlyMap<string, { publicKey: KeyObject }>;
}

const HINTS = ['', 'access_token', 'access-token', 'refresh_token', 'refresh-token'];

/**
 * Casdoor's POST /api/login/oauth/introspect, as controllers/token.go IntrospectToken answers it
 * (newest stored version; the older ones agree on every case below):
 * - client authentication first: HTTP Basic (Go's Request.BasicAuth, not form-decoded), else the
 *   `client_id` / `client_secret` form fields; none: 400 invalid_request; an unknown client or a
 *   wrong secret: 401 invalid_client with `WWW-Authenticate: Basic realm="OAuth2"`
 *   (ValidateOAuth, SetTokenErrorHttpStatus);
 * - `token_type_hint` other than access_token / refresh_token (either spelling) or none: 400;
 * - the value is looked up among the issued tokens (GetTokenByAccessToken, then with no hint
 *   GetTokenByRefreshToken): an unknown value, or a token whose ExpiresIn <= 0 (set to 0 by
 *   ExpireTokenByAccessToken when the user signs out, which is how Casdoor revokes), is
 *   `{"active": false}`; so is a refresh token's value looked up as an access token;
 * - a token issued to another application (token.Application, the JWT's `azp`) is inactive: a
 *   client can introspect only its own tokens;
 * - the JWT must still verify (ParseJwtTokenByApplication: signature, `exp`), be an access token
 *   (`tokenType` access-token) with `azp` = the client: else inactive;
 * - active: scope, client_id (the introspecting application's), username (token.User), token_type
 *   (token.TokenType, "Bearer"), and exp, iat, nbf, sub, aud, iss, jti from the JWT.
 * "Issued" here means signed with a key this issuer publishes and carrying its `iss`.
 */
export class IntrospectionEndpoint {
  /** The introspecting application's credentials: the application of the fixture's tokens. */
  readonly client = { id: APPLICATION, secret: 'casdoor-client-secret-9f8e7d6c' };
  /** Requests that reached the endpoint, answered or not. */
  calls = 0;
  failure: IntrospectionFailure | undefined;
  /** Values of tokens whose ExpiresIn Casdoor set to 0 (signed out, expired by an administrator). */
  private readonly expired = new Set<string>();

  constructor(private readonly issuer: IntrospectingIssuer) {}

  /** What ExpireTokenByAccessToken does at sign-out: the token's ExpiresIn becomes 0. */
  revoke(token: string): void {
    this.expired.add(token);
  }

  handle(request: IncomingMessage, response: ServerResponse): void {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      this.calls++;
      if (this.failure === 'down') return void request.socket.destroy();
      if (this.failure === 'slow') return; // never answered; close() ends the connection
      if (this.failure === 'error') return send(response, 500, { error: 'server_error' });
      const [status, answer] = this.answer(request, new URLSearchParams(body));
      send(
        response,
        status,
        answer,
        status === 401 ? { 'WWW-Authenticate': 'Basic realm="OAuth2"' } : {},
      );
    });
  }

  private answer(request: IncomingMessage, form: URLSearchParams): [number, unknown] {
    const [id, secret] = basicCredentials(request) ?? [
      form.get('client_id'),
      form.get('client_secret'),
    ];
    if (!id || !secret) return [SHAPES.invalidRequest.status, SHAPES.invalidRequest.body];
    if (id !== this.client.id || secret !== this.client.secret)
      return [SHAPES.invalidClient.status, SHAPES.invalidClient.body];
    const hint = form.get('token_type_hint') ?? '';
    if (!HINTS.includes(hint)) return [SHAPES.invalidRequest.status, SHAPES.invalidRequest.body];
    const token = form.get('token') ?? '';
    const claims = this.issued(token);
    const kind = claims?.tokenType === 'refresh-token' ? 'refresh' : 'access';
    const found = claims && (hint.startsWith('access') ? kind === 'access' : true);
    if (!found || this.expired.has(token) || claims.azp !== this.client.id)
      return [200, SHAPES.inactive];
    if (!this.live(token)) return [200, SHAPES.inactive];
    return [
      200,
      {
        ...SHAPES.active,
        scope: claims.scope,
        client_id: this.client.id,
        username: claims.name,
        exp: claims.exp,
        iat: claims.iat,
        nbf: claims.nbf,
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        jti: claims.jti,
      },
    ];
  }

  /** The token's claims if this issuer signed it (whatever its expiry), else undefined. */
  private issued(token: string): Record<string, unknown> | undefined {
    const header = jsonwebtoken.decode(token, { complete: true })?.header;
    const key = header?.kid ? this.issuer.keys.get(header.kid) : undefined;
    if (!key) return undefined;
    try {
      const claims = jsonwebtoken.verify(token, key.publicKey, {
        issuer: this.issuer.url,
        ignoreExpiration: true,
      });
      return typeof claims === 'object' ? claims : undefined;
    } catch {
      return undefined;
    }
  }

  /** ParseJwtTokenByApplication's check: the JWT has not expired. */
  private live(token: string): boolean {
    const exp = (jsonwebtoken.decode(token) as { exp?: number } | null)?.exp;
    return exp !== undefined && exp * 1000 > Date.now();
  }
}

function basicCredentials(request: IncomingMessage): [string, string] | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : [decoded.slice(0, colon), decoded.slice(colon + 1)];
}

function send(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    ...headers,
  });
  response.end(JSON.stringify(body));
}
