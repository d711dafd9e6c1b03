import { type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import jsonwebtoken from 'jsonwebtoken';
import { isObservable, lastValueFrom } from 'rxjs';
import { HttpOnlyGuard } from '../common/http-only-guard.js';
import { RateLimitGuard } from '../rate-limit/rate-limit.guard.js';
import { bearerToken, JWT_STRATEGY } from './jwt.strategy.js';
import { IS_PUBLIC_KEY } from './public.decorator.js';
import {
  AuthenticationRequiredException,
  IntrospectionUnavailableException,
  InvalidTokenException,
  OAuthChallengeException,
} from './oauth.exceptions.js';
import type { AuthenticatedRequest, Principal } from './principal.js';
import { VerifiedTokenCache } from './verified-token.cache.js';
import { Introspection } from './introspection.service.js';

const { JsonWebTokenError, NotBeforeError, TokenExpiredError } = jsonwebtoken;

/** jsonwebtoken's reasons, reworded for the error_description (never echoing the token). */
const DESCRIPTIONS: [RegExp, string][] = [
  [/audience invalid/, "the token's audience (aud) does not include this resource"],
  [/issuer invalid/, 'the token was issued by another issuer than AUTH_ISSUER'],
  [/invalid signature/, "the token's signature does not verify"],
  [/invalid algorithm/, "the token's signing algorithm is not accepted"],
  [
    /jwt malformed|invalid token|jwt signature is required/,
    'the token is not a well-formed signed JWT',
  ],
];

export function describeVerificationError(error: unknown): string {
  if (error instanceof TokenExpiredError)
    return `the token expired at ${error.expiredAt.toISOString()}`;
  if (error instanceof NotBeforeError)
    return `the token is not valid before ${error.date.toISOString()}`;
  if (error instanceof JsonWebTokenError)
    return (
      DESCRIPTIONS.find(([pattern]) => pattern.test(error.message))?.[1] ?? 'the token is invalid'
    );
  return 'the token is invalid';
}

/**
 * The refusal of a presented token that did not verify: the strategy's own refusal, else
 * jsonwebtoken's reason reworded. `npm run doctor` words its verdict with it too.
 */
export function tokenRefusal(error: unknown, info: unknown): OAuthChallengeException {
  if (error instanceof OAuthChallengeException) return error;
  if (info instanceof OAuthChallengeException) return info;
  return new InvalidTokenException(describeVerificationError(error ?? info));
}

/** Global guard: every route needs a valid bearer token unless it is marked @Public(). */
@Injectable()
@HttpOnlyGuard()
export class JwtAuthGuard extends AuthGuard(JWT_STRATEGY) {
  constructor(
    private readonly reflector: Reflector,
    private readonly rateLimit: RateLimitGuard,
    private readonly verified: VerifiedTokenCache,
    private readonly introspection: Introspection,
  ) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    // Tool pipelines run inside an already authenticated HTTP request; ScopesGuard guards them.
    if (context.getType() !== 'http') return true;
    const isPublic = this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic) return true;
    // A token that verified before (and is within its lifetime) is not verified again.
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const token = bearerToken(request);
    const principal = token === null ? undefined : this.verified.get(token);
    try {
      if (principal) request.user = principal;
      else {
        const result = super.canActivate(context);
        if (!(isObservable(result) ? await lastValueFrom(result) : await result)) return false;
      }
      // AUTH_INTROSPECTION: a token that verifies locally is also confirmed with Casdoor.
      if (this.introspection.enabled) await this.introspection.confirm(token!, request.user!);
      return true;
    } catch (error) {
      // Refused callers have no principal: their IP's budget is charged (429 once it is spent).
      // Not for Casdoor's outage: the caller did nothing wrong.
      if (!(error instanceof IntrospectionUnavailableException))
        await this.rateLimit.limitAnonymous(context);
      throw error;
    }
  }

  override handleRequest<TUser = Principal>(
    error: unknown,
    principal: Principal | false,
    info: unknown,
    context: ExecutionContext,
  ): TUser {
    if (error instanceof OAuthChallengeException || info instanceof OAuthChallengeException)
      throw tokenRefusal(error, info);
    if (principal && !error) return principal as TUser;
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    if (!/^\s*bearer\s+\S/i.test(request.headers.authorization ?? '')) {
      const inQuery = Object.hasOwn(request.query ?? {}, 'access_token');
      throw new AuthenticationRequiredException(
        inQuery
          ? 'Tokens in the query string are not accepted; send the access token in the Authorization header as "Bearer <token>".'
          : 'Authentication required: send an OAuth access token for this resource in the Authorization header as "Bearer <token>"; the resource_metadata URL in WWW-Authenticate names the authorization server.',
      );
    }
    throw tokenRefusal(error, info);
  }
}
