import { Injectable } from '@nestjs/common';
import { type HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { RateLimiter } from '../rate-limit/rate-limiter.js';

/**
 * Where requests are counted: `store` `memory` or `redis`, and with RATE_LIMIT_REDIS_URL set,
 * `redis` `connected` or `unreachable`. Never down: without Redis each replica still limits on its
 * own, so the check is `degraded` (readiness stays 200) until Redis is back.
 */
@Injectable()
export class RateLimitHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly limiter: RateLimiter,
  ) {}

  isHealthy<const Key extends string>(key: Key): HealthIndicatorResult<Key> {
    const state = this.limiter.state();
    const check = this.health.check(key);
    return state.redis === 'unreachable' ? check.degraded({ ...state }) : check.up({ ...state });
  }
}
