import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Reflector } from '@nestjs/core';
import type { AuthenticatedRequest } from '../auth/principal.js';
import { rateLimitConfig } from '../config/configuration.js';
import { Metrics } from '../metrics/metrics.service.js';
import { RateLimitExceededException } from './rate-limit.exception.js';
import { HttpOnlyGuard } from '../common/http-only-guard.js';
import { RateLimiter } from './rate-limiter.js';
import { SKIP_RATE_LIMIT_KEY } from './skip-rate-limit.decorator.js';

const WINDOW_MS = 60_000;

/** The budget a request is counted against: its principal's, else its IP address's. */
export function trackerOf(request: AuthenticatedRequest): string {
  return request.user ? `sub:${request.user.subject}` : `ip:${request.ip ?? '-'}`;
}

/**
 * Global guard after JwtAuthGuard, so the principal is known: authenticated requests are counted
 * per `sub` (RATE_LIMIT_PER_MINUTE), the rest per IP (RATE_LIMIT_ANONYMOUS_PER_MINUTE). Requests
 * that fail authentication never get here: JwtAuthGuard charges them through `limitAnonymous`.
 */
@Injectable()
@HttpOnlyGuard()
export class RateLimitGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly limiter: RateLimiter,
    @Inject(rateLimitConfig.KEY) private readonly cfg: ConfigType<typeof rateLimitConfig>,
    private readonly metrics: Metrics,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const skip = this.reflector.getAllAndOverride<boolean | undefined>(SKIP_RATE_LIMIT_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!skip) await this.charge(context.switchToHttp().getRequest<AuthenticatedRequest>());
    return true;
  }

  /** Charges a request that failed authentication to its IP; throws 429 once that is spent. */
  async limitAnonymous(context: ExecutionContext): Promise<void> {
    await this.charge(context.switchToHttp().getRequest<AuthenticatedRequest>());
  }

  private async charge(request: AuthenticatedRequest): Promise<void> {
    const tracker = trackerOf(request);
    const limit = request.user ? this.cfg.perMinute : this.cfg.anonymousPerMinute;
    const hit = await this.limiter.hit(tracker, limit, WINDOW_MS);
    if (hit.allowed) return;
    this.metrics.rateLimited(request.user ? 'principal' : 'ip');
    throw new RateLimitExceededException(hit.retryAfterS, tracker);
  }
}
