import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuditModule } from '../audit/audit.module.js';
import { AuthModule } from '../auth/auth.module.js';
import { HealthController } from './health.controller.js';
import { AuditHealthIndicator } from './audit.health.js';
import { DatabaseHealthIndicator } from './database.health.js';
import { JwksHealthIndicator } from './jwks.health.js';

@Module({
  imports: [TerminusModule.forRoot(), AuditModule, AuthModule],
  controllers: [HealthController],
  providers: [JwksHealthIndicator, AuditHealthIndicator, DatabaseHealthIndicator],
})
export class HealthModule {}
