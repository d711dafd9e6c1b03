// Red team: request edges past the issue's examples (batches with repeated ids, odd content types,
// numbers JSON cannot carry back, refusals inside batches). Each test asserts the safe behaviour:
// never a 500, nothing run without its record, prototype keys refused wherever they are.
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { expectRefusedScope, postAudited } from './support/audit-rows.js';
import { callTool } from './support/mcp-http.js';
import { readSqlite } from './support/sqlite-files.js';

type Row = Record<string, unknown>;

describe('red team: request edges', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let writer: string;
  let reader: string;

  const people = () =>
    readSqlite(sut.databasePath, (db) => db.prepare('SELECT * FROM people ORDER BY id').all());
  /** Posts `body`; the answer and what its records say of the call. */
  const send = async (body: unknown, token: string, headers: Record<string, string> = {}) => {
    const { response, records } = await postAudited(sut, 'rt-edges', body, { token, headers });
    return {
      response,
      records: records.map(({ outcome, tool, tableName, sqlText, paramsHash }) => ({
        outcome,
        tool,
        tableName,
        sqlText,
        paramsHash,
      })),
    };
  };

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp(
      { AUTH_ISSUER: issuer.url },
      {
        prepareDatabase: (path) =>
          new Database(path)
            .exec(
              "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'nobody', n REAL)",
            )
            .close(),
      },
    );
    writer = issuer.token({ audience: sut.mcpUrl, scope: 'db:query db:modify' });
    reader = issuer.token({ audience: sut.mcpUrl, scope: 'db:query' });
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
  });

  it.each(['2025-03-26', '2025-06-18', '2025-11-25'])(
    'refuses a __proto__ row in a batch whose two calls share an id (protocol %s): no default row',
    async (version) => {
      const before = people();
      const call = (id: number) => ({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: {
          name: 'insert_rows',
          arguments: JSON.parse('{"table":"people","rows":[{"__proto__":{"name":"x"}}]}') as Row,
        },
      });

      const { response } = await send([call(1), call(1)], writer, {
        'MCP-Protocol-Version': version,
      });

      expect(response.status).not.toBe(500);
      expect(people()).toEqual(before);
    },
  );

  it.each([
    ['Infinity (1e999)', '[1e999]'],
    ['-0', '[-0]'],
    ['a number past 2^63', '[9223372036854775808123]'],
    ['the largest double', '[1.7976931348623157e308]'],
  ])('binds %s in params without a 500, and records the call', async (_what, params) => {
    const body = `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"execute","arguments":{"sql":"INSERT INTO people (n) VALUES (?)","params":${params}}}}`;

    const { response, records } = await send(body, writer);

    expect(response.status).toBe(200);
    expect(records).toEqual([
      expect.objectContaining({ tool: 'execute', sqlText: 'INSERT INTO people (n) VALUES (?)' }),
    ]);
  });

  it.each(['text/plain', 'text/plain; application/json', 'application/vnd.api+json'])(
    'runs no tool for a body sent as %s (and never answers 500)',
    async (contentType) => {
      const before = people();

      const { response, records } = await send(
        callTool('execute', { sql: "INSERT INTO people (name) VALUES ('smuggled')" }),
        writer,
        { 'Content-Type': contentType },
      );

      expect(response.status).not.toBe(500);
      expect(records.filter((record) => record.outcome === 'success')).toEqual([]);
      expect(people()).toEqual(before);
    },
  );

  it('records what each refused call of a batch would have run (refused_scope with SQL, params hash, table)', async () => {
    const { response, records } = await send(
      [
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'query', arguments: { sql: 'SELECT 1' } },
        },
        {
          jsonrpc: '2.0',
          id: 2,
          method: 'tools/call',
          params: {
            name: 'execute',
            arguments: { sql: 'DELETE FROM people WHERE id = ?', params: [1] },
          },
        },
      ],
      reader,
      { 'MCP-Protocol-Version': '2025-03-26' },
    );

    expect(response.status).toBe(403);
    expect(records).toEqual([
      {
        outcome: 'refused_scope',
        tool: 'execute',
        tableName: null,
        sqlText: 'DELETE FROM people WHERE id = ?',
        paramsHash: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown,
      },
    ]);
  });

  it('records a refused insert_rows with its table', async () => {
    const answer = await send(
      callTool('insert_rows', { table: 'people', rows: [{ name: 'x' }] }),
      reader,
    );

    expectRefusedScope(answer, 'insert_rows', { tableName: 'people' });
  });
});
