// What a crash costs the audit trail: `node dist/main.js` is SIGKILLed in the middle of a burst of
// tool calls; every call that had been answered must have its record, wherever the log lives, and
// every change a write made must have its record too (success, or interrupted: its intent was
// committed before the change, and the restarted server marks it once its deadline has passed).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { INTERRUPTED_REASON } from '../src/audit/audit.service.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, postMcp } from './support/mcp-http.js';
import { type ServerProcess, startServer } from './support/node-process.js';
import { createTestDatabase, type TestPostgresDatabase } from './support/postgres.js';

const CLIENTS = 8;
/** Answered calls before the kill. */
const ANSWERED_BEFORE_KILL = 100;
// Keeps a SQL worker busy for some milliseconds: with more clients than workers, calls are always
// waiting in the server, so some are in flight (received, unanswered) at the kill.
const SLOW_READ =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT count(*) + ? AS n FROM c';
/** A bound on each client, should the server never die. */
const MAX_CALLS_PER_CLIENT = 2000;
/** Short deadlines, so that the restarted server marks the crash's intents soon. */
const WRITE_DEADLINES = { WRITE_TIMEOUT_MS: '2000', AUDIT_INTENT_GRACE_MS: '500' };
const TABLE = 'crash_rows';
// A write that keeps the single writer busy for some milliseconds: with more clients than
// writers, writes are always queued behind it, their intents committed, at the kill.
const SLOW_WRITE = `INSERT INTO ${TABLE} (tag) SELECT ? FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT count(*) FROM c)`;

interface Call {
  requestId: string;
  sentBeforeKill: boolean;
  /** A 200 with a tool result that is not an error: the caller was told it happened. */
  acknowledged: boolean;
  /** Why no answer came: the connection was refused or cut. */
  failure?: string;
}

interface Recorded {
  requestId: string;
  outcome: string;
  reason: string | null;
}

/** Where the audit log is kept, and how the test reads it, straight from the store. */
interface Store {
  env: Record<string, string>;
  records(prefix: string): Promise<Recorded[]>;
}

/** Keeps CLIENTS calls in flight, SIGKILLs the server after ANSWERED_BEFORE_KILL answers. */
async function burstAndKill(
  server: ServerProcess,
  token: string,
  prefix: string,
  body: (requestId: string, n: number) => unknown,
): Promise<Call[]> {
  const calls: Call[] = [];
  let answered = 0;
  let killed = false;

  async function client(index: number): Promise<void> {
    for (let n = 0; n < MAX_CALLS_PER_CLIENT; n++) {
      const call: Call = {
        requestId: `${prefix}-${index}-${n}`,
        sentBeforeKill: !killed,
        acknowledged: false,
      };
      calls.push(call);
      try {
        const response = await postMcp(server.mcpUrl, body(call.requestId, n), {
          token,
          headers: { 'X-Request-Id': call.requestId },
        });
        const result = response.message?.result as { isError?: boolean } | undefined;
        call.acknowledged = response.status === 200 && result !== undefined && !result.isError;
      } catch (error) {
        // The server is gone: this call was in flight, or refused.
        call.failure = (error as Error).message;
        return;
      }
      if (call.acknowledged && ++answered === ANSWERED_BEFORE_KILL) {
        killed = true;
        server.child.kill('SIGKILL');
      }
    }
  }

  await Promise.all(Array.from({ length: CLIENTS }, (_, index) => client(index)));
  expect((await server.exited).signal).toBe('SIGKILL');
  return calls;
}

/** What a burst must leave behind, given the records found after the crash. */
function expectEveryAnsweredCallAudited(calls: Call[], recorded: Recorded[]): void {
  const acknowledged = calls.filter((call) => call.acknowledged).map((call) => call.requestId);
  // Killed mid-burst: calls were in flight, unanswered, when the process died.
  expect(calls.filter((call) => call.sentBeforeKill && !call.acknowledged).length).toBeGreaterThan(
    0,
  );
  expect(acknowledged.length).toBeGreaterThanOrEqual(ANSWERED_BEFORE_KILL);
  // Every call failed on the connection (fetch's own error), not in the test.
  expect(
    calls.filter((call) => call.failure !== undefined && call.failure !== 'fetch failed'),
  ).toEqual([]);

  const byRequest = new Map<string, Recorded[]>();
  for (const record of recorded)
    byRequest.set(record.requestId, [...(byRequest.get(record.requestId) ?? []), record]);
  // An answered call has exactly one record, and it says what the caller was told.
  expect(
    acknowledged.filter(
      (requestId) =>
        byRequest.get(requestId)?.length !== 1 ||
        byRequest.get(requestId)?.[0].outcome !== 'success',
    ),
  ).toEqual([]);
  // Records beyond the answered calls are of calls in flight at the kill, never of anything else.
  const sent = new Set(calls.filter((call) => call.sentBeforeKill).map((call) => call.requestId));
  expect(recorded.filter((record) => !sent.has(record.requestId))).toEqual([]);
  expect([...byRequest.values()].filter((records) => records.length !== 1)).toEqual([]);
}

function sqliteStore(path: () => string): Store {
  return {
    env: {},
    records: (prefix) => {
      const db = new Database(path(), { readonly: true, fileMustExist: true });
      try {
        return Promise.resolve(
          db
            .prepare<[string], Recorded>(
              'SELECT requestId, outcome, reason FROM audit_log WHERE requestId LIKE ?',
            )
            .all(`${prefix}-%`),
        );
      } finally {
        db.close();
      }
    },
  };
}

