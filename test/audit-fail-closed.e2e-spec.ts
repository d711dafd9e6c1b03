// Fail closed, as an attacker would test it: the audit store is made unwritable for real (a SQLite
// file whose write lock another connection holds; a PostgreSQL database that stops taking
// writes), then every kind of call and refusal is sent. None may be answered or change anything
// without its record: each gets 503 with a JSON-RPC error, the application database is read
// directly to show nothing changed, /readyz turns 503 and comes back by itself, the outage is
// logged once, and the audit store is read directly to show no record is missing or forged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AuditDatabase } from '../src/audit/audit-database.js';
import { INTERRUPTED_REASON } from '../src/audit/audit.service.js';
import { startTestApp, type TestApp } from './support/app.js';
import {
  lockSqlite,
  logLines,
  setPostgresReadOnly,
  untilReadiness,
} from './support/audit-outage.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, type McpResponse, postMcp, rpc } from './support/mcp-http.js';
import { type ServerProcess, startServer } from './support/node-process.js';
import { createTestDatabase, type TestPostgresDatabase } from './support/postgres.js';

interface Recorded {
  id: number;
  requestId: string | null;
  outcome: string;
  reason: string | null;
}

/** An audit store that can be made unwritable and read back directly. */
interface Store {
  env(dir: string): Record<string, string>;
  down(dir: string): Promise<void>;
  up(): Promise<void>;
  records(dir: string): Promise<Recorded[]>;
  /** What the log must name as the outage's cause. */
  cause: RegExp;
  setUp?(): Promise<void>;
  tearDown?(): Promise<void>;
}

const sqliteStore = (): Store => {
  let lock: { release(): void } | undefined;
  return {
    env: () => ({ AUDIT_DATABASE_URL: 'sqlite:audit.sqlite' }),
    down: (dir) => {
      lock = lockSqlite(join(dir, 'audit.sqlite'));
      return Promise.resolve();
    },
    up: () => {
      lock?.release();
      lock = undefined;
      return Promise.resolve();
    },
    records: (dir) => {
      const db = new Database(join(dir, 'audit.sqlite'), { readonly: true, fileMustExist: true });
      try {
        return Promise.resolve(
          db
            .prepare<[], Recorded>(
              'SELECT id, requestId, outcome, reason FROM audit_log ORDER BY id',
            )
            .all(),
        );
      } finally {
        db.close();
      }
    },
    cause: /database is locked/,
    tearDown: () => {
      lock?.release();
      return Promise.resolve();
    },
  };
};

const postgresStore = (): Store => {
  let postgres: TestPostgresDatabase | undefined;
  const database = () => {
    if (!postgres) throw new Error('no PostgreSQL database');
    return postgres;
  };
  return {
    env: () => ({ AUDIT_DATABASE_URL: database().url }),
    down: () => setPostgresReadOnly(database(), true),
    up: () => setPostgresReadOnly(database(), false),
    records: async () =>
      (
        await database().client.query<Recorded>(
          'SELECT id, "requestId", outcome, reason FROM audit_log ORDER BY id',
        )
      ).rows,
    cause: /read-only transaction|terminating connection/,
    setUp: async () => {
      postgres = await createTestDatabase('scopedb_fail_closed');
    },
    tearDown: async () => {
      await postgres?.drop();
    },
  };
};

// Slow enough (a second or so) to lock the store while it runs, well within WRITE_TIMEOUT_MS.
const SLOW_WRITE =
  "INSERT INTO notes (body) SELECT 'slow ' || count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT x FROM c)";

