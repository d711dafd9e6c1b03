import type pg from 'pg';
import Cursor from 'pg-cursor';
import { type SqlParams, SqlError, type SqlValue } from '../sql-values.js';
import { resultTypes } from './values.js';

// The only way caller SQL reaches PostgreSQL: one statement through the extended protocol
// (Parse/Bind/Describe/Execute of the unnamed statement, via pg-cursor; never the simple
// protocol, never a named prepared statement), so PostgreSQL itself refuses a second statement
// ("cannot insert multiple commands into a prepared statement"). Values are bound, never pasted.
// Rows are fetched in batches: memory holds one batch, whatever the statement returns.

const FIRST_BATCH = 20;
const MAX_BATCH = 1000;

/**
 * The caller's params for $1..$n: PostgreSQL's own placeholders, bound in order; an object
 * (named placeholders) is refused: PostgreSQL has none.
 */
export function bindParams(params: SqlParams | undefined): SqlValue[] {
  if (params === undefined) return [];
  if (!Array.isArray(params))
    throw new SqlError(
      'PostgreSQL has no named placeholders: write $1, $2, ... in the SQL and give params as an array ($1 is params[0]).',
      'INVALID_PARAMS',
    );
  return params;
}

/** pg's connection, as a COPY's messages reach the active query. */
interface CopyConnection {
  sendCopyFail(message: string): void;
}

/**
 * pg-cursor with COPY refused: pg's Client hands COPY messages to the active query, and
 * pg-cursor has no handlers for them (the TypeError would crash the process).
 */
class CallerCursor<R> extends Cursor<R> {
  copy = false;

  handleCopyInResponse(connection: CopyConnection): void {
    this.copy = true;
    connection.sendCopyFail('COPY is not available through the database tools');
  }

  handleCopyData(): void {
    this.copy = true; // COPY TO STDOUT's data: dropped; the statement is refused at its end
  }
}

export interface StatementOutcome {
  fields: pg.FieldDef[];
  /** The command tag's verb (SELECT, INSERT, ...); null when the statement was left unfinished. */
  command: string | null;
  /** Rows the statement processed (the command tag's count), when it finished. */
  rowCount: number | null;
  /** Rows it returned (all of them with drain). */
  rows: number;
}

export interface StatementOptions<R> {
  rowMode?: 'array';
  /** Called for each row read while rows are wanted; returns false when no more are. */
  onRow(row: R): boolean;
  /**
   * Without drain, reading stops (the portal is closed) once onRow declines a row or `limit`
   * rows were read. With it, the statement is read to its end (for its row count), rows no
   * longer wanted are not parsed.
   */
  drain: boolean;
  limit: number;
}

function readBatch<R>(
  cursor: Cursor<R>,
  count: number,
): Promise<{ rows: R[]; result: pg.QueryResult }> {
  return new Promise((resolve, reject) => {
    cursor.read(count, (error, rows, result) =>
      error ? reject(error) : resolve({ rows, result }),
    );
  });
}

const copyRefusal = () =>
  new SqlError(
    'COPY is not available through the database tools: read with query (SELECT) and write with execute or insert_rows; nothing was changed.',
    'COPY_NOT_ALLOWED',
  );

/** Runs the caller's statement inside the call's transaction (session.ts); see StatementOptions. */
export async function runStatement<R>(
  client: pg.ClientBase,
  sql: string,
  params: unknown[],
  options: StatementOptions<R>,
): Promise<StatementOutcome> {
  let wanted = true;
  const cursor = client.query(
    new CallerCursor<R>(sql, params, {
      rowMode: options.rowMode,
      types: resultTypes(() => !wanted),
    }),
  );
  let read = 0;
  let batch = Math.min(FIRST_BATCH, options.limit);
  let outcome: StatementOutcome;
  try {
    for (;;) {
      const { rows, result } = await readBatch(cursor, batch);
      for (const row of rows) if (wanted) wanted = options.onRow(row);
      read += rows.length;
      if (rows.length < batch) {
        if (result.command === null)
          throw new SqlError('The SQL has no statement (only blanks or comments).', 'EMPTY_SQL');
        outcome = {
          fields: result.fields,
          command: result.command,
          rowCount: result.rowCount,
          rows: read,
        };
        break;
      }
      if (!options.drain && (!wanted || read >= options.limit)) {
        await cursor.close();
        outcome = { fields: result.fields, command: null, rowCount: null, rows: read };
        break;
      }
      batch = Math.min(batch * 2, MAX_BATCH, options.drain ? MAX_BATCH : options.limit - read);
    }
  } catch (error) {
    throw cursor.copy ? copyRefusal() : error;
  }
  if (cursor.copy) throw copyRefusal();
  if (client.getTransactionStatus() === 'I')
    throw new SqlError(
      `Transaction control (${outcome.command ?? 'COMMIT, ROLLBACK'}) is not allowed: each call runs in a transaction of its own.`,
      'TRANSACTION_CONTROL',
    );
  return outcome;
}
