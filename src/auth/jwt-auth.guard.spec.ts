import { generateKeyPairSync } from 'node:crypto';
import { Controller, Post, type Type } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import jsonwebtoken from 'jsonwebtoken';
import { describeVerificationError, JwtAuthGuard } from './jwt-auth.guard.js';
import {
  AuthenticationRequiredException,
  InsufficientScopeException,
  InvalidTokenException,
} from './oauth.exceptions.js';
import type { Principal } from './principal.js';
import type { RateLimitGuard } from '../rate-limit/rate-limit.guard.js';
import { Public } from './public.decorator.js';
import type { Introspection } from './introspection.service.js';
import { VerifiedTokenCache } from './verified-token.cache.js';

const ISSUER = 'https://casdoor.example.com';
const RESOURCE = 'https://mcp.example.com/mcp';
const casdoorKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const now = () => Math.floor(Date.now() / 1000);

function sign(claims: Record<string, unknown>, key = casdoorKey.privateKey): string {
  return jsonwebtoken.sign(
    {
      iss: ISSUER,
      aud: [RESOURCE],
      sub: 'b1c2d3e4-0000-4000-8000-000000000001',
      scope: 'db:query',
      ...claims,
    },
    key,
    { algorithm: 'RS256', keyid: 'cert-built-in' },
  );
}

/** What jsonwebtoken throws when it verifies `token` as this resource server does. */
function verificationErrorOf(token: string, options: jsonwebtoken.VerifyOptions = {}): unknown {
  try {
    jsonwebtoken.verify(token, casdoorKey.publicKey, {
      algorithms: ['RS256'],
      issuer: ISSUER,
      audience: RESOURCE,
      ...options,
    });
  } catch (error) {
    return error;
  }
  throw new Error('the token verified');
}

describe(describeVerificationError.name, () => {
  const sut = describeVerificationError;

  it('tells when an expired token expired', () => {
    const exp = now() - 3600;
    const token = sign({ iat: exp - 60, exp });
    const error = verificationErrorOf(token);
    expect(error).toBeInstanceOf(jsonwebtoken.TokenExpiredError);
    expect(sut(error)).toBe(`the token expired at ${new Date(exp * 1000).toISOString()}`);
  });

  it('tells from when a not-yet-valid token is valid', () => {
    const nbf = now() + 3600;
    const error = verificationErrorOf(sign({ nbf, exp: nbf + 3600 }));
    expect(error).toBeInstanceOf(jsonwebtoken.NotBeforeError);
    expect(sut(error)).toBe(`the token is not valid before ${new Date(nbf * 1000).toISOString()}`);
  });

  it.each([
    [
      'a token for another audience',
      () => sign({ aud: ['another-client-id'], exp: now() + 600 }),
      "the token's audience (aud) does not include this resource",
    ],
    [
      'a token from another issuer',
      () => sign({ iss: 'https://evil.example.com', exp: now() + 600 }),
      'the token was issued by another issuer than AUTH_ISSUER',
    ],
    [
      'a token signed with another key',
      () => sign({ exp: now() + 600 }, otherKey.privateKey),
      "the token's signature does not verify",
    ],
    [
      'a token with a tampered signature',
      () => sign({ exp: now() + 600 }).replace(/\.[^.]+$/, '.AAAA'),
      "the token's signature does not verify",
    ],
    [
      'an HS256 token',
      () =>
        jsonwebtoken.sign({ iss: ISSUER, aud: RESOURCE }, 'shared-secret', { algorithm: 'HS256' }),
      "the token's signing algorithm is not accepted",
    ],
    [
      'a token without a signature',
      () => sign({ exp: now() + 600 }).replace(/[^.]+$/, ''),
      'the token is not a well-formed signed JWT',
    ],
    ['text that is not a JWT', () => 'not-a-jwt', 'the token is not a well-formed signed JWT'],
  ])('describes %s', (_case, token: () => string, description) => {
    const raw = token();
    const error = verificationErrorOf(raw);
    expect(error).toBeInstanceOf(jsonwebtoken.JsonWebTokenError);
    const described = sut(error);
    expect(described).toBe(description);
    expect(described).not.toContain(raw);
  });

  it('falls back to a generic description for a reason it does not know', () => {
    const error = verificationErrorOf(sign({ exp: now() + 600, jti: 'admin/1' }), {
      jwtid: 'admin/2',
    });
    expect(error).toBeInstanceOf(jsonwebtoken.JsonWebTokenError);
    expect(sut(error)).toBe('the token is invalid');
  });

  it('never repeats what the error carries beyond the reason', () => {
    const token = sign({ aud: ['https://other.example.com/secret-path'], exp: now() + 600 });
    const error = verificationErrorOf(token);
    const described = sut(error);
    for (const part of token.split('.')) expect(described).not.toContain(part);
    expect(described).not.toContain('secret-path');
  });

  it.each([new Error('socket hang up'), 'a string', undefined, null])(
    'says only "invalid" for %p',
    (error) => {
      expect(sut(error)).toBe('the token is invalid');
    },
  );
});

@Controller()
class Routes {
  @Post()
  guarded(this: void): void {}

  @Public()
  @Post('open')
  open(this: void): void {}
}

@Public()
@Controller()
class PublicRoutes {
  @Post()
  anything(this: void): void {}
}

const principal: Principal = {
  subject: 'b1c2d3e4-0000-4000-8000-000000000001',
  clientId: 'client-1',
  tokenId: undefined,
  name: undefined,
  email: undefined,
  scopes: new Set(['db:query']),
  expiresAt: now() + 600,
};

