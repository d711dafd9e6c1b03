import { Injectable } from '@nestjs/common';
import { type HealthCheckAttempt, HealthIndicatorService } from '@nestjs/terminus';
import { AuditService } from '../audit/audit.service.js';

export const AUDIT_UNWRITABLE = 'the audit log cannot be written';

/**
 * Up while the audit log can be written. While it cannot (a record failed), each probe tries a
 * write that is rolled back, so readiness comes back without any call having to succeed first;
 * the cause is in the server's log, not in this public answer. Fails past timeoutMs.
 */
@Injectable()
export class AuditHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly audit: AuditService,
  ) {}

  isHealthy<const Key extends string>(key: Key, timeoutMs: number): HealthCheckAttempt<Key> {
    return this.health
      .check(key)
      .attempt(async () => {
        if (!(await this.audit.probe())) throw new Error(AUDIT_UNWRITABLE);
        return {};
      })
      .withTimeout(timeoutMs);
  }
}