describe.each([
  ['SQLite file of its own, write-locked by another connection', sqliteStore],
  ['PostgreSQL database that stops taking writes', postgresStore],
])('fail closed: audit log in a %s', (_where, makeStore) => {
  describe.each([
    ['direct tools/call path', 'true'],
    ['SDK path', 'false'],
  ])('%s', (_path, direct) => {
    const store = makeStore();
    let issuer: TestIssuer;
    let dir: string;
    let server: ServerProcess;
    let requests = 0;

    const token = (scope = 'db:query db:modify db:admin') =>
      issuer.token({ audience: server.mcpUrl, scope });
    const send = (body: unknown, options: { token?: string; headers?: Record<string, string> }) =>
      postMcp(server.mcpUrl, body, {
        ...options,
        headers: { 'X-Request-Id': `fc-${direct}-${++requests}`, ...options.headers },
      });
    const notes = () => {
      const db = new Database(join(dir, 'data', 'scopedb.sqlite'), { readonly: true });
      try {
        return db.prepare<[], string>('SELECT body FROM notes ORDER BY id').pluck().all();
      } finally {
        db.close();
      }
    };
    const expectRefused = (response: McpResponse, id: number | null) => {
      expect({ status: response.status, body: JSON.parse(response.body) as unknown }).toEqual({
        status: 503,
        body: {
          jsonrpc: '2.0',
          id,
          error: {
            code: -32000,
            message: expect.stringMatching(/audit log cannot be written/) as string,
          },
        },
      });
      expect(response.headers.get('retry-after')).toBe('5');
    };

    beforeAll(async () => {
      issuer = await TestIssuer.start();
      await store.setUp?.();
      dir = mkdtempSync(join(tmpdir(), 'scopedb-fail-closed-'));
      server = await startServer(dir, issuer.url, {
        ...store.env(dir),
        LOG_LEVEL: 'info',
        MCP_DIRECT_TOOL_CALLS: direct,
        DATABASE_BUSY_TIMEOUT_MS: '200',
        WRITE_TIMEOUT_MS: '4000',
        AUDIT_INTENT_GRACE_MS: '100',
        RATE_LIMIT_ANONYMOUS_PER_MINUTE: '2',
      });
      const created = await send(
        callTool('apply_migration', {
          name: 'notes',
          sql: 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)',
        }),
        { token: token() },
      );
      expect(created.message?.result).toMatchObject({ structuredContent: { applied: true } });
    });
    afterAll(async () => {
      await store.up();
      server.child.kill('SIGTERM');
      await server.exited;
      await store.tearDown?.();
      rmSync(dir, { recursive: true, force: true });
      await issuer.close();
    });

    // Each is the first request after the store stops taking writes, so the server learns of
    // it there: by the failed record of a read that ran, of a write's intent, of a refusal.
    it.each([
      [
        'a read that ran (its rows are not sent)',
        () => callTool('query', { sql: 'SELECT 1' }),
        'all',
      ],
      [
        'a write (its intent fails: it does not run)',
        () => callTool('execute', { sql: "INSERT INTO notes (body) VALUES ('first')" }),
        'all',
      ],
      [
        'a refused scope (403)',
        () => callTool('execute', { sql: "INSERT INTO notes (body) VALUES ('first')" }),
        'db:query',
      ],
      ['a request without a token (401)', () => callTool('list_tables'), 'none'],
    ])('answers %s 503 when its record cannot be written', async (_case, body, scope) => {
      const before = await store.records(dir);
      await store.down(dir);
      try {
        const call = body();
        const response = await send(call, {
          token: scope === 'none' ? undefined : token(scope === 'all' ? undefined : scope),
        });

        expectRefused(response, call.id);
        expect(notes()).toEqual([]);
      } finally {
        await store.up();
      }
      await untilReadiness(server.url, 200);
      expect(await store.records(dir)).toEqual(before);
    });

    it('answers every call and refusal 503 with a JSON-RPC error while no record can be written, changes nothing, and recovers by itself', async () => {
      const before = await store.records(dir);
      const outagesBefore = (await logLines(server, /^The audit log cannot be written/)).length;
      await store.down(dir);

      // The server learns of it at the first record it cannot write; from then on nothing runs.
      const read = callTool('query', { sql: 'SELECT count(*) AS n FROM notes' });
      expectRefused(await send(read, { token: token() }), read.id);
      const write = callTool('execute', {
        sql: 'INSERT INTO notes (body) VALUES (?)',
        params: ['while down'],
      });
      expectRefused(await send(write, { token: token() }), write.id);
      const insert = callTool('insert_rows', { table: 'notes', rows: [{ body: 'while down' }] });
      expectRefused(await send(insert, { token: token() }), insert.id);
      const migration = callTool('apply_migration', {
        name: 'while_down',
        sql: 'CREATE TABLE while_down (id INTEGER PRIMARY KEY)',
      });
      expectRefused(await send(migration, { token: token() }), migration.id);
      // Refusals need their records too: no token (then past the IP's limit: 429), a missing
      // scope, a foreign Origin, a body that does not parse.
      const anonymous = callTool('list_tables');
      for (let n = 0; n < 3; n++) expectRefused(await send(anonymous, {}), anonymous.id);
      const scoped = callTool('execute', { sql: "DELETE FROM notes WHERE body = 'x'" });
      expectRefused(await send(scoped, { token: token('db:query') }), scoped.id);
      expectRefused(
        await send(callTool('list_tables'), {
          token: token(),
          headers: { Origin: 'https://evil.example' },
        }),
        null,
      );
      expectRefused(await send('{"jsonrpc": "2.0", "id": 1, "method":', { token: token() }), null);
      // Not a tool call, not audited: answered.
      expect((await send(rpc('tools/list'), { token: token() })).status).toBe(200);

      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({
        error: { audit: { status: 'down', message: 'the audit log cannot be written' } },
      });
      expect(notes()).toEqual([]);
      // The IP's limit was decided as usual (the log says so), only its answer replaced.
      expect((await logLines(server, /^429 POST \/mcp/)).length).toBeGreaterThan(0);

      await store.up();
      // No call needed: /readyz (and the server every second) tries a write that is rolled back.
      await untilReadiness(server.url, 200);
      const after = callTool('execute', {
        sql: 'INSERT INTO notes (body) VALUES (?)',
        params: ['after'],
      });
      const answered = await send(after, { token: token() });
      expect(answered.status).toBe(200);
      expect(answered.message?.result).toMatchObject({ structuredContent: { affected_rows: 1 } });
      expect(notes()).toEqual(['after']);

      // Logged once, with its cause; its end once.
      const down = (await logLines(server, /^The audit log cannot be written/)).slice(
        outagesBefore,
      );
      expect(down).toHaveLength(1);
      expect(down[0].msg).toMatch(store.cause);
      const up = await logLines(server, /^The audit log can be written again/, outagesBefore + 1);
      expect(up).toHaveLength(outagesBefore + 1);
      // Nothing missing, nothing forged: the store holds what it held, then the one answered call.
      const records = await store.records(dir);
      expect(records.slice(0, before.length)).toEqual(before);
      expect(records.slice(before.length)).toEqual([
        {
          id: expect.any(Number) as number,
          requestId: `fc-${direct}-${requests}`,
          outcome: 'success',
          reason: null,
        },
      ]);
      // Ids run on without a gap: no record was written and then lost, no probe kept.
      expect(records.map((record) => record.id)).toEqual(
        records.map((_, index) => records[0].id + index),
      );
    });

    it('marks interrupted a write that was running when its outcome could not be recorded, and answers it 503', async () => {
      const requestId = `fc-${direct}-slow`;
      const running = send(callTool('execute', { sql: SLOW_WRITE }), {
        token: token(),
        headers: { 'X-Request-Id': requestId },
      });
      // Its intent is committed before it runs: take the store down once it is there.
      for (let tries = 0; ; tries++) {
        const intent = (await store.records(dir)).find((record) => record.requestId === requestId);
        if (intent) {
          expect(intent.outcome).toBe('pending');
          break;
        }
        if (tries > 200) throw new Error('no intent was committed');
        await new Promise((wait) => setTimeout(wait, 10));
      }
      await store.down(dir);

      const answer = await running;
      expect(answer.status).toBe(503);
      // The change was made before its outcome could be recorded: the intent stands for it.
      expect(notes()).toContain('slow 3000000');
      await store.up();
      await untilReadiness(server.url, 200);
      for (let tries = 0; ; tries++) {
        const record = (await store.records(dir)).find((r) => r.requestId === requestId);
        if (record?.outcome === 'interrupted') {
          expect(record.reason).toBe(INTERRUPTED_REASON);
          break;
        }
        if (tries > 300) throw new Error(`still ${record?.outcome} after 15 s`);
        await new Promise((wait) => setTimeout(wait, 50));
      }
    });
  });
});