function httpContext(
  request: { headers: Record<string, string>; query?: Record<string, string> },
  type: Type<unknown> = Routes,
  handler: (this: void) => void = Routes.prototype.guarded,
) {
  return new ExecutionContextHost([request, {}, () => undefined], type, handler);
}

/** The exception handleRequest throws (fails the test if it returns). */
function thrownBy(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('handleRequest returned');
}

describe(JwtAuthGuard.name, () => {
  // canActivate of a public or non-HTTP context never charges the anonymous rate limit.
  const rateLimit = { limitAnonymous: () => Promise.reject(new Error('not expected')) };
  const verified = new VerifiedTokenCache({
    clockToleranceS: 30,
    jwksCacheMaxAgeMs: 600_000,
  } as ConstructorParameters<typeof VerifiedTokenCache>[0]);
  // AUTH_INTROSPECTION off: confirm() is never reached (test/introspection.e2e-spec.ts has it on).
  const introspection = { enabled: false } as Introspection;
  const sut = new JwtAuthGuard(
    new Reflector(),
    rateLimit as unknown as RateLimitGuard,
    verified,
    introspection,
  );

  describe('canActivate', () => {
    it('lets @Public() routes through without a token', async () => {
      await expect(
        Promise.resolve(
          sut.canActivate(httpContext({ headers: {} }, Routes, Routes.prototype.open)),
        ),
      ).resolves.toBe(true);
      await expect(
        Promise.resolve(
          sut.canActivate(
            httpContext({ headers: {} }, PublicRoutes, PublicRoutes.prototype.anything),
          ),
        ),
      ).resolves.toBe(true);
    });

    it('takes a token that verified before from the cache, without verifying it again', async () => {
      // No Passport strategy is registered here: only the cache can let this request through.
      verified.set('cached.token.value', principal);
      const request: { headers: Record<string, string>; user?: Principal } = {
        headers: { authorization: 'Bearer cached.token.value' },
      };
      await expect(Promise.resolve(sut.canActivate(httpContext(request)))).resolves.toBe(true);
      expect(request.user).toBe(principal);
    });

    it('leaves tool pipelines (non-HTTP contexts) to the ScopesGuard', async () => {
      const context = new ExecutionContextHost([{}, {}], Routes, Routes.prototype.guarded);
      context.setType('mcp');
      await expect(Promise.resolve(sut.canActivate(context))).resolves.toBe(true);
    });
  });

  describe('handleRequest', () => {
    it('returns the verified principal', () => {
      const context = httpContext({ headers: { authorization: 'Bearer a.b.c' } });
      expect(sut.handleRequest(null, principal, undefined, context)).toBe(principal);
    });

    it('asks for a token when the request has none, without an error code', () => {
      const error = thrownBy(() =>
        sut.handleRequest(null, false, new Error('No auth token'), httpContext({ headers: {} })),
      );
      expect(error).toBeInstanceOf(AuthenticationRequiredException);
      expect((error as AuthenticationRequiredException).oauthError).toBeUndefined();
      expect((error as AuthenticationRequiredException).getStatus()).toBe(401);
    });

    it.each(['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer    ', 'token abc'])(
      'treats the Authorization header %j as no token',
      (authorization) => {
        const error = thrownBy(() =>
          sut.handleRequest(
            null,
            false,
            new Error('No auth token'),
            httpContext({ headers: { authorization } }),
          ),
        );
        expect(error).toBeInstanceOf(AuthenticationRequiredException);
      },
    );

    it('explains that tokens in the query string are not accepted', () => {
      const token = sign({ exp: now() + 600 });
      const error = thrownBy(() =>
        sut.handleRequest(
          null,
          false,
          new Error('No auth token'),
          httpContext({ headers: {}, query: { access_token: token } }),
        ),
      );
      expect(error).toBeInstanceOf(AuthenticationRequiredException);
      expect((error as Error).message).toMatch(/^Tokens in the query string are not accepted/);
      expect((error as Error).message).not.toContain(token);
    });

    it('turns a verification failure into invalid_token with its description', () => {
      const token = sign({ aud: ['another-client-id'], exp: now() + 600 });
      const info = verificationErrorOf(token);
      const error = thrownBy(() =>
        sut.handleRequest(
          null,
          false,
          info,
          httpContext({ headers: { authorization: `Bearer ${token}` } }),
        ),
      );
      expect(error).toBeInstanceOf(InvalidTokenException);
      expect((error as InvalidTokenException).message).toBe(
        "the token's audience (aud) does not include this resource",
      );
      expect((error as InvalidTokenException).message).not.toContain(token);
    });

    it('passes on a refusal raised by the strategy, as error or as info', () => {
      const context = httpContext({ headers: { authorization: 'Bearer a.b.c' } });
      const refresh = new InvalidTokenException(
        'a refresh token cannot be used as an access token',
      );
      expect(thrownBy(() => sut.handleRequest(refresh, false, undefined, context))).toBe(refresh);
      expect(thrownBy(() => sut.handleRequest(null, false, refresh, context))).toBe(refresh);
      const scope = new InsufficientScopeException(['db:admin'], ['db:query']);
      expect(thrownBy(() => sut.handleRequest(scope, false, undefined, context))).toBe(scope);
    });

    it('refuses a principal that came with an error', () => {
      const context = httpContext({ headers: { authorization: 'Bearer a.b.c' } });
      const error = thrownBy(() =>
        sut.handleRequest(new Error('boom'), principal, undefined, context),
      );
      expect(error).toBeInstanceOf(InvalidTokenException);
      expect((error as Error).message).toBe('the token is invalid');
    });
  });
});
