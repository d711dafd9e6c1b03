// Replicas are interchangeable: three `node dist/main.js` on one PostgreSQL database (the tools'
// roles, and ScopeDB's own `scopedb` schema for the ledger and the audit log) and one Redis (the
// rate limits), with requests spread round-robin over them as a load balancer would.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CASDOOR_CLAIMS, TestIssuer } from './support/issuer.js';
import { callTool, postMcp, type ToolResult } from './support/mcp-http.js';
import { type MainServer, startMain, stopMain } from './support/node-process.js';
import { createScopedbPostgres, type ScopedbPostgres } from './support/postgres.js';
import { expectRateLimited } from './support/rate-limit.js';
import { openTestRedis, REDIS_TEST_URL, type TestRedis } from './support/redis.js';
import { textOf, toolClient, type ToolClient } from './support/tool-client.js';

const REPLICAS = 3;
const ALL_SCOPES = 'db:query db:modify db:admin';
const SUBJECT = CASDOOR_CLAIMS.sub as string;
/** The one resource the replicas serve behind their load balancer: one audience for every token. */
const RESOURCE_URL = 'https://scopedb.replicas.test/mcp';
const STARTUP_MS = 120_000;

interface Recorded {
  requestId: string;
  tool: string | null;
  outcome: string;
  subject: string | null;
}

/** Starts the replicas together (they settle the shared stores at the same time); all or none. */
async function startReplicas(
  dir: string,
  issuer: TestIssuer,
  env: Record<string, string>,
): Promise<MainServer[]> {
  const started = await Promise.allSettled(
    Array.from({ length: REPLICAS }, () => startMain(dir, issuer, env)),
  );
  const servers = started.flatMap((outcome) =>
    outcome.status === 'fulfilled' ? [outcome.value] : [],
  );
  const failure = started.find((outcome) => outcome.status === 'rejected');
  if (failure) {
    await stopReplicas(servers);
    throw failure.reason;
  }
  return servers;
}

/** SIGTERM to those still running; each must exit 0. */
async function stopReplicas(servers: MainServer[]): Promise<void> {
  const results = await Promise.allSettled(
    servers
      .filter((server) => server.child.exitCode === null && server.child.signalCode === null)
      .map((server) => stopMain(server)),
  );
  const failure = results.find((result) => result.status === 'rejected');
  if (failure) throw failure.reason;
}

const mcpUrlOf = (server: MainServer) => `${server.url}/mcp`;

