import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** The machine's Redis; each run keeps its keys under a prefix of its own. */
export const REDIS_TEST_URL = process.env.SCOPEDB_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Nothing listens on port 1: a Redis that is down. */
export const UNREACHABLE_REDIS_URL = 'redis://127.0.0.1:1';

export interface TestRedis {
  /** A RATE_LIMIT_REDIS_PREFIX of this run's own, so that parallel runs never meet. */
  prefix: string;
  /** A connection of the test's own. */
  client: Redis;
  /** The keys under the prefix. */
  keys(): Promise<string[]>;
  /** The names of the connections Redis has open now (CLIENT SETNAME). */
  connectionNames(): Promise<string[]>;
  /** Deletes the keys under the prefix and closes the connection. */
  close(): Promise<void>;
}

/** Connects to REDIS_TEST_URL; Redis must be up (the tests fail, never skip, when it is not). */
export async function openTestRedis(): Promise<TestRedis> {
  const prefix = `scopedb-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  const client = new Redis(REDIS_TEST_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  const keys = async () => {
    const found: string[] = [];
    for await (const batch of client.scanStream({ match: `${prefix}:*`, count: 1000 }))
      found.push(...(batch as string[]));
    return found;
  };
  return {
    prefix,
    client,
    keys,
    connectionNames: async () => {
      const list: unknown = await client.call('CLIENT', 'LIST');
      return String(list)
        .split('\n')
        .map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '')
        .filter((name) => name !== '');
    },
    close: async () => {
      const found = await keys();
      if (found.length > 0) await client.del(...found);
      await client.quit();
    },
  };
}
