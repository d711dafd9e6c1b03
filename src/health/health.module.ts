import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuthModule } from '../auth/auth.module.js';
import { HealthController } from './health.controller.js';
import { JwksHealthIndicator } from './jwks.health.js';

@Module({
  imports: [TerminusModule.forRoot(), AuthModule],
  controllers: [HealthController],
  providers: [JwksHealthIndicator],
})
export class HealthModule {}
