import { Injectable, Logger } from '@nestjs/common';
import { type HealthCheckAttempt, HealthIndicatorService } from '@nestjs/terminus';
import { JwksKeyCache } from '../auth/jwks-key.cache.js';

/** How long one JWKS probe answers for: /readyz is public and must not relay a flood to the issuer. */
export const JWKS_PROBE_CACHE_MS = 5_000;

export const JWKS_UNAVAILABLE = "the issuer's signing keys could not be fetched";

/**
 * Up when a signing key is loaded (known keys keep verifying tokens while the JWKS is down) or the
 * issuer's JWKS answers now; down past timeoutMs. The cause goes to the log, not to the
 * unauthenticated caller.
 */
@Injectable()
export class JwksHealthIndicator {
  private readonly logger = new Logger(JwksHealthIndicator.name);

  constructor(
    private readonly health: HealthIndicatorService,
    private readonly keys: JwksKeyCache,
  ) {}

  isHealthy<const Key extends string>(key: Key, timeoutMs: number): HealthCheckAttempt<Key> {
    return this.health
      .check(key)
      .attempt(async () => {
        if (this.keys.loadedKeys > 0) return { keys: this.keys.loadedKeys, source: 'cache' };
        try {
          return { keys: await this.keys.probe(), source: 'jwks' };
        } catch (error) {
          this.logger.warn(
            `JWKS probe failed: ${error instanceof Error ? error.message : String(error)}`,
          );
          throw new Error(JWKS_UNAVAILABLE, { cause: error });
        }
      })
      .withTimeout(timeoutMs)
      .cacheFor(JWKS_PROBE_CACHE_MS);
  }
}
