import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import {
  DatabaseEngine,
  type DeleteRowsRequest,
  type TruncationReason,
  type WriteResult,
} from '../database/engine.js';
import { writeResult } from '../database/results.js';
import { McpTool } from '../mcp/mcp-tool.decorator.js';
import { DATABASE_SCOPES } from './scopes.js';
import type { ToolContext, ToolOutput } from '../mcp/tool-context.js';
import {
  count,
  dryRun,
  expectedMaxRows,
  identifier,
  row,
  sqlParams,
  sqlText,
  where,
} from './tool-schemas.js';

const destructive = {
  readOnlyHint: false,
  destructiveHint: true,
  idempotentHint: false,
  openWorldHint: false,
} as const;

const insertRowsInput = z.object({
  table: identifier,
  rows: z.array(row).min(1).max(500).describe('Objects of column -> value, 1 to 500'),
  returning: z.boolean().default(false).describe('Return the inserted rows'),
});
const updateRowsInput = z.object({
  table: identifier,
  set: row.describe('Column -> new value'),
  where,
  expected_max_rows: expectedMaxRows,
  dry_run: dryRun,
});
const deleteRowsInput = z.object({
  table: identifier,
  where,
  expected_max_rows: expectedMaxRows,
  dry_run: dryRun,
});
const executeInput = z.object({
  sql: sqlText.describe(
    'Exactly one INSERT, UPDATE or DELETE statement (SQLite: also REPLACE; PostgreSQL: also MERGE)',
  ),
  params: sqlParams,
  expected_max_rows: expectedMaxRows.optional(),
  dry_run: dryRun,
});

/** Why the rows shown were cut (the change itself never is). */
function truncation(reason: TruncationReason, shown: number): string {
  switch (reason) {
    case 'max_rows':
      return `only the first ${count(shown, 'row')}, the most this tool returns`;
    case 'byte_budget':
      return `only the first ${count(shown, 'row')}, those that fit the result size budget (return fewer or shorter columns to see more)`;
    case 'cell_size':
      return 'long values shortened (marked with …)';
  }
}

/** A write's result and how it went, for the model. */
function answer(result: WriteResult, verb: string): ToolOutput<WriteResult> {
  const lines = [
    result.dry_run
      ? `Dry run: ${count(result.affected_rows, 'row')} would be ${verb}; nothing was changed.`
      : `${count(result.affected_rows, 'row')} ${verb}.`,
  ];
  const { rows, truncation_reason: reason } = result;
  if (rows && (rows.length > 0 || reason)) {
    const label = result.dry_run ? 'Preview' : 'Returned';
    lines.push(
      reason
        ? `${label} (TRUNCATED: ${truncation(reason, rows.length)}; the count above covers every row):`
        : `${label}:`,
      ...rows.map((r) => JSON.stringify(r)),
    );
  }
  return { data: result, text: lines.join('\n') };
}

/** The request of a change to the rows that match filters (update_rows, delete_rows). */
function filtered(input: z.infer<typeof deleteRowsInput>): DeleteRowsRequest {
  return {
    table: input.table,
    where: input.where,
    expectedMaxRows: input.expected_max_rows,
    dryRun: input.dry_run,
  };
}

/** Writing rows; never the schema. Every write is one transaction. */
@Injectable()
@RequireScopes(DATABASE_SCOPES.modify)
export class ModifyTools {
  constructor(private readonly database: DatabaseEngine) {}

  @McpTool({
    name: 'insert_rows',
    title: 'Insert rows',
    description:
      'Inserts 1 to 500 rows into one table in a single transaction (all or nothing). Columns are checked against the table; values are bound. returning gives the stored rows within the result size budget (truncated says when some were left out or shortened).',
    input: insertRowsInput,
    output: writeResult,
    annotations: { ...destructive, destructiveHint: false },
    audit: { table: 'table', rowCount: 'affected_rows' },
  })
  async insertRows(
    input: z.infer<typeof insertRowsInput>,
    context: ToolContext,
  ): Promise<ToolOutput<WriteResult>> {
    const request = { table: input.table, rows: input.rows, returning: input.returning };
    return answer(await this.database.insertRows(request, context.principal), 'inserted');
  }

  @McpTool({
    name: 'update_rows',
    title: 'Update rows',
    description:
      'Sets columns on the rows of one table that match every filter. If more than expected_max_rows rows would change, nothing changes. dry_run reports the count and a preview (at most 20 rows, within the result size budget).',
    input: updateRowsInput,
    output: writeResult,
    annotations: destructive,
    audit: { table: 'table', rowCount: 'affected_rows' },
  })
  async updateRows(
    input: z.infer<typeof updateRowsInput>,
    context: ToolContext,
  ): Promise<ToolOutput<WriteResult>> {
    const request = { ...filtered(input), set: input.set };
    return answer(await this.database.updateRows(request, context.principal), 'updated');
  }

  @McpTool({
    name: 'delete_rows',
    title: 'Delete rows',
    description:
      'Deletes the rows of one table that match every filter. If more than expected_max_rows rows would go, nothing is deleted. dry_run reports the count and a preview (at most 20 rows, within the result size budget).',
    input: deleteRowsInput,
    output: writeResult,
    annotations: destructive,
    audit: { table: 'table', rowCount: 'affected_rows' },
  })
  async deleteRows(
    input: z.infer<typeof deleteRowsInput>,
    context: ToolContext,
  ): Promise<ToolOutput<WriteResult>> {
    return answer(await this.database.deleteRows(filtered(input), context.principal), 'deleted');
  }

  @McpTool({
    name: 'execute',
    title: 'Change rows with SQL',
    description:
      'Runs exactly one INSERT, UPDATE or DELETE statement (SQLite: also REPLACE; PostgreSQL: also MERGE; RETURNING allowed) with bound parameters in a transaction. With expected_max_rows, a statement that would change more rows changes nothing. dry_run runs and rolls back. RETURNING rows come back within 500 rows and the result size budget, long values shortened (truncated and truncation_reason say so); the statement always runs in full. Schema changes are refused.',
    input: executeInput,
    output: writeResult,
    annotations: destructive,
    audit: { statement: 'sql', params: 'params', rowCount: 'affected_rows' },
  })
  async execute(
    input: z.infer<typeof executeInput>,
    context: ToolContext,
  ): Promise<ToolOutput<WriteResult>> {
    const request = {
      sql: input.sql,
      params: input.params,
      expectedMaxRows: input.expected_max_rows,
      dryRun: input.dry_run,
    };
    return answer(await this.database.execute(request, context.principal), 'affected');
  }
}
