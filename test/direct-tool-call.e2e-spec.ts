import Database from 'better-sqlite3';
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  PROTOCOL_VERSION_META_KEY,
} from '@modelcontextprotocol/server';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, type McpResponse, postMcp, rpc } from './support/mcp-http.js';
import { mcpMessageJson } from './support/mcp-wire.mjs';

interface Case {
  name: string;
  body: unknown;
  scope?: string;
  headers?: Record<string, string | undefined>;
}

const REVISION = '2026-07-28';
const ENVELOPE = {
  [PROTOCOL_VERSION_META_KEY]: REVISION,
  [CLIENT_INFO_META_KEY]: { name: 'e2e', version: '1.0.0' },
  [CLIENT_CAPABILITIES_META_KEY]: {},
};

/** A 2026-07-28 request: the envelope in its params and the standard headers a client sends. */
function modern(
  method: string,
  params: Record<string, unknown> = {},
  headers: Record<string, string | undefined> = {},
): Pick<Case, 'body' | 'headers'> {
  return {
    body: rpc(method, { ...params, _meta: ENVELOPE }),
    headers: {
      'MCP-Protocol-Version': REVISION,
      'Mcp-Method': method,
      ...(typeof params.name === 'string' && { 'Mcp-Name': params.name }),
      ...headers,
    },
  };
}

