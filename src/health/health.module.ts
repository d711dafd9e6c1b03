import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuditModule } from '../audit/audit.module.js';
import { AuthModule } from '../auth/auth.module.js';
import { HealthController } from './health.controller.js';
import { AuditHealthIndicator } from './audit.health.js';
import { DatabaseHealthIndicator } from './database.health.js';
import { IntrospectionHealthIndicator } from './introspection.health.js';
import { JwksHealthIndicator } from './jwks.health.js';
import { RateLimitModule } from '../rate-limit/rate-limit.module.js';
import { RateLimitHealthIndicator } from './rate-limit.health.js';

@Module({
  imports: [TerminusModule.forRoot(), AuditModule, AuthModule, RateLimitModule],
  controllers: [HealthController],
  providers: [
    JwksHealthIndicator,
    IntrospectionHealthIndicator,
    AuditHealthIndicator,
    DatabaseHealthIndicator,
    RateLimitHealthIndicator,
  ],
})
export class HealthModule {}
