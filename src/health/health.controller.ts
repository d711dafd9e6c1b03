import { Controller, Get, Inject } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import {
  HealthCheck,
  type HealthCheckResult,
  HealthCheckService,
  TypeOrmHealthIndicator,
} from '@nestjs/terminus';
import type { DataSource } from 'typeorm';
import { AuditDatabase } from '../audit/audit-database.js';
import { Public } from '../auth/public.decorator.js';
import { SkipRateLimit } from '../rate-limit/skip-rate-limit.decorator.js';
import { authConfig } from '../config/configuration.js';
import { AuditHealthIndicator } from './audit.health.js';
import { DatabaseHealthIndicator } from './database.health.js';
import { IntrospectionHealthIndicator } from './introspection.health.js';
import { JwksHealthIndicator } from './jwks.health.js';
import { RateLimitHealthIndicator } from './rate-limit.health.js';

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
    private readonly introspection: IntrospectionHealthIndicator,
    private readonly auditLog: AuditHealthIndicator,
    private readonly applicationDatabase: DatabaseHealthIndicator,
    private readonly rateLimit: RateLimitHealthIndicator,
    private readonly audit: AuditDatabase,
    @Inject(authConfig.KEY) private readonly auth: ConfigType<typeof authConfig>,
  ) {}

  /** Liveness: the process serves HTTP. Nothing outside it is checked: a restart cannot fix that. */
  @Get('healthz')
  @HealthCheck()
  liveness(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }

  /**
   * Readiness: the database and the audit database answer, the audit log can be written
   * (`audit`: after a failed record, until a probe write succeeds) and tokens can be verified;
   * else 503 naming the failed check. The checks share the JWKS timeout, so the probe answers
   * within AUTH_JWKS_TIMEOUT_MS. With AUTH_INTROSPECTION on, `introspection` says whether Casdoor
   * can confirm tokens (down during an outage, unless its failure setting still accepts them).
   * `rate_limit` says where requests are counted; it is never down
   * (an unreachable Redis makes it `degraded`: still 200).
   */
  @Get('readyz')
  @HealthCheck()
  readiness(): Promise<HealthCheckResult> {
    const timeout = this.auth.jwksTimeoutMs;
    const ping = (key: string, connection: DataSource) => () =>
      this.database.pingCheck(key, { connection, timeout });
    return this.health.check([
      () => this.applicationDatabase.isHealthy('database', timeout),
      ping('audit_database', this.audit.dataSource),
      () => this.auditLog.isHealthy('audit', timeout),
      () => this.jwks.isHealthy('jwks', timeout),
      ...(this.auth.introspection
        ? [() => this.introspection.isHealthy('introspection', timeout)]
        : []),
      () => this.rateLimit.isHealthy('rate_limit'),
    ]);
  }
}
