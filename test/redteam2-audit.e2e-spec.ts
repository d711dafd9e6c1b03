// Red team, round 2: the audit trail under contention. The audit store is locked by another
// connection in the middle of a burst of writes (fail closed); migrations of one name race each
// other and writes; odd text (NUL, lone surrogates) in SQL, parameters and table names. Safe
// behaviour: never a 500, no change without its record, no success answered without one, and
// the migrations ledger agrees with the schema.
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { lockSqlite, untilReadiness } from './support/audit-outage.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, postMcp, type ToolResult, toolResultOf } from './support/mcp-http.js';
import { readSqlite } from './support/sqlite-files.js';

type Row = Record<string, unknown>;

describe('red team 2: the audit trail under contention', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let token: string;
  let requests = 0;

  const send = async (body: unknown, requestId = `rt2-audit-${++requests}`) => {
    const response = await postMcp(sut.mcpUrl, body, {
      token,
      headers: { 'X-Request-Id': requestId },
    });
    return { requestId, response };
  };
  const records = (sql: string, ...params: unknown[]) =>
    readSqlite(sut.auditDatabasePath, (db) => db.prepare(sql).all(...params) as Row[]);
  const app = (sql: string, ...params: unknown[]) =>
    readSqlite(sut.databasePath, (db) => db.prepare(sql).all(...params) as Row[]);

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp(
      { AUTH_ISSUER: issuer.url, DATABASE_BUSY_TIMEOUT_MS: '200' },
      {
        prepareDatabase: (path) =>
          new Database(path)
            .exec('CREATE TABLE w (id INTEGER PRIMARY KEY, tag TEXT NOT NULL, n INTEGER DEFAULT 0)')
            .close(),
      },
    );
    token = issuer.token({ audience: sut.mcpUrl, scope: 'db:query db:modify db:admin' });
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
  });

  it('a locked audit store mid-burst: no row without its record, no success without one', async () => {
    const answers: { requestId: string; status: number; result?: ToolResult }[] = [];
    let stop = false;
    const client = async (index: number) => {
      for (let n = 0; !stop; n++) {
        const requestId = `rt2-burst-${index}-${n}`;
        const body =
          n % 3 === 0
            ? callTool('execute', { sql: 'INSERT INTO w (tag) VALUES (?)', params: [requestId] })
            : n % 3 === 1
              ? callTool('insert_rows', { table: 'w', rows: [{ tag: requestId }] })
              : callTool('update_rows', {
                  table: 'w',
                  set: { n: n },
                  filters: [{ column: 'tag', op: 'like', value: `rt2-burst-${index}-%` }],
                });
        const { response } = await send(body, requestId);
        answers.push({
          requestId,
          status: response.status,
          result: response.message?.result as ToolResult | undefined,
        });
      }
    };
    const burst = Promise.all(Array.from({ length: 6 }, (_, index) => client(index)));
    await new Promise((wait) => setTimeout(wait, 400));
    const lock = lockSqlite(sut.internalDatabasePath);
    await new Promise((wait) => setTimeout(wait, 1500));
    lock.release();
    await untilReadiness(sut.baseUrl, 200);
    await new Promise((wait) => setTimeout(wait, 300));
    stop = true;
    await burst;

    expect(answers.filter((answer) => answer.status === 500)).toEqual([]);
    // The outage was seen: some calls were refused with 503.
    expect(answers.filter((answer) => answer.status === 503).length).toBeGreaterThan(0);
    const byRequest = new Map<string, Row[]>();
    for (const record of records(
      "SELECT requestId, outcome FROM audit_log WHERE requestId LIKE 'rt2-burst-%'",
    ))
      byRequest.set(String(record.requestId), [
        ...(byRequest.get(String(record.requestId)) ?? []),
        record,
      ]);
    // Every row inserted has its record (an intent at least), exactly one.
    const tags = app("SELECT tag FROM w WHERE tag LIKE 'rt2-burst-%'").map((row) =>
      String(row.tag),
    );
    expect(tags.filter((tag) => byRequest.get(tag)?.length !== 1)).toEqual([]);
    // Every call answered 200 has exactly one record, and a success answered is a success recorded.
    const answered = answers.filter((answer) => answer.status === 200);
    expect(answered.filter((answer) => byRequest.get(answer.requestId)?.length !== 1)).toEqual([]);
    expect(
      answered.filter(
        (answer) =>
          !answer.result?.isError && byRequest.get(answer.requestId)?.[0].outcome !== 'success',
      ),
    ).toEqual([]);
    // A call refused with 503 changed nothing.
    const refused = new Set(answers.filter((a) => a.status === 503).map((a) => a.requestId));
    expect(
      tags.filter((tag) => refused.has(tag) && byRequest.get(tag)?.[0]?.outcome === 'success'),
    ).toEqual([]);
  }, 60_000);

  it('migrations of one name with different SQL race each other and writes: one wins, ledger = schema', async () => {
    const migrations = Array.from({ length: 6 }, (_, index) =>
      send(
        callTool('apply_migration', {
          name: 'rt2_race',
          sql: `CREATE TABLE rt2_race_${index} (id INTEGER PRIMARY KEY)`,
        }),
      ),
    );
    const writes = Array.from({ length: 20 }, (_, index) =>
      send(
        callTool('execute', { sql: 'INSERT INTO w (tag) VALUES (?)', params: [`race-${index}`] }),
      ),
    );
    const answers = await Promise.all([...migrations, ...writes]);
    expect(answers.filter(({ response }) => response.status !== 200)).toEqual([]);
    const applied = (await Promise.all(migrations)).filter(
      ({ response }) => !toolResultOf(response).isError,
    );
    expect(applied).toHaveLength(1);

    const ledger = readSqlite(sut.internalDatabasePath, (db) =>
      db.prepare("SELECT name, sql, status FROM scopedb_migrations WHERE name = 'rt2_race'").all(),
    ) as Row[];
    const created = app("SELECT sql FROM sqlite_schema WHERE name LIKE 'rt2_race_%'");
    expect(ledger).toEqual([{ name: 'rt2_race', sql: created[0]?.sql, status: 'applied' }]);
    expect(created).toHaveLength(1);
    expect(app("SELECT count(*) AS n FROM w WHERE tag LIKE 'race-%'")).toEqual([{ n: 20 }]);
  }, 60_000);

  it.each([
    ['a NUL in the SQL', { sql: "SELECT 'a\u0000b' AS x" }],
    ['a lone surrogate in the SQL', { sql: "SELECT '\ud800' AS x" }],
    ['a lone surrogate in a parameter', { sql: 'SELECT ? AS x', params: ['\udfff\u0000'] }],
    ['100 000 small parameters', { sql: 'SELECT ? AS x', params: Array(100_000).fill(1) }],
    [
      '20 000 named parameters',
      {
        sql: 'SELECT :k0 AS x',
        params: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i])),
      },
    ],
  ])('%s: an answer, never a 500, audited once', async (_label, args) => {
    const { requestId, response } = await send(callTool('query', args));
    expect(response.status).toBe(200);
    expect(records('SELECT outcome FROM audit_log WHERE requestId = ?', requestId)).toEqual([
      { outcome: expect.stringMatching(/^(success|tool_error)$/) as string },
    ]);
  });

  it.each(['w\u0000', '\ud800', 'w\u0000; DROP TABLE w'])(
    'a table name %j for insert_rows: refused, audited, nothing written',
    async (table) => {
      const before = app('SELECT count(*) AS n FROM w');
      const { requestId, response } = await send(
        callTool('insert_rows', { table, rows: [{ tag: 'x' }] }),
      );
      expect(response.status).toBe(200);
      expect(toolResultOf(response).isError).toBe(true);
      expect(app('SELECT count(*) AS n FROM w')).toEqual(before);
      expect(records('SELECT outcome FROM audit_log WHERE requestId = ?', requestId)).toEqual([
        { outcome: 'tool_error' },
      ]);
    },
  );
});
