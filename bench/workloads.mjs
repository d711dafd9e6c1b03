/**
 * The four request shapes the benchmark sends, as bytes on the wire, and how an answer to each is
 * checked: cheaply (a substring test on every answer under load) and fully (the parsed rows,
 * before any load). Shared by bench/run.mjs and bench/profile.mjs.
 *
 * a. 2025-11-25 `tools/call` of `query`: key lookup, `WHERE id = ?`, a random id.
 * b. the same with a 50-row range read, `WHERE id > ? ORDER BY id LIMIT 50`, a random start that
 *    leaves 50 rows; max_rows 100, so nothing is truncated.
 * c. workload a's call as a 2026-07-28 request: the `_meta` envelope in the body and the
 *    Mcp-Protocol-Version / Mcp-Method / Mcp-Name headers, as the SDK's client sends it.
 * d. 2025-11-25 `tools/list`.
 */
import { LEGACY_PROTOCOL, mcpHeaders, mcpMessageJson } from '../test/support/mcp-wire.mjs';

export const ITEMS = 100_000;
export const RANGE_ROWS = 50;
export const RANGE_MAX_ROWS = 100;
export const MODERN_PROTOCOL = '2026-07-28';
const KEY_STEP = 7919; // prime, so successive requests walk all 100,000 keys in a scattered order

export const SQL = {
  sqlite: {
    point: 'SELECT id, name, price FROM items WHERE id = ?',
    range: `SELECT * FROM items WHERE id > ? ORDER BY id LIMIT ${RANGE_ROWS}`,
  },
  postgres: {
    point: 'SELECT id, name, price FROM items WHERE id = $1',
    range: `SELECT * FROM items WHERE id > $1 ORDER BY id LIMIT ${RANGE_ROWS}`,
  },
};

/** The envelope the SDK's client puts in `params._meta` of every 2026-07-28 request. */
const MODERN_META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_PROTOCOL,
  'io.modelcontextprotocol/clientInfo': { name: 'scopedb-bench', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

function queryCall(rpcId, args, modern) {
  const params = { name: 'query', arguments: args, ...(modern && { _meta: MODERN_META }) };
  return JSON.stringify({ jsonrpc: '2.0', id: rpcId, method: 'tools/call', params });
}

/** The `n`th key of the walk: 0 .. ITEMS - 1. */
const keyOf = (n) => (n * KEY_STEP) % ITEMS;

const pointParam = (n) => keyOf(n) + 1;
// A start id that leaves RANGE_ROWS rows after it: 0 .. ITEMS - RANGE_ROWS.
const rangeParam = (n) => keyOf(n) % (ITEMS - RANGE_ROWS + 1);

// Whatever key follows it: answers of the same shape may order their keys differently.
const RANGE_COUNT = new RegExp(`"row_count":${RANGE_ROWS}[,}]`);

const hasRows = (body) => body.includes('"rows":[[') && !body.includes('"isError":true');

/**
 * Each workload: `sql` (by dialect) and `param(n)` for its n-th request (undefined: no SQL),
 * `body(dialect, n)`, `headers(token)`, `answered(body)` (the cheap check under load) and
 * `verifyAnswer(message, expectedRows)` (the full one: a reason when wrong, else undefined).
 */
export const WORKLOADS = {
  a: {
    name: 'a',
    title: '2025-11-25 `tools/call query`, key lookup',
    sql: (dialect) => SQL[dialect].point,
    param: pointParam,
    body: (dialect, n) => queryCall(n, { sql: SQL[dialect].point, params: [pointParam(n)] }),
    headers: (token) => mcpHeaders(token),
    answered: hasRows,
    verifyAnswer: (message, rows) => sameRows(message, rows),
  },
  b: {
    name: 'b',
    title: `2025-11-25 \`tools/call query\`, ${RANGE_ROWS}-row range read`,
    sql: (dialect) => SQL[dialect].range,
    param: rangeParam,
    body: (dialect, n) =>
      queryCall(n, {
        sql: SQL[dialect].range,
        params: [rangeParam(n)],
        max_rows: RANGE_MAX_ROWS,
      }),
    headers: (token) => mcpHeaders(token),
    answered: (body) => hasRows(body) && RANGE_COUNT.test(body),
    verifyAnswer: (message, rows) =>
      sameRows(message, rows) ??
      (message.result.structuredContent.truncated === false ? undefined : 'truncated'),
  },
  c: {
    name: 'c',
    title: '2026-07-28 `tools/call query`, key lookup',
    sql: (dialect) => SQL[dialect].point,
    param: pointParam,
    body: (dialect, n) => queryCall(n, { sql: SQL[dialect].point, params: [pointParam(n)] }, true),
    headers: (token) => modernHeaders(token, 'tools/call', 'query'),
    answered: (body) => hasRows(body) && body.includes('"resultType":"complete"'),
    verifyAnswer: (message, rows) =>
      sameRows(message, rows) ??
      (message.result.resultType === 'complete'
        ? undefined
        : `resultType ${JSON.stringify(message.result.resultType)}, not "complete"`),
  },
  d: {
    name: 'd',
    title: '2025-11-25 `tools/list`',
    sql: () => undefined,
    param: () => undefined,
    body: (_dialect, n) => JSON.stringify({ jsonrpc: '2.0', id: n, method: 'tools/list' }),
    headers: (token) => mcpHeaders(token),
    answered: (body) => body.includes('"tools":[{'),
    verifyAnswer: (message) =>
      message.result?.tools?.some((tool) => tool.name === 'query' && tool.inputSchema)
        ? undefined
        : 'no `query` tool with an input schema in the list',
  },
};

/** The headers of a 2026-07-28 POST: the era's version and the method (and name) mirrored. */
function modernHeaders(token, method, name) {
  const headers = Object.fromEntries(
    Object.entries(mcpHeaders(token)).filter(([key]) => key !== 'MCP-Protocol-Version'),
  );
  return {
    ...headers,
    'Mcp-Protocol-Version': MODERN_PROTOCOL,
    'Mcp-Method': method,
    ...(name && { 'Mcp-Name': name }),
  };
}

function sameRows(message, rows) {
  if (message.result?.isError) return 'a tool error';
  const got = message.result?.structuredContent?.rows;
  return JSON.stringify(got) === JSON.stringify(rows)
    ? undefined
    : `rows ${JSON.stringify(got)?.slice(0, 300)}, expected ${JSON.stringify(rows).slice(0, 300)}`;
}

/** `count` rows of items' shape, generated in SQLite itself in one transaction. */
export function fillTable(db, table, count) {
  db.exec(
    `CREATE TABLE ${table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL, created_at TEXT NOT NULL)`,
  );
  db.transaction(() =>
    db
      .prepare(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO ${table} (id, name, price, created_at)
         SELECT i, 'item ' || i, ((i * 7919) % 100000) / 100.0,
                strftime('%Y-%m-%dT%H:%M:%SZ', 1767225600 + i * 60, 'unixepoch')
         FROM n`,
      )
      .run(count),
  )();
}

/** POST to an MCP endpoint; the JSON-RPC message from a JSON body or the first SSE event. */
export async function postMcp(url, headers, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  const json = mcpMessageJson(response.headers.get('content-type') ?? '', text);
  let message;
  try {
    message = json === undefined ? undefined : JSON.parse(json);
  } catch {
    message = undefined;
  }
  return { status: response.status, message, text };
}

export { LEGACY_PROTOCOL };
