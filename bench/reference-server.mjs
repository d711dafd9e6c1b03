/**
 * The benchmark's reference: the MCP SDK used the way its docs show, with nothing else. A plain
 * Express app, express.json(), `createMcpHandler` with a factory that builds an McpServer and
 * registers the tool on every request, `toNodeHandler` to mount it; no auth, no scopes, no audit.
 * The one tool, `query`, has ScopeDB's input and output shapes and reads SQLite the same way
 * (better-sqlite3, read-only connection, prepare + iterate up to max_rows + 1).
 *
 * Env: REFERENCE_DB (path of the SQLite file, required), PORT (default 0 = any free port),
 * HOST (default 127.0.0.1). Prints `listening <url>` once it accepts connections.
 */
import Database from 'better-sqlite3';
import express from 'express';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';

const path = process.env.REFERENCE_DB;
if (!path) {
  process.stderr.write('REFERENCE_DB is required\n');
  process.exit(1);
}
const db = new Database(path, { readonly: true, fileMustExist: true });
db.pragma('query_only = 1');

const sqlValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const inputSchema = z.object({
  sql: z.string().min(1).max(100_000),
  params: z
    .union([
      z.array(sqlValue).max(1000),
      z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), sqlValue),
    ])
    .optional(),
  max_rows: z.number().int().min(1).max(1000).default(100),
});
const outputSchema = z.object({
  columns: z.array(z.object({ name: z.string(), type: z.string().nullable() })),
  rows: z.array(z.array(z.unknown())),
  row_count: z.number().int(),
  truncated: z.boolean(),
  truncation_reason: z.enum(['max_rows']).nullable(),
  elapsed_ms: z.number(),
});

function bindable(params) {
  if (params === undefined) return [];
  const convert = (value) => (typeof value === 'boolean' ? Number(value) : value);
  if (Array.isArray(params)) return params.map(convert);
  return [Object.fromEntries(Object.entries(params).map(([key, value]) => [key, convert(value)]))];
}

function query({ sql, params, max_rows: maxRows }) {
  const started = performance.now();
  const statement = db.prepare(sql);
  if (!statement.reader || !statement.readonly)
    throw new Error('query runs one read-only statement that returns rows');
  statement.raw(true);
  const columns = statement.columns().map((column) => ({ name: column.name, type: column.type }));
  const rows = [];
  let truncated = false;
  for (const row of statement.iterate(...bindable(params))) {
    if (rows.length === maxRows) {
      truncated = true;
      break;
    }
    rows.push(row);
  }
  const data = {
    columns,
    rows,
    row_count: rows.length,
    truncated,
    truncation_reason: truncated ? 'max_rows' : null,
    elapsed_ms: Math.round((performance.now() - started) * 1000) / 1000,
  };
  const text = [
    `${rows.length} row${rows.length === 1 ? '' : 's'}${truncated ? ` (truncated at max_rows=${maxRows})` : ''}`,
    JSON.stringify(columns.map((column) => column.name)),
    ...rows.map((row) => JSON.stringify(row)),
  ].join('\n');
  return { content: [{ type: 'text', text }], structuredContent: data };
}

const handler = createMcpHandler(() => {
  const server = new McpServer({ name: 'reference', version: '1.0.0' });
  server.registerTool(
    'query',
    {
      title: 'Run a read-only query',
      description:
        'Runs exactly one read-only SQL statement with bound parameters and returns at most max_rows rows.',
      inputSchema,
      outputSchema,
      annotations: { readOnlyHint: true },
    },
    (args) => query(args),
  );
  return server;
});
const nodeHandler = toNodeHandler(handler);

const app = express();
app.use(express.json());
app.post('/mcp', (request, response) => nodeHandler(request, response, request.body));

const server = app.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address();
  process.stdout.write(`listening http://${address}:${port}\n`);
});
const stop = () => {
  void handler.close();
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