function modernCall(name: string, args: Record<string, unknown> = {}) {
  return modern('tools/call', { name, arguments: args });
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
  {
    name: '2026: a result',
    ...modernCall('query', { sql: 'SELECT id, name FROM items WHERE id = ?', params: [2] }),
  },
  {
    name: '2026: a truncated result',
    ...modernCall('query', { sql: 'SELECT * FROM items', max_rows: 1 }),
  },
  {
    name: '2026: a database error',
    ...modernCall('query', { sql: 'SELECT * FROM no_such_table' }),
  },
  { name: '2026: a refused write', ...modernCall('query', { sql: 'DELETE FROM items' }) },
  { name: '2026: missing arguments', ...modernCall('query', {}) },
  {
    name: '2026: arguments of the wrong type',
    ...modernCall('query', { sql: 42, max_rows: 'many' }),
  },
  { name: '2026: no arguments member', ...modern('tools/call', { name: 'list_tables' }) },
  { name: '2026: a describe', ...modernCall('describe_table', { table: 'items' }) },
  { name: '2026: an unknown table', ...modernCall('describe_table', { table: 'nope' }) },
  {
    name: '2026: a string id',
    ...modernCall('list_tables'),
    body: { ...(modernCall('list_tables').body as object), id: 'call-2026' },
  },
  {
    name: '2026: a write',
    scope: 'db:query db:modify',
    ...modernCall('execute', { sql: 'UPDATE items SET price = price + 1 WHERE id = 2' }),
  },
  {
    name: '2026: a constraint violation',
    scope: 'db:query db:modify',
    ...modernCall('execute', { sql: 'UPDATE items SET price = -1 WHERE id = 2' }),
  },
  {
    name: '2026: the write, read back',
    ...modernCall('query', { sql: 'SELECT price FROM items WHERE id = 2' }),
  },
  {
    name: '2026: Mcp-Name with surrounding blanks',
    ...modern('tools/call', { name: 'list_tables' }, { 'Mcp-Name': ' list_tables ' }),
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
  { name: 'a batch of one call', body: [callTool('list_tables')] },
  { name: 'a batch of two calls', body: [callTool('list_tables'), callTool('list_migrations')] },
  { name: '2026: an unknown tool', ...modernCall('no_such_tool') },
  {
    name: '2026: no MCP-Protocol-Version header',
    ...modern('tools/call', { name: 'list_tables' }, { 'MCP-Protocol-Version': undefined }),
  },
  {
    name: '2026: an MCP-Protocol-Version header naming 2025-11-25',
    ...modern('tools/call', { name: 'list_tables' }, { 'MCP-Protocol-Version': '2025-11-25' }),
  },
  {
    name: '2026: no Mcp-Method header',
    ...modern('tools/call', { name: 'list_tables' }, { 'Mcp-Method': undefined }),
  },
  {
    name: '2026: an Mcp-Method header naming another method',
    ...modern('tools/call', { name: 'list_tables' }, { 'Mcp-Method': 'tools/list' }),
  },
  {
    name: '2026: no Mcp-Name header',
    ...modern('tools/call', { name: 'list_tables' }, { 'Mcp-Name': undefined }),
  },
  {
    name: '2026: an Mcp-Name header naming another tool',
    ...modern('tools/call', { name: 'list_tables' }, { 'Mcp-Name': 'query' }),
  },
  {
    name: '2026: a Base64 Mcp-Name',
    ...modern('tools/call', { name: 'list_tables' }, { 'Mcp-Name': '=?base64?bGlzdF90YWJsZXM=?=' }),
  },
  {
    name: '2026: an envelope without client capabilities',
    body: rpc('tools/call', {
      name: 'list_tables',
      _meta: { [PROTOCOL_VERSION_META_KEY]: REVISION },
    }),
    headers: modernCall('list_tables').headers,
  },
  {
    name: '2026: an envelope with a malformed protocol version',
    body: rpc('tools/call', {
      name: 'list_tables',
      _meta: { ...ENVELOPE, [PROTOCOL_VERSION_META_KEY]: 7 },
    }),
    headers: modernCall('list_tables').headers,
  },
  {
    name: '2026: an envelope naming a revision the SDK does not serve',
    body: rpc('tools/call', {
      name: 'list_tables',
      _meta: { ...ENVELOPE, [PROTOCOL_VERSION_META_KEY]: '2027-01-01' },
    }),
    headers: { ...modernCall('list_tables').headers, 'MCP-Protocol-Version': '2027-01-01' },
  },
  {
    name: '2026: a progress token next to the envelope',
    body: rpc('tools/call', { name: 'list_tables', _meta: { ...ENVELOPE, progressToken: 3 } }),
    headers: modernCall('list_tables').headers,
  },
  {
    name: '2026: a notification',
    body: {
      jsonrpc: '2.0',
      method: 'tools/call',
      params: { name: 'list_tables', _meta: ENVELOPE },
    },
    headers: modernCall('list_tables').headers,
  },
  {
    name: '2026: in a batch',
    body: [modernCall('list_tables').body],
    headers: modernCall('list_tables').headers,
  },
  {
    name: '2026: a task-augmented call',
    ...modern('tools/call', { name: 'list_tables', arguments: {}, task: { ttl: 1000 } }),
  },
  { name: 'tools/list with a cursor', body: rpc('tools/list', { cursor: 'abc' }) },
  {
    name: '2026: tools/list with a cursor',
    ...modern('tools/list', { cursor: 'abc' }),
  },
  {
    name: '2026: tools/list without Mcp-Method',
    ...modern('tools/list', {}, { 'Mcp-Method': undefined }),
  },
];

/** With MCP_HIDE_UNAUTHORIZED_TOOLS=true: calls of tools the caller does and does not see. */
const SDK_HIDDEN: Case[] = [
  { name: 'a visible tool', body: callTool('list_tables') },
  { name: 'a hidden tool', body: callTool('get_audit_log') },
  { name: '2026: a visible tool', ...modernCall('list_tables') },
  { name: '2026: a hidden tool', ...modernCall('get_audit_log') },
  { name: 'an unknown tool', body: callTool('no_such_tool') },
];

/** tools/list, by scope set; each sent twice (the second answer is the kept one, on the direct path). */
const LISTS: { name: string; scope: string; request: () => Pick<Case, 'body' | 'headers'> }[] = [
  ['db:query', 'a reader'],
  ['db:query db:modify db:admin', 'an admin'],
  ['db:modify', 'a writer without db:query'],
].flatMap(([scope, who]) => [
  { name: `2025: ${who}`, scope, request: () => ({ body: rpc('tools/list') }) },
  { name: `2025: ${who}, params {}`, scope, request: () => ({ body: rpc('tools/list', {}) }) },
  {
    name: `2025: ${who}, no MCP-Protocol-Version`,
    scope,
    request: () => ({ body: rpc('tools/list'), headers: { 'MCP-Protocol-Version': undefined } }),
  },
  { name: `2026: ${who}`, scope, request: () => modern('tools/list') },
]);

/** The answer's JSON-RPC message as sent, with what differs between two runs of a call (timings) zeroed. */
function comparable(response: McpResponse): string {
  const json = mcpMessageJson(response.headers.get('content-type') ?? '', response.body);
  return (json ?? response.body)
    .replace(/"elapsed_ms":\d+(\.\d+)?/g, '"elapsed_ms":0')
    .replace(/\d+(\.\d+)? ms/g, 'N ms');
}

/** Answered by the direct path, not streamed by the SDK's handler (which sends no length). */
function answeredDirectly(response: McpResponse): boolean {
  return response.headers.get('content-length') !== null;
}

interface Run {
  answers: McpResponse[];
  /** Each LISTS entry's two answers. */
  lists: [McpResponse, McpResponse][];
  audited: Record<string, unknown>[];
}

/** Every case against one app (on its own copy of the data), and the records it wrote. */
async function runAll(
  issuer: TestIssuer,
  settings: Record<string, string | undefined>,
  cases: Case[],
): Promise<Run> {
  const app: TestApp = await startTestApp({ AUTH_ISSUER: issuer.url, ...settings });
  try {
    const db = new Database(app.databasePath);
    db.exec(
      `CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL CHECK (price >= 0));
       INSERT INTO items (id, name, price) VALUES (1, 'apple', 1.5), (2, 'pear', 2.25), (3, 'fig', 4);`,
    );
    db.close();
    const send = (c: Pick<Case, 'body' | 'headers' | 'scope'>, requestId: string) =>
      postMcp(app.mcpUrl, c.body, {
        token: issuer.token({ audience: app.mcpUrl, scope: c.scope ?? 'db:query' }),
        headers: { 'X-Request-Id': requestId, ...c.headers },
      });
    const answers: McpResponse[] = [];
    for (const [index, c] of cases.entries()) answers.push(await send(c, `direct-case-${index}`));
    const lists: [McpResponse, McpResponse][] = [];
    for (const [index, list] of LISTS.entries()) {
      // The same ids on every app; a number, then a string (the kept answer carries either).
      const withId = (id: string | number) => {
        const { body, headers } = list.request();
        return { body: { ...(body as object), id }, headers, scope: list.scope };
      };
      const first = await send(withId(1000 + index), `list-${index}-a`);
      lists.push([first, await send(withId(`list-${index}`), `list-${index}-b`)]);
    }
    const audit = new Database(app.auditDatabasePath, { readonly: true });
    const audited = audit
      .prepare<[], Record<string, unknown>>(
        "SELECT * FROM audit_log WHERE requestId LIKE 'direct-case-%' OR requestId LIKE 'list-%' ORDER BY id",
      )
      .all();
    audit.close();
    return { answers, lists, audited };
  } finally {
    await app.close();
  }
}

const essentials = (records: Record<string, unknown>[]) =>
  records.map(
    ({ requestId, tool, outcome, reason, rowCount, sqlText, paramsHash, protocolVersion }) => ({
      requestId,
      tool,
      outcome,
      reason,
      rowCount,
      sqlText,
      paramsHash,
      protocolVersion,
    }),
  );

/**
 * Single `tools/call` requests (2025-era and 2026-07-28) are answered without the SDK's
 * per-request server, and plain `tools/list` requests from the SDK's own earlier answer; each
 * answer must be the one the SDK gives. The same requests go to an app as configured by default
 * and to one with MCP_DIRECT_TOOL_CALLS=false (every request through the SDK), each on its own
 * copy of the same data, one after the other (settings are process-wide); then tools/list again
 * with MCP_HIDE_UNAUTHORIZED_TOOLS=true.
 */
describe('the direct path answers as the SDK does', () => {
  let issuer: TestIssuer;
  const cases = [...DIRECT, ...SDK];
  let direct: Run;
  let sdk: Run;
  let directHiding: Run;
  let sdkHiding: Run;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    direct = await runAll(issuer, {}, cases);
    sdk = await runAll(issuer, { MCP_DIRECT_TOOL_CALLS: 'false' }, cases);
    const hidden = SDK_HIDDEN;
    directHiding = await runAll(issuer, { MCP_HIDE_UNAUTHORIZED_TOOLS: 'true' }, hidden);
    sdkHiding = await runAll(
      issuer,
      { MCP_HIDE_UNAUTHORIZED_TOOLS: 'true', MCP_DIRECT_TOOL_CALLS: 'false' },
      hidden,
    );
  }, 120_000);
  afterAll(async () => {
    await issuer.close();
  });

  const at = (name: string) => cases.findIndex((c) => c.name === name);

  it.each(DIRECT.map((c) => c.name))('%s', (name) => {
    const ours = direct.answers[at(name)];
    const theirs = sdk.answers[at(name)];
    expect(answeredDirectly(ours)).toBe(true);
    expect(answeredDirectly(theirs)).toBe(false);
    expect(ours.headers.get('content-type')).toBe('application/json');
    // The SDK streams a 2025-era answer as one SSE event; a 2026-07-28 one it sends as JSON.
    expect(theirs.headers.get('content-type')).toBe(
      name.startsWith('2026') ? 'application/json' : 'text/event-stream',
    );
    expect(theirs.status).toBe(200);
    expect(ours.status).toBe(theirs.status);
    expect(comparable(ours)).toBe(comparable(theirs));
  });

  it.each(SDK.map((c) => c.name))('%s is left to the SDK, which answers it', (name) => {
    const ours = direct.answers[at(name)];
    const theirs = sdk.answers[at(name)];
    expect(answeredDirectly(ours)).toBe(answeredDirectly(theirs));
    expect(ours.status).toBe(theirs.status);
    expect(ours.headers.get('content-type')).toBe(theirs.headers.get('content-type'));
    expect(comparable(ours)).toBe(comparable(theirs));
  });

  it.each(SDK_HIDDEN.map((c) => c.name))(
    'with hidden tools: %s is answered as the SDK does',
    (name) => {
      const index = SDK_HIDDEN.findIndex((c) => c.name === name);
      const ours = directHiding.answers[index];
      const theirs = sdkHiding.answers[index];
      const visible = name.includes('a visible tool');
      // A hidden tool is refused (step-up) before either path: the same refusal from both apps.
      expect(answeredDirectly(ours)).toBe(visible || answeredDirectly(theirs));
      expect(answeredDirectly(theirs)).toBe(!visible && answeredDirectly(ours));
      if (name.includes('a hidden tool')) expect(ours.status).toBe(403);
      expect(ours.status).toBe(theirs.status);
      // A 2025-era call answered directly is JSON where the SDK streams one SSE event.
      if (!answeredDirectly(ours) || name.startsWith('2026'))
        expect(ours.headers.get('content-type')).toBe(theirs.headers.get('content-type'));
      expect(comparable(ours)).toBe(comparable(theirs));
    },
  );

  describe.each([
    ['all tools listed', () => [direct, sdk] as const],
    ['MCP_HIDE_UNAUTHORIZED_TOOLS=true', () => [directHiding, sdkHiding] as const],
  ])('tools/list, %s', (_setting, runs) => {
    it.each(LISTS.map((list, index) => [list.name, index] as const))(
      "%s: byte for byte the SDK's answer, the second time from the kept one",
      (_name, index) => {
        const [ours, theirs] = runs();
        const [first, second] = ours.lists[index];
        // The first of each era is the SDK's answer (kept); a repeat is the kept answer.
        if (['2025: a reader', '2026: a reader'].includes(LISTS[index].name))
          expect(answeredDirectly(first)).toBe(false);
        expect(answeredDirectly(second)).toBe(true);
        // The app's own headers still come with the kept answer.
        expect(second.headers.get('x-request-id')).toBe(`list-${index}-b`);
        for (const [mine, sdkAnswer] of [
          [first, theirs.lists[index][0]],
          [second, theirs.lists[index][1]],
        ]) {
          expect(mine.status).toBe(200);
          expect(mine.status).toBe(sdkAnswer.status);
          expect(mine.headers.get('content-type')).toBe(sdkAnswer.headers.get('content-type'));
          expect(mine.headers.get('cache-control')).toBe(sdkAnswer.headers.get('cache-control'));
          expect(mine.body).toBe(sdkAnswer.body);
        }
      },
    );

    it('lists by scope when hiding, every tool otherwise', () => {
      const [ours] = runs();
      const names = (index: number) =>
        (
          JSON.parse(comparable(ours.lists[index][1])) as {
            result: { tools: { name: string; _meta: Record<string, string[]> }[] };
          }
        ).result.tools.map((tool) => tool.name);
      const reader = names(LISTS.findIndex((list) => list.name === '2026: a reader'));
      const admin = names(LISTS.findIndex((list) => list.name === '2026: an admin'));
      expect(admin).toContain('apply_migration');
      expect(reader).toContain('query');
      if (ours === directHiding) expect(reader).not.toContain('apply_migration');
      else expect(reader).toEqual(admin);
    });
  });

  it('writes the same audit records on both paths, one per call', () => {
    expect(essentials(direct.audited)).toEqual(essentials(sdk.audited));
    expect(essentials(directHiding.audited)).toEqual(essentials(sdkHiding.audited));
    const calls = DIRECT.map((c) => `direct-case-${at(c.name)}`);
    expect(
      direct.audited.map((record) => record.requestId).filter((id) => calls.includes(id as string)),
    ).toEqual(calls);
  });

  it('audits every direct call, refused arguments included, like any other call', () => {
    const record = (name: string) =>
      direct.audited.find((r) => r.requestId === `direct-case-${at(name)}`);
    expect(record('a result')).toMatchObject({
      tool: 'query',
      outcome: 'success',
      rowCount: 1,
      sqlText: 'SELECT id, name FROM items WHERE id = ?',
      protocolVersion: '2025-11-25',
    });
    expect(record('2026: a result')).toMatchObject({
      tool: 'query',
      outcome: 'success',
      rowCount: 1,
      protocolVersion: REVISION,
    });
    for (const name of ['missing arguments', '2026: missing arguments'])
      expect(record(name)).toMatchObject({
        tool: 'query',
        outcome: 'tool_error',
        reason: expect.stringMatching(
          /^Input validation error: Invalid arguments for tool query: sql: /,
        ) as unknown,
        sqlText: null,
      });
    expect(record('arguments of the wrong type')).toMatchObject({
      outcome: 'tool_error',
      sqlText: null,
      rowCount: null,
    });
    const result = JSON.parse(comparable(direct.answers[at('2026: a result')])) as {
      result: Record<string, unknown>;
    };
    expect(result.result).toMatchObject({
      structuredContent: { rows: [[2, 'pear']] },
      resultType: 'complete',
    });
  });
});
