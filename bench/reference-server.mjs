/**
 * The benchmark's reference: the MCP SDK used the way its docs show, with nothing else. A plain
 * Express app, express.json(), `createMcpHandler` with a factory that builds an McpServer and
 * registers the tool on every request, `toNodeHandler` to mount it; no auth, no scopes, no audit.
 * The SDK serves both protocol eras on the one endpoint: 2025-11-25 requests (stateless) and
 * 2026-07-28 ones (the `_meta` envelope, answered with `resultType`).
 * The one tool, `query`, has ScopeDB's input and output shapes and reads
 * - SQLite (REFERENCE_DB): better-sqlite3, read-only connection, prepare + iterate up to
 *   max_rows + 1;
 * - or PostgreSQL (REFERENCE_DATABASE_URL): node-postgres, a pg.Pool of 10 connections (as
 *   ScopeDB's default DATABASE_POOL_SIZE), each SQL text a named prepared statement with bound
 *   parameters, the first max_rows rows kept (the whole result is fetched: the benchmark reads one
 *   row).
 *
 * Env: REFERENCE_DB or REFERENCE_DATABASE_URL (one required), PORT (default 0 = any free port),
 * HOST (default 127.0.0.1). Prints `listening <url>` once it accepts connections.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import express from 'express';
import pg from 'pg';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';

const path = process.env.REFERENCE_DB;
const postgresUrl = process.env.REFERENCE_DATABASE_URL;
if (!path === !postgresUrl) {
  process.stderr.write('one of REFERENCE_DB and REFERENCE_DATABASE_URL is required\n');
  process.exit(1);
}

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

/** The tool's answer: structured rows and the same as text. */
function answer(columns, rows, truncated, maxRows, started) {
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

function sqliteReader(file) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('query_only = 1');
  return ({ sql, params, max_rows: maxRows }) => {
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
    return answer(columns, rows, truncated, maxRows, started);
  };
}

async function postgresReader(url) {
  const pool = new pg.Pool({ connectionString: url, max: 10, application_name: 'reference' });
  pool.on('error', () => undefined); // an idle connection's error: the next query reports it
  const { rows: types } = await pool.query(
    'SELECT oid::int AS oid, format_type(oid, NULL) AS name FROM pg_type',
  );
  const typeNames = new Map(types.map((type) => [type.oid, type.name]));
  const names = new Map();
  return async ({ sql, params, max_rows: maxRows }) => {
    if (params !== undefined && !Array.isArray(params))
      throw new Error('PostgreSQL takes positional parameters ($1, $2, ...)');
    const started = performance.now();
    let name = names.get(sql);
    if (name === undefined) {
      name = `q${createHash('sha1').update(sql).digest('hex')}`;
      if (names.size < 1000) names.set(sql, name);
    }
    const result = await pool.query({ name, text: sql, values: params ?? [], rowMode: 'array' });
    const columns = result.fields.map((field) => ({
      name: field.name,
      type: typeNames.get(field.dataTypeID) ?? null,
    }));
    return answer(
      columns,
      result.rows.slice(0, maxRows),
      result.rows.length > maxRows,
      maxRows,
      started,
    );
  };
}

const query = path ? sqliteReader(path) : await postgresReader(postgresUrl);

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
