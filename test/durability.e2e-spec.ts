// What a crash costs the audit trail: `node dist/main.js` is SIGKILLed in the middle of a burst of
// tool calls; every call that had been answered must have its record, wherever the log lives.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { TestIssuer } from './support/issuer.js';
import { callTool, postMcp } from './support/mcp-http.js';
import { type MainServer, startMain } from './support/node-process.js';
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

interface Call {
  requestId: string;
  sentBeforeKill: boolean;
  /** A 200 with a tool result that is not an error: the caller was told it happened. */
  acknowledged: boolean;
  /** Why no answer came: the connection was refused or cut. */
  failure?: string;
}

/** Keeps CLIENTS calls in flight, SIGKILLs the server after ANSWERED_BEFORE_KILL answers. */
async function burstAndKill(server: MainServer, token: string, prefix: string): Promise<Call[]> {
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
        const response = await postMcp(
          `${server.url}/mcp`,
          callTool('query', { sql: SLOW_READ, params: [n] }),
          { token, headers: { 'X-Request-Id': call.requestId } },
        );
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
  expect(await server.exited).toBe('SIGKILL');
  return calls;
}

/** What a burst must leave behind, given the request ids that have a record after the crash. */
function expectEveryAnsweredCallAudited(calls: Call[], recorded: string[]): void {
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

  const counts = new Map<string, number>();
  for (const requestId of recorded) counts.set(requestId, (counts.get(requestId) ?? 0) + 1);
  expect(acknowledged.filter((requestId) => counts.get(requestId) !== 1)).toEqual([]);
  expect(recorded.length).toBeGreaterThanOrEqual(acknowledged.length);
  // Records beyond the answered calls are of calls in flight at the kill, never of anything else.
  const sent = new Set(calls.filter((call) => call.sentBeforeKill).map((call) => call.requestId));
  expect(recorded.filter((requestId) => !sent.has(requestId))).toEqual([]);
}

function sqliteRequestIds(path: string, prefix: string): string[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare<[string], string>('SELECT requestId FROM audit_log WHERE requestId LIKE ?')
      .pluck()
      .all(`${prefix}-%`);
  } finally {
    db.close();
  }
}

describe('SIGKILL during a burst of tool calls', () => {
  let issuer: TestIssuer;
  let dir: string;
  let postgres: TestPostgresDatabase | undefined;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(() => issuer.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-crash-'));
  });
  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await postgres?.drop();
    postgres = undefined;
  });

  /** Runs a burst, kills the server, then restarts it on the same files. */
  async function crashAndRestart(env: Record<string, string>, prefix: string): Promise<Call[]> {
    const server = await startMain(dir, issuer, env);
    const token = issuer.token({ audience: `${server.url}/mcp`, scope: 'db:query' });
    const calls = await burstAndKill(server, token, prefix);

    // The files a crash left behind open again: the restarted server is ready and audits.
    const restarted = await startMain(dir, issuer, env);
    try {
      const ready = await fetch(`${restarted.url}/readyz`);
      expect(ready.status).toBe(200);
      const after = await postMcp(`${restarted.url}/mcp`, callTool('list_tables'), {
        token: issuer.token({ audience: `${restarted.url}/mcp`, scope: 'db:query' }),
        headers: { 'X-Request-Id': `${prefix}-restarted` },
      });
      expect(after.status).toBe(200);
    } finally {
      restarted.child.kill('SIGTERM');
      await restarted.exited;
    }
    return calls;
  }

  it('keeps the record of every answered call, audit log in the internal database', async () => {
    const calls = await crashAndRestart({}, 'crash-app');

    const recorded = sqliteRequestIds(join(dir, 'data', 'scopedb-internal.sqlite'), 'crash-app');
    expect(recorded).toContain('crash-app-restarted');
    expectEveryAnsweredCallAudited(
      calls,
      recorded.filter((id) => id !== 'crash-app-restarted'),
    );
  });

  it('keeps the record of every answered call, audit log in a SQLite file of its own', async () => {
    const calls = await crashAndRestart(
      { AUDIT_DATABASE_URL: 'sqlite:audit.sqlite' },
      'crash-file',
    );

    const recorded = sqliteRequestIds(join(dir, 'audit.sqlite'), 'crash-file');
    expect(recorded).toContain('crash-file-restarted');
    expectEveryAnsweredCallAudited(
      calls,
      recorded.filter((id) => id !== 'crash-file-restarted'),
    );
  });

  it('keeps the record of every answered call, audit log in PostgreSQL', async () => {
    postgres = await createTestDatabase('scopedb_crash');
    const calls = await crashAndRestart({ AUDIT_DATABASE_URL: postgres.url }, 'crash-pg');

    const { rows } = await postgres.client.query<{ requestId: string }>(
      'SELECT "requestId" FROM audit_log WHERE "requestId" LIKE $1',
      ['crash-pg-%'],
    );
    const recorded = rows.map((row) => row.requestId);
    expect(recorded).toContain('crash-pg-restarted');
    expectEveryAnsweredCallAudited(
      calls,
      recorded.filter((id) => id !== 'crash-pg-restarted'),
    );
  });
});
