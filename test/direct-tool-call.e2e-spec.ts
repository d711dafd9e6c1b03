import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, type McpResponse, postMcp, rpc } from './support/mcp-http.js';

interface Case {
  name: string;
  body: unknown;
  scope?: string;
  headers?: Record<string, string>;
}

/** Answered without the SDK's per-request server. */
const DIRECT: Case[] = [
  {
    name: 'a result',
    body: callTool('query', { sql: 'SELECT id, name FROM items WHERE id = ?', params: [2] }),
  },
  {
    name: 'a truncated result',
    body: callTool('query', { sql: 'SELECT * FROM items', max_rows: 1 }),
  },
  { name: 'an empty result', body: callTool('query', { sql: 'SELECT * FROM items WHERE id < 0' }) },
  { name: 'a database error', body: callTool('query', { sql: 'SELECT * FROM no_such_table' }) },
  { name: 'a refused write', body: callTool('query', { sql: 'DELETE FROM items' }) },
  { name: 'missing arguments', body: callTool('query', {}) },
  { name: 'arguments of the wrong type', body: callTool('query', { sql: 42, max_rows: 'many' }) },
  {
    name: 'out-of-range arguments',
    body: callTool('query', { sql: 'SELECT 1', max_rows: 100_000 }),
  },
  { name: 'no arguments member', body: rpc('tools/call', { name: 'list_tables' }) },
  { name: 'a describe', body: callTool('describe_table', { table: 'items' }) },
  { name: 'an unknown table', body: callTool('describe_table', { table: 'nope' }) },
  { name: 'a string id', body: { ...callTool('list_tables'), id: 'call-7' } },
  {
    name: '_meta',
    body: rpc('tools/call', { name: 'list_tables', arguments: {}, _meta: { progressToken: 5 } }),
  },
  {
    name: 'a dry-run write',
    scope: 'db:query db:modify',
    body: callTool('execute', {
      sql: 'UPDATE items SET price = price + 1 WHERE id = 1',
      dry_run: true,
    }),
  },
  {
    name: 'a write',
    scope: 'db:query db:modify',
    body: callTool('execute', { sql: 'UPDATE items SET price = price + 1 WHERE id = 1' }),
  },
  {
    name: 'a constraint violation',
    scope: 'db:query db:modify',
    body: callTool('execute', { sql: 'UPDATE items SET price = -1 WHERE id = 1' }),
  },
  {
    name: 'the write, read back',
    body: callTool('query', { sql: 'SELECT price FROM items WHERE id = 1' }),
  },
];

/** Left to the SDK, which answers them (with its errors). */
const SDK: Case[] = [
  { name: 'an unknown tool', body: callTool('no_such_tool') },
  {
    name: 'an unexpected params member',
    body: rpc('tools/call', { name: 'list_tables', task: { ttl: 1000 } }),
  },
  {
    name: 'a notification',
    body: { jsonrpc: '2.0', method: 'tools/call', params: { name: 'list_tables' } },
  },
  {
    name: 'an unsupported protocol version',
    body: callTool('list_tables'),
    headers: { 'MCP-Protocol-Version': '1999-01-01' },
  },
  {
    name: 'a client that does not accept SSE',
    body: callTool('list_tables'),
    headers: { Accept: 'application/json' },
  },
];

/** The JSON-RPC message, with what differs between two runs of the same call (timings) zeroed. */
function comparable(response: McpResponse): unknown {
  const text = JSON.stringify(response.message ?? response.body, (key, field: unknown) =>
    key === 'elapsed_ms' ? 0 : field,
  );
  return JSON.parse(text.replace(/\d+(\.\d+)? ms/g, 'N ms')) as unknown;
}

/**
 * 2025-era `tools/call` requests are answered without the SDK's per-request server; each answer
 * must be the one the SDK's McpServer gives. The same requests go to an app as configured by
 * default and to one with MCP_DIRECT_TOOL_CALLS=false (every request through the SDK), each on
 * its own copy of the same data, one after the other (settings are process-wide).
 */
