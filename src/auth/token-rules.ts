// The rules an access token must follow beyond its signature, in the words the 401's
// error_description uses. JwtStrategy applies them (and answers with the first one broken);
// `npm run doctor` lists every one a token breaks, so the two cannot disagree.
import type { VerifyOptions } from 'jsonwebtoken';
import type { AuthSettings } from '../config/settings.js';
import { InvalidTokenException } from './oauth.exceptions.js';
import type { Principal } from './principal.js';

export type Claims = Record<string, unknown>;

/** A rule a token breaks, and how the refusal describes it. */
export interface TokenRefusal<Rule extends string = string> {
  rule: Rule;
  description: string;
}

export const MALFORMED_TOKEN = 'the token is not a well-formed JWT';
export const REFRESH_TOKEN_REFUSAL = 'a refresh token cannot be used as an access token';

/** The JSON object in one base64url segment of a JWT (0: header, 1: claims), if it is one. */
function decodeSegment(rawJwt: string, index: 0 | 1): Claims | undefined {
  const segment = rawJwt.split('.')[index] ?? '';
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Claims)
      : undefined;
  } catch {
    return undefined;
  }
}

export function decodeHeader(rawJwt: string): Claims | undefined {
  return decodeSegment(rawJwt, 0);
}

/** The claims, unverified: for the doctor's report, never for a decision. */
export function decodeClaims(rawJwt: string): Claims | undefined {
  return decodeSegment(rawJwt, 1);
}

export type HeaderRule = 'alg' | 'crit' | 'kid';

/**
 * Every header rule the token breaks, in the order they are checked: an accepted `alg`, no
 * critical extension (RFC 7515 §4.1.11: none is understood here), and a key id to look up.
 */
export function headerRefusals(
  header: Claims,
  algorithms: readonly string[],
): TokenRefusal<HeaderRule>[] {
  const refusals: TokenRefusal<HeaderRule>[] = [];
  if (typeof header.alg !== 'string' || !algorithms.includes(header.alg))
    refusals.push({
      rule: 'alg',
      description: `the token's signing algorithm is not accepted (accepted: ${algorithms.join(', ')})`,
    });
  if (header.crit !== undefined)
    refusals.push({
      rule: 'crit',
      description: 'the token has critical header parameters (crit) that are not supported',
    });
  if (typeof header.kid !== 'string' || header.kid === '')
    refusals.push({ rule: 'kid', description: 'the token header has no key id (kid)' });
  return refusals;
}

/** What jsonwebtoken checks with the signature: `alg`, exact `iss`, `aud`, `exp` and `nbf`. */
export function verifyOptionsOf(cfg: AuthSettings) {
  return {
    issuer: cfg.issuer,
    audience: cfg.audiences as [string, ...string[]],
    algorithms: cfg.algorithms,
    clockTolerance: cfg.clockToleranceS,
  } satisfies VerifyOptions;
}

export type ClaimRule = 'token_type' | 'exp' | 'sub' | 'scope';

/**
 * The values of every claim named tokenType in any letter case: Casdoor marks its tokens with
 * `tokenType`, and a JWT-Custom refresh token adds `TokenType` (test/fixtures/casdoor/README.md).
 */
function tokenTypesOf(claims: Claims): unknown[] {
  return Object.entries(claims)
    .filter(([name, value]) => name.toLowerCase() === 'tokentype' && value !== undefined)
    .map(([, value]) => value);
}

/** Why a token marked as something else than an access token is refused, if it is. */
function tokenTypeRefusal(claims: Claims): string | undefined {
  const types = tokenTypesOf(claims);
  if (types.includes('refresh-token')) return REFRESH_TOKEN_REFUSAL;
  const others = types.filter((type) => type !== 'access-token');
  if (others.length === 0) return undefined;
  return `the token is not an access token (tokenType ${JSON.stringify(others[0]).slice(0, 64)})`;
}

/**
 * Every rule the verified claims still break: a Casdoor refresh token (signed alike, told apart
 * only by its tokenType marker) or any other token type, no `exp`, no `sub`, a `scope` that is
 * not one space-separated string.
 */
export function claimRefusals(claims: Claims): TokenRefusal<ClaimRule>[] {
  const refusals: TokenRefusal<ClaimRule>[] = [];
  const typeRefusal = tokenTypeRefusal(claims);
  if (typeRefusal) refusals.push({ rule: 'token_type', description: typeRefusal });
  if (typeof claims.exp !== 'number')
    refusals.push({ rule: 'exp', description: 'the token has no expiry (exp)' });
  if (optionalString(claims, 'sub') === undefined)
    refusals.push({ rule: 'sub', description: 'the token has no subject (sub)' });
  if (claims.scope !== undefined && typeof claims.scope !== 'string')
    refusals.push({
      rule: 'scope',
      description: 'the token scope claim must be a space-separated string',
    });
  return refusals;
}

function optionalString(claims: Claims, name: string): string | undefined {
  const value = claims[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The scopes a `scope` claim grants (none when it is absent or not a string). */
export function grantedScopes(claims: Claims): Set<string> {
  const scope = typeof claims.scope === 'string' ? claims.scope : '';
  return new Set(scope.split(' ').filter((item) => item !== ''));
}

/** The principal of verified claims; refused with the first rule they break. */
export function principalOf(claims: Claims): Principal {
  const [refusal] = claimRefusals(claims);
  if (refusal) throw new InvalidTokenException(refusal.description);
  return {
    subject: optionalString(claims, 'sub')!,
    clientId: optionalString(claims, 'azp') ?? optionalString(claims, 'client_id'),
    tokenId: optionalString(claims, 'jti'),
    // JWT-Standard names the user `preferred_username` and puts the display name in `name`.
    name: optionalString(claims, 'preferred_username') ?? optionalString(claims, 'name'),
    email: optionalString(claims, 'email'),
    scopes: grantedScopes(claims),
    expiresAt: claims.exp as number,
  };
}
