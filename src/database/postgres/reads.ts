import type pg from 'pg';
import type { QueryRequest, ReadResult } from '../engine.js';
import { RowCollector, type SizeLimits } from '../result-rows.js';
import { SqlError } from '../sql-values.js';
import type { Deadline } from './deadline.js';
import { readStatementTransaction } from './session.js';
import { bindParams, runStatement } from './statement.js';
import { typeNames } from './values.js';

// Reads: one statement in a READ ONLY transaction that is always rolled back; PostgreSQL refuses
// any write (NOT_READ_ONLY). No more rows are fetched than fit the limits, plus one to know.

/** The caller's read, its rows (arrays, in column order) within the limits. */
export async function runQuery(
  client: pg.ClientBase,
  request: QueryRequest,
  limits: SizeLimits,
  deadline: Deadline,
): Promise<ReadResult> {
  const params = bindParams(request.params);
  const started = performance.now();
  return readStatementTransaction(client, deadline, async (prologue) => {
    const collector = new RowCollector<unknown[]>({ ...limits, maxRows: request.maxRows });
    const outcome = await runStatement<unknown[]>(
      client,
      request.sql,
      params,
      {
        rowMode: 'array',
        onRow: (row) => collector.add(row),
        drain: false,
        limit: request.maxRows + 1,
      },
      prologue,
    );
    // A statement that returns no rows (SET, LISTEN, PREPARE, ...) ran, and was undone.
    if (outcome.fields.length === 0 && outcome.command !== null && outcome.command !== 'SELECT')
      throw new SqlError(
        `query runs one statement that returns rows (SELECT, WITH ... SELECT, VALUES, TABLE, SHOW); this was ${outcome.command}, and it was rolled back. Changes go through execute.`,
        'NOT_READ_ONLY',
      );
    const names = await typeNames(
      client,
      outcome.fields.map((field) => field.dataTypeID),
    );
    const reason = collector.truncationReason;
    return {
      columns: outcome.fields.map((field) => ({
        name: field.name,
        type: names.get(field.dataTypeID) ?? null,
      })),
      rows: collector.rows,
      row_count: collector.rows.length,
      truncated: reason !== null,
      truncation_reason: reason,
      elapsed_ms: Math.round((performance.now() - started) * 100) / 100,
    };
  });
}
