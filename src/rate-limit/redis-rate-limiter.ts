import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  RLWrapperTimeouts,
} from 'rate-limiter-flexible';
import type { RateLimitRedisSettings } from '../config/settings.js';
import type { Metrics } from '../metrics/metrics.service.js';
import {
  type RateLimitHit,
  RateLimiter,
  type RateLimitState,
  retryAfterS,
} from './rate-limiter.js';

/** Longest a request waits on Redis before it is counted in this process's memory instead, ms. */
export const REDIS_COMMAND_TIMEOUT_MS = 250;
/** Longest one connection attempt takes, and start-up waits for the first, ms. */
export const REDIS_CONNECT_TIMEOUT_MS = 2000;
/** Longest pause between reconnection attempts, ms. */
const REDIS_RECONNECT_MAX_MS = 2000;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * The same fixed windows as MemoryRateLimiter, counted in Redis (`<prefix>:rl:<key>`) with
 * rate-limiter-flexible, so every replica spends one budget. While Redis is unreachable, or slower
 * than REDIS_COMMAND_TIMEOUT_MS, each process counts in memory (the library's insurance limiter);
 * the change is logged once each way, and the client reconnects in the background.
 */
export class RedisRateLimiter extends RateLimiter implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('RateLimit');
  private readonly client: Redis;
  private readonly limiters = new Map<string, RLWrapperTimeouts>();
  /** Undefined until the first connection attempt has an outcome. */
  private connected: boolean | undefined;
  private closing = false;

  constructor(
    private readonly settings: RateLimitRedisSettings,
    private readonly metrics: Metrics,
  ) {
    super();
    this.client = new Redis(settings.url, {
      connectionName: `${settings.prefix}:rate-limit`,
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      // After QUIT, or on a connection already cut: do not hold the process for the default 2 s.
      disconnectTimeout: REDIS_COMMAND_TIMEOUT_MS,
      // Fail at once while disconnected, rather than queue: the insurance limiter answers.
      enableOfflineQueue: false,
      // A command cut off by a lost connection fails, never re-sent later: its request was answered.
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt: number) => Math.min(attempt * 100, REDIS_RECONNECT_MAX_MS),
    });
    this.client.on('ready', () => this.changed(true));
    this.client.on('error', (error: Error) => this.changed(false, error));
    this.client.on('close', () => this.changed(false));
  }

  /** Waits (bounded) for the first connection, so that start-up says where limits are counted. */
  async onModuleInit(): Promise<void> {
    if (this.connected !== undefined) return;
    await once(this.client, 'ready', {
      signal: AbortSignal.timeout(REDIS_CONNECT_TIMEOUT_MS),
    }).then(
      () => undefined,
      (error: unknown) =>
        this.changed(
          false,
          error instanceof Error && error.name === 'AbortError'
            ? `no answer within ${REDIS_CONNECT_TIMEOUT_MS} ms`
            : error,
        ),
    );
  }

  /** QUIT lets Redis close first; a Redis that does not answer it is cut off. */
  async onApplicationShutdown(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.client.status === 'ready')
      await Promise.race([
        this.client
          .quit()
          .catch((error: unknown) => this.logger.warn(`QUIT failed: ${messageOf(error)}`)),
        delay(REDIS_CONNECT_TIMEOUT_MS, undefined, { ref: false }),
      ]);
    this.client.disconnect();
  }

  async hit(key: string, limit: number, windowMs: number): Promise<RateLimitHit> {
    const { allowed, res } = await this.limiterFor(limit, windowMs)
      .consume(key)
      .then(
        (res) => ({ allowed: true, res }),
        (rejection: unknown) => {
          // The library rejects with a RateLimiterRes when the points are spent.
          if (rejection instanceof RateLimiterRes) return { allowed: false, res: rejection };
          throw rejection;
        },
      );
    return { allowed, retryAfterS: retryAfterS(res.msBeforeNext) };
  }

  state(): RateLimitState {
    return this.connected
      ? { store: 'redis', redis: 'connected' }
      : { store: 'memory', redis: 'unreachable' };
  }

  /** One limiter per (limit, window): rate-limiter-flexible fixes both per instance. */
  private limiterFor(points: number, windowMs: number): RLWrapperTimeouts {
    const id = `${points}/${windowMs}`;
    let limiter = this.limiters.get(id);
    if (!limiter) {
      const options = {
        keyPrefix: `${this.settings.prefix}:rl`,
        points,
        duration: Math.ceil(windowMs / 1000),
      };
      // The insurance sits on the timeout wrapper only, so a late Redis failure is not counted twice.
      limiter = new RLWrapperTimeouts({
        limiter: new RateLimiterRedis({
          ...options,
          storeClient: this.client,
          rejectIfRedisNotReady: true,
        }),
        timeoutMs: REDIS_COMMAND_TIMEOUT_MS,
        insuranceLimiter: new RateLimiterMemory(options),
      });
      this.limiters.set(id, limiter);
    }
    return limiter;
  }

  private changed(connected: boolean, cause?: unknown): void {
    if (this.closing || connected === this.connected) return;
    const first = this.connected === undefined;
    this.connected = connected;
    this.metrics.rateLimitStoreChanged(connected ? 'redis' : 'memory');
    const where = `Redis at ${this.settings.redactedUrl}`;
    if (connected)
      this.logger.log(
        first
          ? `Rate limits are counted in ${where}, shared by every replica`
          : `${where} is reachable again: rate limits are shared by every replica again`,
      );
    else
      this.logger.warn(
        `${where} is unreachable${cause === undefined ? '' : ` (${messageOf(cause)})`}: rate limits are counted in this process's memory until it is back`,
      );
  }
}
