// Rate limits shared through Redis by two real replicas (node dist/main.js), and a replica whose
// Redis is unreachable: it serves, limits on its own, and stays ready.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logLines } from './support/audit-outage.js';
import { TestIssuer } from './support/issuer.js';
import { initialize, type McpResponse, postMcp } from './support/mcp-http.js';
import { type MainServer, startMain, stopMain } from './support/node-process.js';
import { expectRateLimited } from './support/rate-limit.js';
import {
  openTestRedis,
  REDIS_TEST_URL,
  type TestRedis,
  UNREACHABLE_REDIS_URL,
} from './support/redis.js';

const PER_PRINCIPAL = 4;
const PER_IP = 3;
// Replicas behind one load balancer share their public URL, hence the audience of their tokens.
const PUBLIC_URL = 'https://db-mcp.example.com';
const AUDIENCE = `${PUBLIC_URL}/mcp`;

describe('rate limits shared by two replicas through RATE_LIMIT_REDIS_URL', () => {
  let issuer: TestIssuer;
  let redis: TestRedis;
  const dirs: string[] = [];
  let replicas: MainServer[] = [];
  const tokenOf = (sub: string) =>
    issuer.token({ audience: AUDIENCE, scope: 'db:query', claims: { sub } });
  /** POST /mcp to the replicas in turn, one request each, starting with the first. */
  async function alternate(count: number, token: string, first = 0): Promise<McpResponse[]> {
    const responses: McpResponse[] = [];
    for (let i = 0; i < count; i++)
      responses.push(
        await postMcp(`${replicas[(first + i) % 2].url}/mcp`, initialize(), { token }),
      );
    return responses;
  }

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    redis = await openTestRedis();
    for (let i = 0; i < 2; i++) {
      const dir = mkdtempSync(join(tmpdir(), 'scopedb-redis-limits-'));
      dirs.push(dir);
      replicas.push(
        await startMain(dir, issuer, {
          PUBLIC_URL,
          LOG_LEVEL: 'info',
          RATE_LIMIT_REDIS_URL: REDIS_TEST_URL,
          RATE_LIMIT_REDIS_PREFIX: redis.prefix,
          RATE_LIMIT_PER_MINUTE: String(PER_PRINCIPAL),
          RATE_LIMIT_ANONYMOUS_PER_MINUTE: String(PER_IP),
        }),
      );
    }
  });
  afterAll(async () => {
    for (const replica of replicas) await stopMain(replica);
    await redis.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    await issuer.close();
  });

  it('spends one budget per principal on both: the request after the limit, on either, gets 429', async () => {
    const alice = tokenOf('alice-redis');

    const within = await alternate(PER_PRINCIPAL, alice);
    const [overOnFirst, overOnSecond] = await alternate(2, alice);
    const bob = await postMcp(`${replicas[1].url}/mcp`, initialize(), { token: tokenOf('bob') });

    expect(within.map((response) => response.status)).toEqual(
      Array<number>(PER_PRINCIPAL).fill(200),
    );
    expectRateLimited(overOnFirst);
    expectRateLimited(overOnSecond);
    expect(bob.status).toBe(200);
    expect(await redis.keys()).toContain(`${redis.prefix}:rl:sub:alice-redis`);
  });

  it('spends one budget per address on both for requests that fail authentication', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < PER_IP; i++)
      statuses.push(
        (await postMcp(`${replicas[i % 2].url}/mcp`, initialize(), { token: 'not.a.token' }))
          .status,
      );

    const overOnSecond = await postMcp(`${replicas[1].url}/mcp`, initialize(), {
      token: 'not.a.token',
    });
    const overOnFirst = await postMcp(`${replicas[0].url}/mcp`, initialize());

    expect(statuses).toEqual(Array<number>(PER_IP).fill(401));
    expectRateLimited(overOnSecond);
    expectRateLimited(overOnFirst);
  });

  it('shows the Redis store in /readyz and says where it counts in the log', async () => {
    const responses = await Promise.all(replicas.map((replica) => fetch(`${replica.url}/readyz`)));

    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({
        status: 'ok',
        info: { rate_limit: { status: 'up', store: 'redis', redis: 'connected' } },
      });
    }
    expect(
      (await logLines(replicas[0], /^Rate limits are counted in Redis/)).map((line) => line.msg),
    ).toEqual([`Rate limits are counted in Redis at ${REDIS_TEST_URL}, shared by every replica`]);
  });

  // Last: it stops the replicas.
  it('stops cleanly, leaving no connection open in Redis', async () => {
    const name = `${redis.prefix}:rate-limit`;
    const before = (await redis.connectionNames()).filter((open) => open === name);

    for (const replica of replicas) await stopMain(replica);
    replicas = [];

    expect(before).toHaveLength(2);
    expect((await redis.connectionNames()).filter((open) => open === name)).toEqual([]);
  });
});

describe('a replica whose Redis is unreachable', () => {
  let issuer: TestIssuer;
  let dir: string;
  let server: MainServer;
  const mcpUrl = () => `${server.url}/mcp`;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    dir = mkdtempSync(join(tmpdir(), 'scopedb-redis-down-'));
    server = await startMain(dir, issuer, {
      PUBLIC_URL,
      LOG_LEVEL: 'info',
      RATE_LIMIT_REDIS_URL: UNREACHABLE_REDIS_URL.replace('//', '//scopedb:hunter2@'),
      RATE_LIMIT_PER_MINUTE: String(PER_PRINCIPAL),
      RATE_LIMIT_ANONYMOUS_PER_MINUTE: String(PER_IP),
    });
  });
  afterAll(async () => {
    await stopMain(server);
    rmSync(dir, { recursive: true, force: true });
    await issuer.close();
  });

  it('starts, serves and limits in its own memory', async () => {
    const token = issuer.token({ audience: AUDIENCE, scope: 'db:query', claims: { sub: 'carol' } });
    const statuses: number[] = [];
    for (let i = 0; i < PER_PRINCIPAL; i++)
      statuses.push((await postMcp(mcpUrl(), initialize(), { token })).status);

    const over = await postMcp(mcpUrl(), initialize(), { token });

    expect(statuses).toEqual(Array<number>(PER_PRINCIPAL).fill(200));
    expectRateLimited(over);
  });

  it('stays ready, showing the memory store and the unreachable Redis in /readyz', async () => {
    const response = await fetch(`${server.url}/readyz`);

    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: 'degraded',
      info: {
        database: { status: 'up' },
        rate_limit: { status: 'degraded', store: 'memory', redis: 'unreachable' },
      },
      error: {},
    });
  });

  it('says so once in its log, without the password', async () => {
    // Long enough for several failed reconnection attempts.
    await new Promise((wait) => setTimeout(wait, 1500));

    const lines = await logLines(server, /unreachable/);

    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        msg: expect.stringMatching(
          /^Redis at redis:\/\/scopedb:\*\*\*@127\.0\.0\.1:1 is unreachable \(.*\): rate limits are counted in this process's memory until it is back$/,
        ) as string,
      }),
    ]);
    const { stdout, stderr } = server.output();
    expect(`${stdout}${stderr}`).not.toContain('hunter2');
  });
});
