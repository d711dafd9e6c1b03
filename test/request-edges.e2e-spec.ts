// Edges of what a request may carry, sent as an attacker would: JSON nested 100 000 deep anywhere,
// bodies too large or malformed, and keys that reach a prototype (`__proto__`, `constructor`,
// `prototype`) in the objects the tools take. Each gets a clear refusal (never a 500), is audited,
// and changes nothing; on the direct tools/call path and on the SDK's path alike.
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { postAudited } from './support/audit-rows.js';
import { CASDOOR_CLAIMS, TestIssuer } from './support/issuer.js';
import { callTool, rpc, toolResultOf } from './support/mcp-http.js';

const DEEP = 100_000;
const nested = (levels: number, leaf = '1') => `${'['.repeat(levels)}${leaf}${']'.repeat(levels)}`;
const nestedObject = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
const callWith = (params: string) =>
  `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":${params}}`;

describe.each([
  ['direct tools/call path', 'true'],
  ['SDK path', 'false'],
])('request edges (%s)', (_path, direct) => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let token: string;
  /** Posts `body` (with the admin token unless told otherwise); the answer and its records. */
  const send = (
    body: unknown,
    options: { token?: string; headers?: Record<string, string> } = { token },
  ) => postAudited(sut, `edges-${direct}`, body, options);
  const people = () => {
    const db = new Database(sut.databasePath, { readonly: true });
    try {
      return db.prepare('SELECT * FROM people ORDER BY id').all();
    } finally {
      db.close();
    }
  };

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp({
      AUTH_ISSUER: issuer.url,
      MCP_DIRECT_TOOL_CALLS: direct,
      MCP_MAX_BODY_BYTES: '1048576',
    });
    token = issuer.token({ audience: sut.mcpUrl, scope: 'db:query db:modify db:admin' });
    const { response } = await send(
      callTool('apply_migration', {
        name: 'people',
        sql: "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'nobody', role TEXT)",
      }),
    );
    expect(response.message?.result).toMatchObject({ structuredContent: { applied: true } });
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
  });

  describe('JSON nested deeper than 64 levels', () => {
    it.each([
      ['the whole body', nested(DEEP)],
      ['a body of nested objects', nestedObject(DEEP)],
      ['params', callWith(nested(DEEP))],
      [
        'params.arguments',
        callWith(`{"name":"query","arguments":{"sql":"SELECT 1","params":${nested(DEEP)}}}`),
      ],
      [
        'params._meta',
        callWith(`{"name":"query","arguments":{"sql":"SELECT 1"},"_meta":{"x":${nested(DEEP)}}}`),
      ],
      [
        'an unknown params member',
        callWith(`{"name":"list_tables","extra":${nestedObject(DEEP)}}`),
      ],
      ['a batch', `[${callWith('{"name":"list_tables"}')},${nested(DEEP)}]`],
      ['just past the limit', nested(65)],
    ])(
      'in %s: 400 with a JSON-RPC error, audited with the verified caller',
      async (_where, body) => {
        const { response, records } = await send(body);

        expect(response.status).toBe(400);
        expect(JSON.parse(response.body)).toEqual({
          jsonrpc: '2.0',
          id: body.startsWith('{"jsonrpc"') ? 7 : null,
          error: { code: -32600, message: 'Invalid Request: JSON nested deeper than 64 levels' },
        });
        expect(records).toEqual([
          expect.objectContaining({
            outcome: 'refused_invalid_request',
            subject: CASDOOR_CLAIMS.sub,
            reason: 'Invalid Request: JSON nested deeper than 64 levels',
          }),
        ]);
      },
    );

    it('accepts nesting up to the limit', async () => {
      // body > params > _meta > 61 arrays: 64 levels in all.
      const { response } = await send(
        callWith(`{"name":"list_tables","arguments":{},"_meta":{"x":${nested(61)}}}`),
      );

      expect(response.status).toBe(200);
      expect(toolResultOf(response).isError).toBeFalsy();
    });

    it('refuses it without a token as any request without one: 401, audited', async () => {
      const { response, records } = await send(nested(DEEP), {});

      expect(response.status).toBe(401);
      expect(records).toEqual([expect.objectContaining({ outcome: 'refused_no_token' })]);
    });

    it('leaves the server serving', async () => {
      expect((await fetch(`${sut.baseUrl}/healthz`)).status).toBe(200);
      const { response } = await send(callTool('query', { sql: 'SELECT 1 AS one' }));
      expect(response.message?.result).toMatchObject({ structuredContent: { row_count: 1 } });
    });
  });

  describe('bodies the parser refuses', () => {
    it('answers a body over MCP_MAX_BODY_BYTES 413, audited with the claims of its unverified token', async () => {
      const huge = callWith(
        `{"name":"query","arguments":{"sql":"SELECT ?","params":["${'x'.repeat(1_100_000)}"]}}`,
      );

      const { response, records } = await send(huge);

      expect(response.status).toBe(413);
      expect(JSON.parse(response.body)).toEqual({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32600, message: 'Request body too large' },
      });
      expect(records).toEqual([
        expect.objectContaining({
          outcome: 'refused_invalid_request',
          subject: CASDOOR_CLAIMS.sub,
          subjectUnverified: 1,
          reason: 'Request body too large',
        }),
      ]);
    });

    it('answers malformed JSON 400 with a parse error, audited', async () => {
      const { response, records } = await send('{"jsonrpc":"2.0","id":1,');

      expect(response.status).toBe(400);
      expect(JSON.parse(response.body)).toMatchObject({ error: { code: -32700 } });
      expect(records).toEqual([
        expect.objectContaining({ outcome: 'refused_invalid_request', subjectUnverified: 1 }),
      ]);
    });
  });

  describe('keys that reach a prototype', () => {
    it.each([
      [
        'a row of insert_rows: __proto__',
        'insert_rows',
        '{"table":"people","rows":[{"__proto__":{"name":"mallory"}}]}',
        'rows.0.__proto__',
      ],
      [
        'a row of insert_rows: constructor',
        'insert_rows',
        '{"table":"people","rows":[{"name":"eve","constructor":"x"}]}',
        'rows.0.constructor',
      ],
      [
        'the set of update_rows: prototype',
        'update_rows',
        '{"table":"people","set":{"prototype":"x"},"where":[{"column":"id","op":">","value":0}]}',
        'set.prototype',
      ],
      [
        'a filter of delete_rows',
        'delete_rows',
        '{"table":"people","where":[{"column":"id","op":">","value":0,"__proto__":{"op":"is_null"}}]}',
        'where.0.__proto__',
      ],
      [
        'named params of execute',
        'execute',
        '{"sql":"INSERT INTO people (name) VALUES (:constructor)","params":{"constructor":"eve"}}',
        'params.constructor',
      ],
      [
        'the arguments themselves',
        'insert_rows',
        '{"table":"people","rows":[{"name":"eve"}],"__proto__":{"returning":true}}',
        '__proto__',
      ],
    ])('in %s: an input error, audited, nothing changed', async (_where, tool, args, path) => {
      const before = people();

      const { response, records } = await send(callWith(`{"name":"${tool}","arguments":${args}}`));

      expect(response.status).toBe(200);
      const result = toolResultOf(response);
      expect(result.isError).toBe(true);
      expect(result.content[0].text).toMatch(
        new RegExp(`^Input validation error: Invalid arguments for tool ${tool}: ${path}: the key`),
      );
      expect(people()).toEqual(before);
      expect(records).toEqual([
        expect.objectContaining({
          outcome: 'tool_error',
          tool,
          reason: result.content[0].text,
          tableName: tool === 'execute' ? null : 'people',
          sqlText: tool === 'execute' ? (expect.stringContaining('INSERT') as string) : null,
        }),
      ]);
    });

    it('still takes the same call without the key', async () => {
      const { response } = await send(
        callTool('insert_rows', { table: 'people', rows: [{ name: 'eve' }] }),
      );

      expect(response.message?.result).toMatchObject({ structuredContent: { affected_rows: 1 } });
      expect(people()).toEqual([{ id: 1, name: 'eve', role: null }]);
    });
  });

  it('never answers 500 to any of it', async () => {
    const { response } = await send(rpc('tools/list'));
    expect(response.status).toBe(200);
  });
});
