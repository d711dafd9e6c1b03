import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import {
  DatabaseEngine,
  type ExplainResult,
  type ReadResult,
  type TableDescription,
  type TableList,
  type TruncationReason,
} from '../database/engine.js';
import {
  explainResult,
  ledgerEntry,
  readResult,
  tableDescription,
  tableList,
} from '../database/results.js';
import { rowText } from '../database/result-rows.js';
import { McpTool, READ_ONLY_TOOL } from '../mcp/mcp-tool.decorator.js';
import { DATABASE_SCOPES } from './scopes.js';
import { type ToolContext, ToolError, type ToolOutput } from '../mcp/tool-context.js';
import { count, identifier, sqlParams, sqlText } from './tool-schemas.js';

const listTablesInput = z.object({
  pattern: z
    .string()
    .min(1)
    .max(255)
    .optional()
    .describe('Only names matching this LIKE pattern (case-insensitive; % and _ wildcards)'),
  include_views: z.boolean().default(true),
});

const describeTableInput = z.object({
  table: identifier.describe('Exact table or view name, as list_tables gives it'),
});

const MAX_ROWS_DEFAULT = 100;
const MAX_ROWS_CAP = 1000;
const TIMEOUT_DEFAULT_MS = 5000;
const TIMEOUT_CAP_MS = 30_000;
const queryInput = z.object({
  sql: sqlText.describe('Exactly one read-only statement (SELECT, WITH ... SELECT, VALUES)'),
  params: sqlParams,
  max_rows: z.number().int().min(1).max(MAX_ROWS_CAP).default(MAX_ROWS_DEFAULT),
  timeout_ms: z
    .number()
    .int()
    .min(1)
    .max(TIMEOUT_CAP_MS)
    .default(TIMEOUT_DEFAULT_MS)
    .describe('The statement is cancelled after this long'),
});

const explainInput = z.object({
  sql: sqlText.describe('One read-only statement, without EXPLAIN'),
  params: sqlParams,
});

const listMigrationsInput = z.object({});
const listMigrationsOutput = z.object({ migrations: z.array(ledgerEntry) });

/** Reading: the catalog and read-only queries. */
@Injectable()
@RequireScopes(DATABASE_SCOPES.query)
export class QueryTools {
  constructor(private readonly database: DatabaseEngine) {}

  @McpTool({
    name: 'list_tables',
    title: 'List tables',
    description:
      "Lists the tables and views of the database with a row count for each table (PostgreSQL: the planner's estimate). Tables outside the search path are named schema.name.",
    input: listTablesInput,
    output: tableList,
    annotations: READ_ONLY_TOOL,
  })
  async listTables(
    input: z.infer<typeof listTablesInput>,
    context: ToolContext,
  ): Promise<ToolOutput<TableList>> {
    const data = await this.database.listTables(
      { pattern: input.pattern, includeViews: input.include_views },
      context.principal,
    );
    return {
      data,
      text:
        data.tables.length === 0
          ? 'No table matches.'
          : data.tables
              .map(
                (t) =>
                  `${t.name} (${t.type}${t.row_estimate === null ? '' : `, ${count(t.row_estimate, 'row')}`})`,
              )
              .join('\n'),
    };
  }

  @McpTool({
    name: 'describe_table',
    title: 'Describe a table',
    description:
      'Columns (type, nullability, default, primary key), indexes and foreign keys of one table or view.',
    input: describeTableInput,
    output: tableDescription,
    annotations: READ_ONLY_TOOL,
    audit: { table: 'table' },
  })
  async describeTable(
    input: z.infer<typeof describeTableInput>,
    context: ToolContext,
  ): Promise<ToolOutput<TableDescription>> {
    const data = await this.database.describeTable(input.table, context.principal);
    if (!data)
      throw new ToolError(
        `No table or view is named ${JSON.stringify(input.table)}; list_tables shows them.`,
        'UNKNOWN_TABLE',
      );
    const lines = [
      `${data.type} ${data.name}`,
      ...data.columns.map(
        (c) =>
          `  ${c.name} ${c.type}${c.primary_key ? ' PRIMARY KEY' : ''}${c.nullable ? '' : ' NOT NULL'}${c.default === null ? '' : ` DEFAULT ${c.default}`}`,
      ),
      ...data.indexes.map(
        (i) => `  index ${i.name}${i.unique ? ' (unique)' : ''}: ${i.columns.join(', ')}`,
      ),
      ...data.foreign_keys.map(
        (f) =>
          `  foreign key (${f.columns.join(', ')}) -> ${f.referenced_table}(${f.referenced_columns.join(', ')})`,
      ),
      ...data.referenced_by.map((f) => `  referenced by ${f.table}(${f.columns.join(', ')})`),
      ...data.checks.map((c) => `  check${c.name ? ` ${c.name}` : ''}: ${c.expression}`),
    ];
    return { data, text: lines.join('\n') };
  }

