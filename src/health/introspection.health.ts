import { Injectable } from '@nestjs/common';
import { type HealthCheckAttempt, HealthIndicatorService } from '@nestjs/terminus';
import { Introspection } from '../auth/introspection.service.js';
import { JWKS_PROBE_CACHE_MS } from './jwks.health.js';

/**
 * With AUTH_INTROSPECTION on: `up` while Casdoor's introspection answers; during an outage
 * `degraded` (still ready) while AUTH_INTROSPECTION_ON_FAILURE=accept's grace lasts, else `down`.
 * A failing endpoint is probed again at most once per retry period, and the answer is kept as
 * long as the JWKS probe's (/readyz is public).
 */
@Injectable()
export class IntrospectionHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly introspection: Introspection,
  ) {}

  isHealthy<const Key extends string>(key: Key, timeoutMs: number): HealthCheckAttempt<Key> {
    return this.health
      .check(key)
      .attempt(async () => {
        const state = await this.introspection.state();
        if (state?.state === 'down')
          throw new Error(
            `Casdoor's introspection cannot be reached (AUTH_INTROSPECTION_ON_FAILURE=${state.onFailure}${state.onFailure === 'accept' ? ', grace period over' : ''})`,
          );
        return { ...state };
      })
      .withTimeout(timeoutMs)
      .cacheFor(JWKS_PROBE_CACHE_MS);
  }
}
