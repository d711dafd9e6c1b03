import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** The machine's Redis; each test run keeps its keys under a prefix of its own in it. */
export const REDIS_URL = process.env.SCOPEDB_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestRedisPrefix {
  url: string;
  /** RATE_LIMIT_REDIS_PREFIX: generated here, unique to the run. */
  prefix: string;
  /** Deletes every key under the prefix. */
  drop(): Promise<void>;
}

/** A Redis key prefix of a test's own, so that parallel runs never share a budget. */
export function createRedisPrefix(name: string): TestRedisPrefix {
  const prefix = `${name}-${process.pid}-${randomBytes(4).toString('hex')}`;
  return {
    url: REDIS_URL,
    prefix,
    drop: async () => {
      const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          if (keys.length > 0) await redis.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  };
}