function postgresStore(postgres: () => TestPostgresDatabase): Store {
  return {
    get env() {
      return { AUDIT_DATABASE_URL: postgres().url };
    },
    records: async (prefix) =>
      (
        await postgres().client.query<Recorded>(
          'SELECT "requestId", outcome, reason FROM audit_log WHERE "requestId" LIKE $1',
          [`${prefix}-%`],
        )
      ).rows,
  };
}

describe('SIGKILL during a burst of tool calls', () => {
  let issuer: TestIssuer;
  let dir: string;
  let postgres: TestPostgresDatabase | undefined;
  const stores: [where: string, store: Store][] = [
    ['in the internal database', sqliteStore(() => join(dir, 'data', 'scopedb-internal.sqlite'))],
    [
      'in a SQLite file of its own',
      {
        ...sqliteStore(() => join(dir, 'audit.sqlite')),
        env: { AUDIT_DATABASE_URL: 'sqlite:audit.sqlite' },
      },
    ],
    [
      'in PostgreSQL',
      postgresStore(() => {
        if (!postgres) throw new Error('no PostgreSQL database');
        return postgres;
      }),
    ],
  ];

  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(() => issuer.close());
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-crash-'));
    postgres = await createTestDatabase('scopedb_crash');
  });
  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await postgres?.drop();
    postgres = undefined;
  });

  const tokenFor = (server: ServerProcess, scope: string) =>
    issuer.token({ audience: server.mcpUrl, scope });

  /** Runs a burst, kills the server, then restarts it on the same files; `after` runs on it. */
  async function crashAndRestart(
    env: Record<string, string>,
    prefix: string,
    scope: string,
    body: (requestId: string, n: number) => unknown,
    before?: (server: ServerProcess) => Promise<void>,
    after?: (server: ServerProcess) => Promise<void>,
  ): Promise<Call[]> {
    const server = await startServer(dir, issuer.url, { QUERY_WORKERS: '2', ...env });
    await before?.(server);
    const calls = await burstAndKill(server, tokenFor(server, scope), prefix, body);

    // The files a crash left behind open again: the restarted server is ready and audits.
    const restarted = await startServer(dir, issuer.url, { QUERY_WORKERS: '2', ...env });
    try {
      const ready = await fetch(`${restarted.url}/readyz`);
      expect(ready.status).toBe(200);
      const answer = await postMcp(restarted.mcpUrl, callTool('list_tables'), {
        token: tokenFor(restarted, 'db:query'),
        headers: { 'X-Request-Id': `${prefix}-restarted` },
      });
      expect(answer.status).toBe(200);
      await after?.(restarted);
    } finally {
      restarted.child.kill('SIGTERM');
      await restarted.exited;
    }
    return calls;
  }

  describe.each(stores)('audit log %s', (_where, store) => {
    it('keeps the record of every answered call', async () => {
      const calls = await crashAndRestart(store.env, 'crash-read', 'db:query', (_id, n) =>
        callTool('query', { sql: SLOW_READ, params: [n] }),
      );

      const recorded = await store.records('crash-read');
      expect(recorded.map((record) => record.requestId)).toContain('crash-read-restarted');
      expectEveryAnsweredCallAudited(
        calls,
        recorded.filter((record) => record.requestId !== 'crash-read-restarted'),
      );
    });

    it('leaves no change without its record: every row a write made has a success or interrupted record', async () => {
      const createTable = async (server: ServerProcess) => {
        const answer = await postMcp(
          server.mcpUrl,
          callTool('apply_migration', {
            name: 'crash_rows',
            sql: `CREATE TABLE ${TABLE} (id INTEGER PRIMARY KEY, tag TEXT NOT NULL)`,
          }),
          { token: tokenFor(server, 'db:admin') },
        );
        expect(answer.message?.result).toMatchObject({ structuredContent: { applied: true } });
      };
      // The restarted server marks the intents the crash left once they are past their
      // deadline (WRITE_TIMEOUT_MS + AUDIT_INTENT_GRACE_MS): none stays pending.
      const untilNoPending = async () => {
        for (let tries = 0; tries < 200; tries++) {
          const pending = (await store.records('crash-write')).filter(
            (record) => record.outcome === 'pending',
          );
          if (pending.length === 0) return;
          await new Promise((wait) => setTimeout(wait, 100));
        }
        throw new Error('intents are still pending 20 s after the restart');
      };

      const calls = await crashAndRestart(
        { ...store.env, ...WRITE_DEADLINES },
        'crash-write',
        'db:modify',
        (requestId) => callTool('execute', { sql: SLOW_WRITE, params: [requestId] }),
        createTable,
        untilNoPending,
      );

      const recorded = await store.records('crash-write');
      expectEveryAnsweredCallAudited(
        calls,
        recorded.filter((record) => record.requestId !== 'crash-write-restarted'),
      );
      const db = new Database(join(dir, 'data', 'scopedb.sqlite'), { readonly: true });
      const tags = db.prepare<[], string>(`SELECT tag FROM ${TABLE}`).pluck().all();
      db.close();
      const outcomes = new Map(recorded.map((record) => [record.requestId, record.outcome]));
      // Every change has its record: the success the caller saw, or an interrupted intent.
      expect(tags.length).toBeGreaterThanOrEqual(ANSWERED_BEFORE_KILL);
      expect(
        tags.filter((tag) => !['success', 'interrupted'].includes(outcomes.get(tag) ?? '')),
      ).toEqual([]);
      // Writes were in flight at the kill: their intents were committed, their outcomes never
      // came, and they say so.
      const interrupted = recorded.filter((record) => record.outcome === 'interrupted');
      expect(interrupted.length).toBeGreaterThan(0);
      expect(new Set(interrupted.map((record) => record.reason))).toEqual(
        new Set([INTERRUPTED_REASON]),
      );
      expect(recorded.filter((record) => record.outcome === 'pending')).toEqual([]);
    });
  });
});