describe('three replicas on one PostgreSQL database and one Redis', () => {
  let issuer: TestIssuer;
  let postgres: ScopedbPostgres;
  let redis: TestRedis;
  let dir: string;
  /** Unique to the run: request ids and names carry it. */
  const run = randomBytes(4).toString('hex');

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    postgres = await createScopedbPostgres('scopedb_replicas');
    redis = await openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'scopedb-replicas-'));
  });
  afterAll(async () => {
    await postgres?.drop();
    await redis?.close();
    await issuer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const replicaEnv = (perMinute: number) => ({
    DATABASE_URL: postgres.urls.tools,
    DATABASE_READER_URL: postgres.urls.reader,
    INTERNAL_DATABASE_URL: postgres.urls.internal,
    RESOURCE_URL,
    RATE_LIMIT_REDIS_URL: REDIS_TEST_URL,
    RATE_LIMIT_REDIS_PREFIX: redis.prefix,
    RATE_LIMIT_PER_MINUTE: String(perMinute),
  });

  const tokenFor = (scope: string, sub = SUBJECT) =>
    issuer.token({ audience: RESOURCE_URL, scope, claims: { sub } });

  /** The audit log's records of these request ids, read as the superuser from the shared schema. */
  async function recordsLike(pattern: string): Promise<Recorded[]> {
    const { rows } = await postgres.admin.query<Recorded>(
      'SELECT "requestId", tool, outcome, subject FROM scopedb.audit_log WHERE "requestId" LIKE $1 ORDER BY "requestId"',
      [pattern],
    );
    return rows;
  }

  describe('serving together', () => {
    let replicas: MainServer[] = [];
    let clients: ToolClient[];
    let turn = 0;
    /** The index of the next replica, round-robin. */
    const next = () => turn++ % replicas.length;

    beforeAll(async () => {
      replicas = await startReplicas(dir, issuer, replicaEnv(1_000_000));
      const token = tokenFor(ALL_SCOPES);
      clients = replicas.map((replica) => toolClient(mcpUrlOf(replica), token));
    }, STARTUP_MS);
    afterAll(() => stopReplicas(replicas), STARTUP_MS);

    it('keeps one audit trail: every call, whichever replica took it, recorded exactly once', async () => {
      const token = tokenFor(ALL_SCOPES);
      const readOnly = tokenFor('db:query');
      const kinds = [
        { tool: 'query', args: { sql: 'SELECT 1 AS one' }, token, status: 200, outcome: 'success' },
        { tool: 'list_tables', args: {}, token, status: 200, outcome: 'success' },
        {
          tool: 'execute',
          args: { sql: 'DELETE FROM nowhere' },
          token: readOnly,
          status: 403,
          outcome: 'refused_scope',
        },
      ];
      const calls = Array.from({ length: 60 }, (_, n) => ({
        requestId: `trail-${run}-${String(n).padStart(3, '0')}`,
        ...kinds[n % kinds.length],
      }));
      const answers: { status: number; isError: boolean }[] = [];
      // Six in flight at a time, round-robin over the replicas.
      for (let at = 0; at < calls.length; at += 6)
        answers.push(
          ...(await Promise.all(
            calls.slice(at, at + 6).map(async (call) => {
              const response = await postMcp(
                mcpUrlOf(replicas[next()]),
                callTool(call.tool, call.args),
                {
                  token: call.token,
                  headers: { 'X-Request-Id': call.requestId },
                },
              );
              const result = response.message?.result as ToolResult | undefined;
              return { status: response.status, isError: result?.isError ?? false };
            }),
          )),
        );

      expect(answers).toEqual(calls.map((call) => ({ status: call.status, isError: false })));
      expect(await recordsLike(`trail-${run}-%`)).toEqual(
        calls.map((call) => ({
          requestId: call.requestId,
          tool: call.tool,
          outcome: call.outcome,
          subject: SUBJECT,
        })),
      );
    });

    it('shows a migration applied through one replica on all of them, once in the shared ledger', async () => {
      const name = `replica_items_${run}`;
      const sql = `CREATE TABLE ${name} (id integer PRIMARY KEY, label text NOT NULL)`;
      const [first, ...others] = clients;

      expect(await first.ok('apply_migration', { name, sql })).toMatchObject({
        name,
        applied: true,
      });

      for (const [index, client] of clients.entries()) {
        const { tables } = await client.ok<{ tables: { name: string }[] }>('list_tables');
        expect(tables.map((table) => table.name)).toContain(name);
        expect(await client.ok('describe_table', { table: name })).toMatchObject({
          name,
          type: 'table',
          columns: [
            { name: 'id', nullable: false, primary_key: true },
            { name: 'label', nullable: false, primary_key: false },
          ],
          primary_key: ['id'],
        });
        expect(
          await client.ok('insert_rows', {
            table: name,
            rows: [{ id: index, label: `r${index}` }],
          }),
        ).toMatchObject({ affected_rows: 1 });
      }
      for (const client of [...others, first]) {
        expect(
          await client.ok('query', { sql: `SELECT id, label FROM ${name} ORDER BY id` }),
        ).toMatchObject({
          rows: [
            [0, 'r0'],
            [1, 'r1'],
            [2, 'r2'],
          ],
        });
        const { migrations } = await client.ok<{
          migrations: { name: string; status: string; sql: string }[];
        }>('list_migrations');
        expect(migrations.filter((migration) => migration.name === name)).toEqual([
          expect.objectContaining({ name, status: 'applied', sql }),
        ]);
      }
    });

    it('applies the same migration sent to every replica at once exactly once; the others answer it was already applied', async () => {
      for (const round of [1, 2, 3]) {
        const name = `replica_race_${run}_${round}`;
        const sql = `CREATE TABLE ${name} (id integer PRIMARY KEY, at timestamptz NOT NULL DEFAULT now()); CREATE INDEX ${name}_at ON ${name} (at)`;

        const results = await Promise.all(
          clients.map((client) => client.call('apply_migration', { name, sql })),
        );

        expect(results.map((result) => result.isError ?? false)).toEqual([false, false, false]);
        const applied = results.map((result) => result.structuredContent?.applied);
        expect([...applied].sort()).toEqual([false, false, true]);
        expect(results.filter((_, i) => !applied[i]).map(textOf)).toEqual([
          `Migration ${name} was already applied with the same SQL; nothing changed.`,
          `Migration ${name} was already applied with the same SQL; nothing changed.`,
        ]);
        for (const client of clients) {
          const { migrations } = await client.ok<{
            migrations: { name: string; status: string }[];
          }>('list_migrations');
          expect(migrations.filter((migration) => migration.name === name)).toEqual([
            expect.objectContaining({ name, status: 'applied' }),
          ]);
        }
        const { rows } = await postgres.admin.query<{ attempts: number }>(
          'SELECT count(*)::int AS attempts FROM scopedb.scopedb_migrations WHERE name = $1',
          [name],
        );
        expect(rows).toEqual([{ attempts: 1 }]);
      }
    });

    // Last: it stops a replica.
    it('SIGTERM to one replica in the middle of a burst: every answered call has its record, once', async () => {
      const CLIENTS = 6;
      /** Answers before the SIGTERM. */
      const ANSWERED_BEFORE_TERM = 60;
      /** Calls each client makes once the stopped replica has exited. */
      const CALLS_AFTER_EXIT = 6;
      const MAX_CALLS_PER_CLIENT = 500;
      const stoppingIndex = REPLICAS - 1;
      const stopping = replicas[stoppingIndex];
      const token = tokenFor('db:query');
      // Each read runs a few tens of milliseconds in PostgreSQL, where the test can see it running;
      // the comment names the call.
      const slowRead = (requestId: string) =>
        `/* ${requestId} */ SELECT count(*) + $1 AS n FROM generate_series(1, 400000) AS s`;

      interface Call {
        requestId: string;
        /** Its replica's index. */
        replica: number;
        answered: boolean;
        /** A 200 with a tool result that is not an error. */
        acknowledged: boolean;
        status?: number;
        failure?: string;
      }
      const calls: Call[] = [];
      let acknowledged = 0;
      let termSent = false;
      let exited = false;
      /** Calls to the stopping replica that PostgreSQL was running when SIGTERM was sent. */
      let runningAtTerm: string[] = [];
      void stopping.exited.then(() => (exited = true));

      /** Once enough calls were answered: SIGTERM as soon as one of the stopping replica's runs. */
      async function terminateMidCall(): Promise<void> {
        while (!termSent && calls.length < CLIENTS * MAX_CALLS_PER_CLIENT) {
          if (acknowledged >= ANSWERED_BEFORE_TERM) {
            const { rows } = await postgres.admin.query<{ query: string }>(
              "SELECT query FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()",
              [postgres.database.name],
            );
            const running = rows
              .map(({ query }) => /\/\* (term-\S+) \*\//.exec(query)?.[1])
              .filter(
                (id): id is string =>
                  id !== undefined &&
                  calls.some((c) => c.requestId === id && c.replica === stoppingIndex),
              );
            if (running.length > 0) {
              runningAtTerm = running;
              termSent = true;
              stopping.child.kill('SIGTERM');
              return;
            }
          }
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      }

      async function client(index: number): Promise<void> {
        let afterExit = 0;
        for (let n = 0; n < MAX_CALLS_PER_CLIENT && afterExit < CALLS_AFTER_EXIT; n++) {
          if (exited) afterExit++;
          const call: Call = {
            requestId: `term-${run}-${index}-${n}`,
            replica: next(),
            answered: false,
            acknowledged: false,
          };
          calls.push(call);
          try {
            const response = await postMcp(
              mcpUrlOf(replicas[call.replica]),
              callTool('query', { sql: slowRead(call.requestId), params: [n] }),
              { token, headers: { 'X-Request-Id': call.requestId } },
            );
            const result = response.message?.result as ToolResult | undefined;
            call.answered = true;
            call.status = response.status;
            call.acknowledged = response.status === 200 && result !== undefined && !result.isError;
            if (call.acknowledged) acknowledged++;
          } catch (error) {
            call.failure = (error as Error).message;
          }
        }
      }

      await Promise.all([
        terminateMidCall(),
        ...Array.from({ length: CLIENTS }, (_, index) => client(index)),
      ]);

      expect(termSent).toBe(true);
      expect(await stopping.exited).toBeNull();
      expect(stopping.child.exitCode).toBe(0);
      // A call that got an answer got a good one; a call without one was refused or cut off, and
      // only by the replica that stopped.
      expect(calls.filter((call) => call.answered && !call.acknowledged)).toEqual([]);
      expect(
        calls.filter(
          (call) =>
            !call.answered && (call.replica !== stoppingIndex || call.failure !== 'fetch failed'),
        ),
      ).toEqual([]);
      // The replica finished what it was running when told to stop.
      expect(
        runningAtTerm.filter((id) => !calls.find((call) => call.requestId === id)?.acknowledged),
      ).toEqual([]);
      // The others kept answering.
      expect(
        calls.filter((call) => call.replica !== stoppingIndex && call.answered).length,
      ).toBeGreaterThan(ANSWERED_BEFORE_TERM);

      const recorded = await recordsLike(`term-${run}-%`);
      const byRequest = new Map<string, Recorded[]>();
      for (const record of recorded)
        byRequest.set(record.requestId, [...(byRequest.get(record.requestId) ?? []), record]);
      expect(
        calls
          .filter((call) => call.acknowledged)
          .filter(
            (call) =>
              byRequest.get(call.requestId)?.length !== 1 ||
              byRequest.get(call.requestId)?.[0].outcome !== 'success',
          )
          .map((call) => call.requestId),
      ).toEqual([]);
      const sent = new Set(calls.map((call) => call.requestId));
      expect(recorded.filter((record) => !sent.has(record.requestId))).toEqual([]);
      expect([...byRequest.values()].filter((records) => records.length !== 1)).toEqual([]);
    }, 120_000);
  });

  describe('with a small per-principal rate limit', () => {
    const LIMIT = 12;
    let replicas: MainServer[] = [];

    beforeAll(async () => {
      replicas = await startReplicas(dir, issuer, replicaEnv(LIMIT));
    }, STARTUP_MS);
    afterAll(() => stopReplicas(replicas), STARTUP_MS);

    it('spends one budget per principal across the replicas: past it, every replica answers 429 with Retry-After', async () => {
      const token = tokenFor('db:query', `limited-${run}`);
      const statuses: number[] = [];
      for (let n = 0; n < LIMIT; n++) {
        const replica = replicas[n % REPLICAS];
        statuses.push(
          (await postMcp(mcpUrlOf(replica), callTool('list_tables'), { token })).status,
        );
      }
      const refused = [];
      for (const [index, replica] of replicas.entries())
        refused.push(
          await postMcp(mcpUrlOf(replica), callTool('list_tables'), {
            token,
            headers: { 'X-Request-Id': `limited-${run}-${index}` },
          }),
        );
      const others = [];
      for (const replica of replicas)
        others.push(
          await postMcp(mcpUrlOf(replica), callTool('list_tables'), {
            token: tokenFor('db:query', `unlimited-${run}`),
          }),
        );

      expect(statuses).toEqual(Array<number>(LIMIT).fill(200));
      expect(refused.map((response) => response.status)).toEqual([429, 429, 429]);
      for (const response of refused) expectRateLimited(response);
      // Another principal has a budget of its own.
      expect(others.map((response) => response.status)).toEqual([200, 200, 200]);
      expect(await recordsLike(`limited-${run}-%`)).toEqual(
        replicas.map((_, index) => ({
          requestId: `limited-${run}-${index}`,
          tool: null,
          outcome: 'refused_rate_limit',
          subject: `limited-${run}`,
        })),
      );
    });
  });
});
