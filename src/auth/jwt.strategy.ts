import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { authConfig } from '../config/configuration.js';
import { JwksKeyCache, SigningKeyUnavailableError } from './jwks-key.cache.js';
import { InvalidTokenException } from './oauth.exceptions.js';
import type { Principal } from './principal.js';
import {
  type Claims,
  decodeHeader,
  headerRefusals,
  MALFORMED_TOKEN,
  principalOf,
  verifyOptionsOf,
} from './token-rules.js';
import { VerifiedTokenCache } from './verified-token.cache.js';

export const JWT_STRATEGY = 'jwt';

/** passport-jwt's reading of `Authorization: Bearer <token>` (null without one). */
export const bearerToken = ExtractJwt.fromAuthHeaderAsBearerToken();

/** Why no key verifies the token, from JwksKeyCache's failure to provide one. */
export function signingKeyRefusal(error: unknown): string {
  return error instanceof SigningKeyUnavailableError
    ? error.message
    : 'the token signing key could not be resolved';
}

/**
 * Verifies Casdoor access tokens: signature against the issuer's JWKS (by `kid`, never `jku`,
 * `x5u` or an embedded `jwk`), `alg` from AUTH_ALGORITHMS, exact `iss`, `aud` containing the
 * resource, `exp` required, `nbf`, and refuses Casdoor refresh tokens, which are signed alike
 * (the rules in token-rules.ts).
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, JWT_STRATEGY) {
  constructor(
    @Inject(authConfig.KEY) cfg: ConfigType<typeof authConfig>,
    keys: JwksKeyCache,
    private readonly verified: VerifiedTokenCache,
  ) {
    const options = verifyOptionsOf(cfg);
    super({
      jwtFromRequest: bearerToken,
      passReqToCallback: true,
      secretOrKeyProvider: (
        _request: Request,
        rawJwt: string,
        done: (error: Error | null, key?: string | Buffer) => void,
      ) => {
        const header = decodeHeader(rawJwt);
        if (!header) return done(new InvalidTokenException(MALFORMED_TOKEN));
        const [refusal] = headerRefusals(header, cfg.algorithms);
        if (refusal) return done(new InvalidTokenException(refusal.description));
        keys.keyFor(header.kid as string).then(
          // jsonwebtoken accepts a KeyObject; passport-jwt's types predate that.
          (key) => done(null, key as unknown as string),
          (error: unknown) => done(new InvalidTokenException(signingKeyRefusal(error))),
        );
      },
      issuer: options.issuer,
      audience: options.audience,
      algorithms: options.algorithms,
      ignoreExpiration: false,
      jsonWebTokenOptions: { clockTolerance: options.clockTolerance },
    });
  }

  /** Remembers the verified token (JwtAuthGuard does not verify it again while it is valid). */
  validate(request: Request, claims: Claims): Principal {
    const principal = principalOf(claims);
    this.verified.set(bearerToken(request)!, principal);
    return principal;
  }
}
