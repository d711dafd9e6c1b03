import { Controller, Get, Inject } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import {
  HealthCheck,
  type HealthCheckResult,
  HealthCheckService,
  TypeOrmHealthIndicator,
} from '@nestjs/terminus';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { Public } from '../auth/public.decorator.js';
import { SkipRateLimit } from '../rate-limit/skip-rate-limit.decorator.js';
import { authConfig } from '../config/configuration.js';
import { JwksHealthIndicator } from './jwks.health.js';

/** Probes for orchestrators and load balancers: no token, no Origin check, no audit record. */
// Not rate limited: orchestrators probe often, and a 429 would read as an outage.
@SkipRateLimit()
@Public()
@Controller()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly database: TypeOrmHealthIndicator,
    private readonly jwks: JwksHealthIndicator,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(authConfig.KEY) private readonly auth: ConfigType<typeof authConfig>,
  ) {}

  /** Liveness: the process serves HTTP. Nothing outside it is checked: a restart cannot fix that. */
  @Get('healthz')
  @HealthCheck()
  liveness(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }

  /**
   * Readiness: the database answers and tokens can be verified; else 503 naming the failed check.
   * Both checks share the JWKS timeout, so the probe answers within AUTH_JWKS_TIMEOUT_MS.
   */
  @Get('readyz')
  @HealthCheck()
  readiness(): Promise<HealthCheckResult> {
    return this.health.check([
      () =>
        this.database.pingCheck('database', {
          connection: this.dataSource,
          timeout: this.auth.jwksTimeoutMs,
        }),
      () => this.jwks.isHealthy('jwks'),
    ]);
  }
}
