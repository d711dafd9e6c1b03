import { Injectable, Logger } from '@nestjs/common';
import { type HealthCheckAttempt, HealthIndicatorService } from '@nestjs/terminus';
import { DatabaseEngine } from '../database/engine.js';
import { messageOf } from '../mcp/tool-context.js';

export const DATABASE_UNAVAILABLE = 'the application database did not answer';

/** Up when the application database answers within the probe's timeout; the cause goes to the log. */
@Injectable()
export class DatabaseHealthIndicator {
  private readonly logger = new Logger(DatabaseHealthIndicator.name);

  constructor(
    private readonly health: HealthIndicatorService,
    private readonly engine: DatabaseEngine,
  ) {}

  isHealthy<const Key extends string>(key: Key, timeoutMs: number): HealthCheckAttempt<Key> {
    return this.health
      .check(key)
      .attempt(async () => {
        try {
          await this.engine.ping(timeoutMs);
        } catch (error) {
          this.logger.warn(`database probe failed: ${messageOf(error)}`);
          throw new Error(DATABASE_UNAVAILABLE, { cause: error });
        }
        return { engine: this.engine.dialect };
      })
      .withTimeout(timeoutMs);
  }
}
