import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { authConfig } from '../config/configuration.js';
import { JwksKeyCache, SigningKeyUnavailableError } from './jwks-key.cache.js';
import { InvalidTokenException } from './oauth.exceptions.js';
import type { Principal } from './principal.js';
import { VerifiedTokenCache } from './verified-token.cache.js';

export const JWT_STRATEGY = 'jwt';

/** passport-jwt's reading of `Authorization: Bearer <token>` (null without one). */
export const bearerToken = ExtractJwt.fromAuthHeaderAsBearerToken();

type Claims = Record<string, unknown>;

function decodeHeader(rawJwt: string): Record<string, unknown> | undefined {
  const [encoded] = rawJwt.split('.', 1);
  try {
    const header: unknown = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
    return header !== null && typeof header === 'object' && !Array.isArray(header)
      ? (header as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function optionalString(claims: Claims, name: string): string | undefined {
  const value = claims[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * Verifies Casdoor access tokens: signature against the issuer's JWKS (by `kid`, never `jku`,
 * `x5u` or an embedded `jwk`), `alg` from AUTH_ALGORITHMS, exact `iss`, `aud` containing the
 * resource, `exp` required, `nbf`, and refuses Casdoor refresh tokens, which are signed alike.
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, JWT_STRATEGY) {
  constructor(
    @Inject(authConfig.KEY) cfg: ConfigType<typeof authConfig>,
    keys: JwksKeyCache,
    private readonly verified: VerifiedTokenCache,
  ) {
    super({
      jwtFromRequest: bearerToken,
      passReqToCallback: true,
      secretOrKeyProvider: (
        _request: Request,
        rawJwt: string,
        done: (error: Error | null, key?: string | Buffer) => void,
      ) => {
        const header = decodeHeader(rawJwt);
        if (!header) return done(new InvalidTokenException('the token is not a well-formed JWT'));
        if (typeof header.alg !== 'string' || !(cfg.algorithms as string[]).includes(header.alg))
          return done(
            new InvalidTokenException(
              `the token's signing algorithm is not accepted (accepted: ${cfg.algorithms.join(', ')})`,
            ),
          );
        // RFC 7515 §4.1.11: no extension is understood here, so any critical one is refused.
        if (header.crit !== undefined)
          return done(
            new InvalidTokenException(
              'the token has critical header parameters (crit) that are not supported',
            ),
          );
        if (typeof header.kid !== 'string' || header.kid === '')
          return done(new InvalidTokenException('the token header has no key id (kid)'));
        keys.keyFor(header.kid).then(
          // jsonwebtoken accepts a KeyObject; passport-jwt's types predate that.
          (key) => done(null, key as unknown as string),
          (error: unknown) =>
            done(
              error instanceof SigningKeyUnavailableError
                ? new InvalidTokenException(error.message)
                : new InvalidTokenException('the token signing key could not be resolved'),
            ),
        );
      },
      issuer: cfg.issuer,
      audience: cfg.audiences as [string, ...string[]],
      algorithms: cfg.algorithms,
      ignoreExpiration: false,
      jsonWebTokenOptions: { clockTolerance: cfg.clockToleranceS },
    });
  }

  /** Remembers the verified token (JwtAuthGuard does not verify it again while it is valid). */
  validate(request: Request, claims: Claims): Principal {
    const principal = this.principalOf(claims);
    this.verified.set(bearerToken(request)!, principal);
    return principal;
  }

  private principalOf(claims: Claims): Principal {
    if (claims.tokenType === 'refresh-token' || claims.TokenType === 'refresh-token')
      throw new InvalidTokenException('a refresh token cannot be used as an access token');
    if (typeof claims.exp !== 'number')
      throw new InvalidTokenException('the token has no expiry (exp)');
    const subject = optionalString(claims, 'sub');
    if (subject === undefined) throw new InvalidTokenException('the token has no subject (sub)');
    const scope = claims.scope;
    if (scope !== undefined && typeof scope !== 'string')
      throw new InvalidTokenException('the token scope claim must be a space-separated string');
    return {
      subject,
      clientId: optionalString(claims, 'azp') ?? optionalString(claims, 'client_id'),
      tokenId: optionalString(claims, 'jti'),
      name: optionalString(claims, 'name'),
      email: optionalString(claims, 'email'),
      scopes: new Set((scope ?? '').split(' ').filter((item) => item !== '')),
      expiresAt: claims.exp,
    };
  }
}