describe('AUDIT_FAIL_OPEN=true (weaker: answers without records)', () => {
  let issuer: TestIssuer;
  let dir: string;
  let server: ServerProcess;
  const store = sqliteStore();

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    dir = mkdtempSync(join(tmpdir(), 'scopedb-fail-open-'));
    server = await startServer(dir, issuer.url, {
      ...store.env(dir),
      AUDIT_FAIL_OPEN: 'true',
      LOG_LEVEL: 'info',
      DATABASE_BUSY_TIMEOUT_MS: '200',
    });
  });
  afterAll(async () => {
    await store.up();
    server.child.kill('SIGTERM');
    await server.exited;
    rmSync(dir, { recursive: true, force: true });
    await issuer.close();
  });

  it('answers calls while the log cannot be written, logging their records instead; /readyz still turns 503', async () => {
    const token = issuer.token({ audience: server.mcpUrl, scope: 'db:query db:admin' });
    await store.down(dir);

    const response = await postMcp(
      server.mcpUrl,
      callTool('apply_migration', { name: 'open', sql: 'CREATE TABLE open (id INTEGER)' }),
      { token, headers: { 'X-Request-Id': 'fail-open-1' } },
    );

    expect(response.status).toBe(200);
    expect(response.message?.result).toMatchObject({ structuredContent: { applied: true } });
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
    const logged = await logLines(server, /AUDIT_FAIL_OPEN=true\): .*fail-open-1/, 2);
    // The intent and the outcome, each in the log since neither reached the store.
    expect(logged).toHaveLength(2);
    await store.up();
    await untilReadiness(server.url, 200);
    expect(
      (await store.records(dir)).filter((record) => record.requestId === 'fail-open-1'),
    ).toEqual([]);
  });
});

