import type { Request } from 'express';
import type { JwksKeyCache } from '../auth/jwks-key.cache.js';
import { tokenRefusal } from '../auth/jwt-auth.guard.js';
import { JwtStrategy } from '../auth/jwt.strategy.js';
import { VerifiedTokenCache } from '../auth/verified-token.cache.js';
import type { AuthSettings } from '../config/settings.js';

/** What the server answers a request that bears the token. */
export type Verdict = { accepted: true } | { accepted: false; description: string };

/** The three outcomes passport gives a strategy (its `authenticate` calls one of them). */
interface StrategyRun {
  success(user: unknown): void;
  fail(info: unknown): void;
  error(error: unknown): void;
  authenticate(request: Request): void;
}

/**
 * The server's verdict on a token, reached by the server's own code: JwtStrategy with the server's
 * key cache, its refusal worded as JwtAuthGuard words the 401's error_description.
 */
export function serverVerdict(
  auth: AuthSettings,
  keys: JwksKeyCache,
  token: string,
): Promise<Verdict> {
  const strategy = new JwtStrategy(auth, keys, new VerifiedTokenCache(auth));
  return new Promise((resolve) => {
    const refused = (error: unknown, info: unknown) =>
      resolve({ accepted: false, description: tokenRefusal(error, info).message });
    const run: StrategyRun = Object.assign(Object.create(strategy) as StrategyRun, {
      success: () => resolve({ accepted: true }),
      fail: (info: unknown) => refused(undefined, info),
      error: (error: unknown) => refused(error, undefined),
    });
    run.authenticate({ headers: { authorization: `Bearer ${token}` } } as Request);
  });
}
