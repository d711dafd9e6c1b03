import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import { SqlExecutor } from '../database/sql-executor.js';
import { SqliteDatabase } from '../database/sqlite-database.js';
import { McpTool } from '../mcp/mcp-tool.decorator.js';
import { ToolError, type ToolOutput } from '../mcp/tool-context.js';
import { readResult, sqlParams, sqlText } from './tool-schemas.js';

const listTablesInput = z.object({});
const listTablesOutput = z.object({
  tables: z.array(
    z.object({
      name: z.string(),
      type: z.enum(['table', 'view']),
      row_estimate: z.number().int().nullable(),
    }),
  ),
});

const describeTableInput = z.object({
  table: z.string().min(1).max(255).describe('Exact table or view name'),
});
const foreignKey = z.object({
  columns: z.array(z.string()),
  referenced_table: z.string(),
  referenced_columns: z.array(z.string()),
  on_delete: z.string().nullable(),
  on_update: z.string().nullable(),
});
const describeTableOutput = z.object({
  name: z.string(),
  type: z.enum(['table', 'view']),
  columns: z.array(
    z.object({
      name: z.string(),
      type: z.string(),
      nullable: z.boolean(),
      default: z.string().nullable(),
      primary_key: z.boolean(),
    }),
  ),
  primary_key: z.array(z.string()),
  indexes: z.array(
    z.object({ name: z.string(), columns: z.array(z.string()), unique: z.boolean() }),
  ),
  foreign_keys: z.array(foreignKey),
  referenced_by: z.array(foreignKey.extend({ table: z.string() })),
});

export const MAX_ROWS_DEFAULT = 100;
export const MAX_ROWS_CAP = 1000;
const queryInput = z.object({
  sql: sqlText.describe('Exactly one read-only statement (SELECT, WITH ... SELECT, VALUES)'),
  params: sqlParams,
  max_rows: z.number().int().min(1).max(MAX_ROWS_CAP).default(MAX_ROWS_DEFAULT),
});

/** Reading: the catalog and read-only queries. */
@Injectable()
@RequireScopes('db:query')
export class QueryTools {
  constructor(
    private readonly database: SqliteDatabase,
    private readonly sql: SqlExecutor,
  ) {}

  @McpTool({
    name: 'list_tables',
    title: 'List tables',
    description: 'Lists the tables and views of the database with a row count for each table.',
    input: listTablesInput,
    output: listTablesOutput,
    annotations: {
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: false,
    },
  })
  listTables(): ToolOutput<z.infer<typeof listTablesOutput>> {
    const db = this.database.readConnection;
    const tables = this.database.catalog().map(({ name, type }) => ({
      name,
      type,
      row_estimate:
        type === 'table'
          ? db
              .prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${this.database.quote(name)}`)
              .get()!.n
          : null,
    }));
    return {
      data: { tables },
      text:
        tables.length === 0
          ? 'The database has no tables.'
          : tables
              .map(
                (t) =>
                  `${t.name} (${t.type}${t.row_estimate === null ? '' : `, ${t.row_estimate} rows`})`,
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
    output: describeTableOutput,
    annotations: {
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: false,
    },
  })
  async describeTable(
    input: z.infer<typeof describeTableInput>,
  ): Promise<ToolOutput<z.infer<typeof describeTableOutput>>> {
    const entry = this.database.resolve(input.table);
    if (!entry)
      throw new ToolError(
        `No table or view is named ${JSON.stringify(input.table)}; list_tables shows them.`,
        'UNKNOWN_TABLE',
      );
    const { table, all } = await this.database.describe(entry.name);
    const keyOf = (fk: (typeof table.foreignKeys)[number]) => ({
      columns: fk.columnNames,
      referenced_table: fk.referencedTableName,
      referenced_columns: fk.referencedColumnNames,
      on_delete: fk.onDelete ?? null,
      on_update: fk.onUpdate ?? null,
    });
    const data = {
      name: entry.name,
      type: entry.type,
      columns: table.columns.map((c) => ({
        name: c.name,
        type: c.type + (c.length ? `(${c.length})` : ''),
        nullable: c.isNullable,
        default: c.default === undefined || c.default === null ? null : String(c.default),
        primary_key: c.isPrimary,
      })),
      primary_key: table.primaryColumns.map((c) => c.name),
      indexes: [
        ...table.indices.map((i) => ({
          name: i.name ?? '',
          columns: i.columnNames,
          unique: i.isUnique,
        })),
        ...table.uniques.map((u) => ({ name: u.name ?? '', columns: u.columnNames, unique: true })),
      ],
      foreign_keys: table.foreignKeys.map(keyOf),
      referenced_by: all.flatMap((other) =>
        other.foreignKeys
          .filter((fk) => fk.referencedTableName === entry.name)
          .map((fk) => ({ table: other.name, ...keyOf(fk) })),
      ),
    };
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
    ];
    return { data, text: lines.join('\n') };
  }

  @McpTool({
    name: 'query',
    title: 'Run a read-only query',
    description:
      'Runs exactly one read-only SQL statement with bound parameters and returns at most max_rows rows (default 100, at most 1000). The database enforces read-only.',
    input: queryInput,
    output: readResult,
    annotations: {
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: false,
    },
  })
  query(input: z.infer<typeof queryInput>): ToolOutput<z.infer<typeof readResult>> {
    const result = this.sql.read(input.sql, input.params, input.max_rows);
    const header = `${result.row_count} row${result.row_count === 1 ? '' : 's'}${
      result.truncated
        ? ` (truncated at max_rows=${input.max_rows}; narrow the query, aggregate, or page with LIMIT/OFFSET)`
        : ''
    }`;
    return {
      data: result,
      text: [
        header,
        JSON.stringify(result.columns.map((c) => c.name)),
        ...result.rows.map((row) => JSON.stringify(row)),
      ].join('\n'),
    };
  }
}
