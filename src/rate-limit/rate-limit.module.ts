import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { RateLimitFilter } from './rate-limit.filter.js';
import { RateLimitGuard } from './rate-limit.guard.js';
import { RateLimiter } from './rate-limiter.js';

@Module({
  imports: [AuditModule],
  providers: [RateLimiter, RateLimitGuard, RateLimitFilter],
  exports: [RateLimitGuard, RateLimitFilter],
})
export class RateLimitModule {}
