import { parseExposition } from '../../test/support/metrics.js';
import { recordNestLogs, type LogLine } from '../../test/support/nest-logs.js';
import {
  openTestRedis,
  REDIS_TEST_URL,
  type TestRedis,
  UNREACHABLE_REDIS_URL,
} from '../../test/support/redis.js';
import { TcpProxy } from '../../test/support/tcp-proxy.js';
import { redactUrl } from '../config/settings.js';
import { Metrics } from '../metrics/metrics.service.js';
import { RedisRateLimiter } from './redis-rate-limiter.js';

const MINUTE = 60_000;

/** Polls `condition` (every 20 ms, up to 10 s); fails naming `what` if it never holds. */
async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let tries = 0; tries < 500; tries++) {
    if (await condition()) return;
    await new Promise((wait) => setTimeout(wait, 20));
  }
  throw new Error(`never happened: ${what}`);
}

describe(RedisRateLimiter.name, () => {
  let redis: TestRedis;
  let logs: { lines: LogLine[]; restore(): void };
  const started: RedisRateLimiter[] = [];
  const metricsOf = new Map<RedisRateLimiter, Metrics>();
  /** The limiter's fallback gauge and counter, as a scrape reads them now. */
  const fallback = async (limiter: RedisRateLimiter) => {
    const scraped = parseExposition(await metricsOf.get(limiter)!.exposition());
    return [
      scraped.value('scopedb_rate_limit_redis_fallback'),
      scraped.value('scopedb_rate_limit_redis_fallbacks_total'),
    ];
  };

  /** A limiter as one replica has it, connected (or not) as the module's start-up leaves it. */
  async function replica(url = REDIS_TEST_URL, prefix = redis.prefix): Promise<RedisRateLimiter> {
    const metrics = new Metrics();
    const limiter = new RedisRateLimiter({ url, redactedUrl: redactUrl(url), prefix }, metrics);
    metricsOf.set(limiter, metrics);
    started.push(limiter);
    await limiter.onModuleInit();
    return limiter;
  }

  const warnings = () => logs.lines.filter((line) => line.level === 'warn');

  beforeAll(async () => {
    redis = await openTestRedis();
  });
  beforeEach(() => {
    logs = recordNestLogs();
  });
  afterEach(async () => {
    for (const limiter of started.splice(0)) await limiter.onApplicationShutdown();
    logs.restore();
  });
  afterAll(async () => {
    await redis.close();
  });

  it('shares one budget between two replicas, under the prefix', async () => {
    const [a, b] = [await replica(), await replica()];

    const hits = [];
    for (const sut of [a, b, a, b]) hits.push(await sut.hit('sub:alice', 3, MINUTE));

    expect(hits.map((hit) => hit.allowed)).toEqual([true, true, true, false]);
    expect(hits[3].retryAfterS).toBeGreaterThanOrEqual(1);
    expect(hits[3].retryAfterS).toBeLessThanOrEqual(60);
    expect((await b.hit('sub:bob', 3, MINUTE)).allowed).toBe(true);
    expect((await redis.keys()).sort()).toEqual([
      `${redis.prefix}:rl:sub:alice`,
      `${redis.prefix}:rl:sub:bob`,
    ]);
    expect(a.state()).toEqual({ store: 'redis', redis: 'connected' });
    expect(await fallback(a)).toEqual([0, 0]);
    expect(logs.lines).toContainEqual({
      level: 'log',
      message: `Rate limits are counted in Redis at ${REDIS_TEST_URL}, shared by every replica`,
      context: 'RateLimit',
    });
  });

  it('keeps deployments with different prefixes apart', async () => {
    const [ours, theirs] = [await replica(), await replica(REDIS_TEST_URL, `${redis.prefix}-b`)];
    await ours.hit('ip:10.0.0.1', 1, MINUTE);

    const hit = await theirs.hit('ip:10.0.0.1', 1, MINUTE);
    await redis.client.del(`${redis.prefix}-b:rl:ip:10.0.0.1`);

    expect(hit.allowed).toBe(true);
  });

  it('starts a fresh window once the last one has ended', async () => {
    const [a, b] = [await replica(), await replica()];
    await a.hit('ip:10.0.0.2', 1, 1000);
    const refused = await b.hit('ip:10.0.0.2', 1, 1000);

    await new Promise((wait) => setTimeout(wait, refused.retryAfterS * 1000 + 100));

    expect(refused).toEqual({ allowed: false, retryAfterS: 1 });
    expect(await a.hit('ip:10.0.0.2', 1, 1000)).toEqual({ allowed: true, retryAfterS: 1 });
  });

  it('starts with Redis down, counts in memory, and says so once', async () => {
    const sut = await replica(UNREACHABLE_REDIS_URL);

    const hits = [];
    for (let i = 0; i < 5; i++) hits.push(await sut.hit('sub:carol', 2, MINUTE));

    expect(hits.map((hit) => hit.allowed)).toEqual([true, true, false, false, false]);
    expect(hits[2].retryAfterS).toBeGreaterThanOrEqual(1);
    expect(sut.state()).toEqual({ store: 'memory', redis: 'unreachable' });
    expect(await fallback(sut)).toEqual([1, 1]);
    expect(warnings()).toEqual([
      {
        level: 'warn',
        message: expect.stringMatching(
          /^Redis at redis:\/\/127\.0\.0\.1:1 is unreachable \(.*ECONNREFUSED.*\): rate limits are counted in this process's memory until it is back$/,
        ) as string,
        context: 'RateLimit',
      },
    ]);
  });

  it('never writes the password in its log lines', async () => {
    const url = 'redis://user:hunter2@127.0.0.1:1/0';
    await replica(url);

    expect(logs.lines.length).toBeGreaterThan(0);
    expect(logs.lines.map((line) => line.message).join('\n')).not.toContain('hunter2');
    expect(warnings()[0].message).toContain('redis://user:***@127.0.0.1:1/0');
  });

  it('falls back to memory when Redis goes away and shares again when it is back, saying so once each way', async () => {
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 6379 });
    try {
      const url = `redis://127.0.0.1:${proxy.port}`;
      const [a, b] = [await replica(url), await replica(url)];
      await a.hit('sub:dave', 2, MINUTE);

      await proxy.down();
      await until('both replicas see Redis gone', () =>
        [a, b].every((sut) => sut.state().redis === 'unreachable'),
      );
      // Each replica counts on its own now: 2 each, whatever Redis holds.
      const apart = [];
      for (const sut of [a, b, a, b, a]) apart.push((await sut.hit('sub:dave', 2, MINUTE)).allowed);
      // Long enough for several failed reconnection attempts, each an error event.
      await new Promise((wait) => setTimeout(wait, 700));
      const duringOutage = warnings().length;
      const metricsDuringOutage = await fallback(a);

      await proxy.up();
      await until('both replicas reconnect', () =>
        [a, b].every((sut) => sut.state().redis === 'connected'),
      );
      const together = (await b.hit('sub:dave', 2, MINUTE)).allowed;

      expect(apart).toEqual([true, true, true, true, false]);
      expect(duringOutage).toBe(2);
      expect(metricsDuringOutage).toEqual([1, 1]);
      expect(await fallback(a)).toEqual([0, 1]);
      expect(b.state()).toEqual({ store: 'redis', redis: 'connected' });
      // Redis still holds the one hit from before the outage: this is the second.
      expect(together).toBe(true);
      expect((await a.hit('sub:dave', 2, MINUTE)).allowed).toBe(false);
      expect(logs.lines.filter((line) => line.message.includes('is reachable again'))).toHaveLength(
        2,
      );
      expect(warnings()).toHaveLength(2);
    } finally {
      await proxy.down();
    }
  });

  it('answers from memory while a connected Redis does not answer', async () => {
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 6379 });
    try {
      const sut = await replica(`redis://127.0.0.1:${proxy.port}`);
      await sut.hit('sub:erin', 2, MINUTE);
      proxy.stall();

      // Redis never answers these: each is counted in memory once the wait is over.
      const hits = [];
      for (let i = 0; i < 3; i++) hits.push((await sut.hit('sub:erin', 2, MINUTE)).allowed);

      expect(hits).toEqual([true, true, false]);
    } finally {
      await proxy.down();
    }
  });

  it('closes its connection on shutdown', async () => {
    const sut = await replica();
    const name = `${redis.prefix}:rate-limit`;
    expect(await redis.connectionNames()).toContain(name);

    await sut.onApplicationShutdown();

    await until('Redis drops the connection', async () =>
      (await redis.connectionNames()).every((open) => open !== name),
    );
  });
});