  @McpTool({
    name: 'query',
    title: 'Run a read-only query',
    description:
      'Runs exactly one read-only SQL statement with bound parameters. Returns at most max_rows rows (default 100, at most 1000) within a size budget, long cells shortened; truncated and truncation_reason say when something was left out. Cancelled after timeout_ms (default 5000, at most 30000). The database enforces read-only.',
    input: queryInput,
    output: readResult,
    annotations: READ_ONLY_TOOL,
    audit: { statement: 'sql', params: 'params', rowCount: 'row_count' },
  })
  async query(
    input: z.infer<typeof queryInput>,
    context: ToolContext,
  ): Promise<ToolOutput<ReadResult>> {
    const result = await this.database.query(
      {
        sql: input.sql,
        params: input.params,
        maxRows: input.max_rows,
        timeoutMs: input.timeout_ms,
      },
      context.principal,
    );
    const advice: Record<TruncationReason, string> = {
      max_rows: `only the first ${input.max_rows} rows (max_rows)`,
      byte_budget: 'only the rows that fit the result size budget',
      cell_size: 'long values shortened (marked with …)',
    };
    const header =
      `${count(result.row_count, 'row')} in ${result.elapsed_ms} ms` +
      (result.truncation_reason
        ? `; TRUNCATED: ${advice[result.truncation_reason]}. Narrow the query (WHERE, fewer columns), aggregate, or page with LIMIT/OFFSET.`
        : '');
    return {
      data: result,
      text: [
        header,
        JSON.stringify(result.columns.map((c) => c.name)),
        ...result.rows.map(rowText),
      ].join('\n'),
    };
  }

  @McpTool({
    name: 'explain_query',
    title: 'Explain a query',
    description:
      "The database's query plan (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN, not run) for one read-only statement, under the same rules as query: shows which indexes are used and where tables are scanned.",
    input: explainInput,
    output: explainResult,
    annotations: READ_ONLY_TOOL,
    audit: { statement: 'sql', params: 'params' },
  })
  async explainQuery(
    input: z.infer<typeof explainInput>,
    context: ToolContext,
  ): Promise<ToolOutput<ExplainResult>> {
    const data = await this.database.explain(
      { sql: input.sql, params: input.params, timeoutMs: TIMEOUT_DEFAULT_MS },
      context.principal,
    );
    const depth = new Map<number, number>([[0, 0]]);
    const lines = data.plan.map((step) => {
      const level = (depth.get(step.parent) ?? 0) + 1;
      depth.set(step.id, level);
      return `${'  '.repeat(level - 1)}${step.detail}`;
    });
    return { data, text: lines.join('\n') || 'No plan.' };
  }

  @McpTool({
    name: 'list_migrations',
    title: 'List applied migrations',
    description:
      'The migrations ledger: every migration apply_migration recorded, oldest first, with its checksum, who applied it and when, and its status: applied; failed (not applied: its error stopped it, or the server stopped first); pending (being applied now); diverged (interrupted, and the schema then matched neither its state before nor after).',
    input: listMigrationsInput,
    output: listMigrationsOutput,
    annotations: READ_ONLY_TOOL,
  })
  async listMigrations(): Promise<ToolOutput<z.infer<typeof listMigrationsOutput>>> {
    const data = { migrations: await this.database.listMigrations() };
    return {
      data,
      text:
        data.migrations
          .map(
            (m) =>
              `${m.name} ${m.status === 'applied' ? 'applied' : `${m.status}, attempted`} ${m.applied_at} by ${m.applied_by} (sha256 ${m.checksum})`,
          )
          .join('\n') || 'No migration has been applied.',
    };
  }
}
