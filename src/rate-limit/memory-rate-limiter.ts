import {
  type RateLimitHit,
  RateLimiter,
  type RateLimitState,
  retryAfterS,
} from './rate-limiter.js';

/**
 * Fixed one-window counters in memory: per process, so N replicas allow N times the limit.
 * Expired windows are swept once per window length, so memory follows the active callers only.
 */
export class MemoryRateLimiter extends RateLimiter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private nextSweep = 0;

  hit(key: string, limit: number, windowMs: number, now = Date.now()): Promise<RateLimitHit> {
    if (now >= this.nextSweep) {
      for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
      this.nextSweep = now + windowMs;
    }
    let window = this.windows.get(key);
    if (!window || window.resetAt <= now) {
      window = { count: 0, resetAt: now + windowMs };
      this.windows.set(key, window);
    }
    window.count++;
    return Promise.resolve({
      allowed: window.count <= limit,
      retryAfterS: retryAfterS(window.resetAt - now),
    });
  }

  state(): RateLimitState {
    return { store: 'memory' };
  }
}