describe.each([
  ['SQLite', () => Promise.resolve(undefined)],
  ['PostgreSQL', () => createTestDatabase('scopedb_nul')],
])('records an attacker shapes cannot make the %s audit store unwritable', (_kind, database) => {
  let issuer: TestIssuer;
  let postgres: TestPostgresDatabase | undefined;
  let sut: TestApp;
  let dir: string;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    postgres = await database();
    dir = mkdtempSync(join(tmpdir(), 'scopedb-nul-'));
    sut = await startTestApp({
      AUTH_ISSUER: issuer.url,
      AUDIT_DATABASE_URL: postgres?.url ?? `sqlite:${join(dir, 'audit.sqlite')}`,
    });
  });
  afterAll(async () => {
    await sut.close();
    await postgres?.drop();
    rmSync(dir, { recursive: true, force: true });
    await issuer.close();
  });

  it('keeps NUL characters (which PostgreSQL text refuses) from failing records: they are replaced', async () => {
    const forged = ['{"alg":"none"}', '{"sub":"mallory\\u0000","azp":"evil\\u0000"}']
      .map((part) => Buffer.from(part).toString('base64url'))
      .join('.');
    const signed = issuer.token({
      audience: sut.mcpUrl,
      scope: 'db:query',
      claims: { sub: 'nul\u0000sub', name: 'n\u0000' },
    });

    const refused = await postMcp(sut.mcpUrl, callTool('list_tables'), {
      token: `${forged}.`,
      headers: { 'X-Request-Id': 'nul-forged' },
    });
    const answered = await postMcp(
      sut.mcpUrl,
      callTool('query', { sql: 'SELECT ? AS v -- \u0000', params: ['\u0000'] }),
      { token: signed, headers: { 'X-Request-Id': 'nul-signed' } },
    );

    expect(refused.status).toBe(401);
    expect(answered.status).toBe(200);
    expect((await fetch(`${sut.baseUrl}/readyz`)).status).toBe(200);
    const records = await sut.app
      .get(AuditDatabase)
      .dataSource.query<{ requestId: string; subject: string; sqlText: string | null }[]>(
        `SELECT "requestId", subject, "sqlText" FROM audit_log WHERE "requestId" LIKE 'nul-%' ORDER BY id`,
      );
    expect(records).toEqual([
      { requestId: 'nul-forged', subject: 'mallory\uFFFD', sqlText: null },
      { requestId: 'nul-signed', subject: 'nul\uFFFDsub', sqlText: 'SELECT ? AS v -- \uFFFD' },
    ]);
  });
});
