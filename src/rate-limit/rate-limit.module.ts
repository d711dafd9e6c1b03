import { Module } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { AuditModule } from '../audit/audit.module.js';
import { rateLimitConfig } from '../config/configuration.js';
import { Metrics } from '../metrics/metrics.service.js';
import { MemoryRateLimiter } from './memory-rate-limiter.js';
import { RateLimitFilter } from './rate-limit.filter.js';
import { RateLimitGuard } from './rate-limit.guard.js';
import { RateLimiter } from './rate-limiter.js';
import { RedisRateLimiter } from './redis-rate-limiter.js';

/** Counts in Redis when RATE_LIMIT_REDIS_URL is set (shared by replicas), else in memory. */
export function rateLimiterFor(
  cfg: ConfigType<typeof rateLimitConfig>,
  metrics: Metrics,
): RateLimiter {
  return cfg.redis ? new RedisRateLimiter(cfg.redis, metrics) : new MemoryRateLimiter();
}

@Module({
  imports: [AuditModule],
  providers: [
    { provide: RateLimiter, useFactory: rateLimiterFor, inject: [rateLimitConfig.KEY, Metrics] },
    RateLimitGuard,
    RateLimitFilter,
  ],
  exports: [RateLimiter, RateLimitGuard, RateLimitFilter],
})
export class RateLimitModule {}
