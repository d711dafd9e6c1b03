export interface RateLimitHit {
  allowed: boolean;
  /** Seconds until this key's window resets (at least 1). */
  retryAfterS: number;
}

/** Where requests are being counted now, as /readyz shows it. */
export interface RateLimitState {
  store: 'redis' | 'memory';
  /** Only when RATE_LIMIT_REDIS_URL is set. */
  redis?: 'connected' | 'unreachable';
}

/**
 * Fixed windows of request counts per key (`sub:<subject>`, `ip:<address>`); the injection token
 * too. RATE_LIMIT_REDIS_URL chooses RedisRateLimiter (shared by replicas), else MemoryRateLimiter.
 */
export abstract class RateLimiter {
  abstract hit(key: string, limit: number, windowMs: number): Promise<RateLimitHit>;
  abstract state(): RateLimitState;
}

/** Whole seconds until `msLeft` has passed, at least 1: the Retry-After of a refusal. */
export function retryAfterS(msLeft: number): number {
  return Math.max(1, Math.ceil(msLeft / 1000));
}