describe('direct tools/call (2025-era) answers as the SDK does', () => {
  let issuer: TestIssuer;
  const answers = new Map<'direct' | 'sdk', McpResponse[]>();
  const cases = [...DIRECT, ...SDK];
  let auditedDirect: Record<string, unknown>[] = [];
  let auditedSdk: Record<string, unknown>[] = [];

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    for (const mode of ['direct', 'sdk'] as const) {
      const app: TestApp = await startTestApp({
        AUTH_ISSUER: issuer.url,
        MCP_DIRECT_TOOL_CALLS: mode === 'direct' ? undefined : 'false',
      });
      try {
        const db = new Database(app.databasePath);
        db.exec(
          `CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL CHECK (price >= 0));
           INSERT INTO items (id, name, price) VALUES (1, 'apple', 1.5), (2, 'pear', 2.25), (3, 'fig', 4);`,
        );
        db.close();
        const responses: McpResponse[] = [];
        for (const [index, { body, scope, headers }] of cases.entries())
          responses.push(
            await postMcp(app.mcpUrl, body, {
              token: issuer.token({ audience: app.mcpUrl, scope: scope ?? 'db:query' }),
              headers: { 'X-Request-Id': `direct-case-${index}`, ...headers },
            }),
          );
        answers.set(mode, responses);
        const audit = new Database(app.auditDatabasePath, { readonly: true });
        const audited = audit
          .prepare<[number], Record<string, unknown>>(
            "SELECT * FROM audit_log WHERE requestId LIKE 'direct-case-%' AND CAST(substr(requestId, 13) AS INTEGER) < ? ORDER BY id",
          )
          .all(DIRECT.length);
        audit.close();
        if (mode === 'direct') auditedDirect = audited;
        else auditedSdk = audited;
      } finally {
        await app.close();
      }
    }
  });
  afterAll(async () => {
    await issuer.close();
  });

  const at = (name: string) => cases.findIndex((c) => c.name === name);

  it.each(DIRECT.map((c) => c.name))('%s', (name) => {
    const ours = answers.get('direct')![at(name)];
    const theirs = answers.get('sdk')![at(name)];
    expect(theirs.headers.get('content-type')).toContain('text/event-stream');
    expect(ours.headers.get('content-type')).toBe('application/json');
    expect(ours.status).toBe(theirs.status);
    expect(theirs.status).toBe(200);
    expect(comparable(ours)).toEqual(comparable(theirs));
  });

  it.each(SDK.map((c) => c.name))('%s is left to the SDK, which answers it', (name) => {
    const ours = answers.get('direct')![at(name)];
    const theirs = answers.get('sdk')![at(name)];
    expect(ours.status).toBe(theirs.status);
    expect(ours.headers.get('content-type')).toBe(theirs.headers.get('content-type'));
    expect(comparable(ours)).toEqual(comparable(theirs));
  });

  it('writes the same audit records on both paths', () => {
    const essentials = (records: Record<string, unknown>[]) =>
      records.map(({ requestId, tool, outcome, reason, rowCount, sqlText, paramsHash }) => ({
        requestId,
        tool,
        outcome,
        reason,
        rowCount,
        sqlText,
        paramsHash,
      }));
    expect(essentials(auditedDirect)).toEqual(essentials(auditedSdk));
  });

  it('audits every direct call, refused arguments included, like any other call', () => {
    const result = answers.get('direct')![at('a result')];
    expect(result.message?.result?.structuredContent).toMatchObject({ rows: [[2, 'pear']] });
    expect(auditedDirect.map((record) => record.requestId)).toEqual(
      DIRECT.map((c) => `direct-case-${at(c.name)}`),
    );
    expect(auditedDirect[at('a result')]).toMatchObject({
      tool: 'query',
      outcome: 'success',
      rowCount: 1,
      sqlText: 'SELECT id, name FROM items WHERE id = ?',
      protocolVersion: '2025-11-25',
    });
    expect(auditedDirect[at('missing arguments')]).toMatchObject({
      tool: 'query',
      outcome: 'tool_error',
      reason: expect.stringMatching(
        /^Input validation error: Invalid arguments for tool query: sql: /,
      ) as unknown,
      sqlText: null,
    });
    expect(auditedDirect[at('arguments of the wrong type')]).toMatchObject({
      outcome: 'tool_error',
      sqlText: null,
      rowCount: null,
    });
  });
});
