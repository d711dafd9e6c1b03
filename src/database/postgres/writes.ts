import type pg from 'pg';
import type {
  DeleteRowsRequest,
  ExecuteRequest,
  InsertRowsRequest,
  UpdateRowsRequest,
  WriteResult,
} from '../engine.js';
import { type ResultLimits, RowCollector, type SizeLimits } from '../result-rows.js';
import { type Row, SqlError } from '../sql-values.js';
import { checkColumn, qualified, type Relation, tableFor } from './catalog.js';
import { whereClause } from './filters.js';
import type { Deadline } from './deadline.js';
import { writeTransaction } from './session.js';
import { bindParams, runStatement } from './statement.js';

// Writes: rows changed in one READ WRITE transaction per call, under the write deadline. What a
// statement is, PostgreSQL says: its command tag. Anything but INSERT, UPDATE, DELETE or MERGE
// (a SELECT, DDL, DO, CALL, ...) ran inside the transaction and is rolled back: NOT_A_WRITE. (A
// sequence's nextval/setval is never transactional in PostgreSQL: that alone survives.)

const WRITE_COMMANDS = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);
/** Most rows execute and insert_rows return. */
const RETURNED_ROWS = 500;
/** Most rows a dry run of update_rows or delete_rows previews. */
const PREVIEW_ROWS = 20;
/** PostgreSQL's limit of bound values in one statement. */
const MAX_PARAMS = 65_535;
const MAX_ROWS_PER_INSERT = 1000;

function returned(
  collector: RowCollector<Row>,
): Required<Pick<WriteResult, 'rows' | 'truncated' | 'truncation_reason'>> {
  const reason = collector.truncationReason;
  return { rows: collector.rows, truncated: reason !== null, truncation_reason: reason };
}

/**
 * One statement in the open transaction, read to its end (for its row count); of the rows it
 * returns, those within `collector` are kept.
 */
async function run(
  client: pg.ClientBase,
  sql: string,
  params: unknown[],
  collector: RowCollector<Row> | undefined,
): Promise<{ command: string | null; affected: number }> {
  const outcome = await runStatement<Row>(client, sql, params, {
    onRow: (row) => collector?.add(row) ?? false,
    drain: true,
    limit: Infinity,
  });
  // With RETURNING, the rows it returned: PostgreSQL's tag counts only the last fetch's rows.
  const affected = outcome.fields.length > 0 ? outcome.rows : (outcome.rowCount ?? 0);
  return { command: outcome.command, affected };
}

/**
 * A change in its own transaction: the statement (built inside it, after the catalog look-up)
 * is rolled back when it is not a row change, when it changes more rows than expected (saying
 * how many), or on a dry run. Of the rows it returns, those within `returned` are kept.
 */
function change(
  client: pg.ClientBase,
  statement: () => Promise<{ sql: string; params: unknown[] }>,
  options: { expectedMaxRows?: number; dryRun: boolean; returned?: ResultLimits },
  deadline: Deadline,
): Promise<WriteResult> {
  return writeTransaction(
    client,
    deadline,
    async () => {
      const { sql, params } = await statement();
      const collector = options.returned && new RowCollector<Row>(options.returned);
      const { command, affected } = await run(client, sql, params, collector);
      if (command === null || !WRITE_COMMANDS.has(command))
        throw new SqlError(
          `execute runs exactly one INSERT, UPDATE, DELETE or MERGE statement; this was ${command ?? 'not one'}, and it was rolled back. Use query to read; schema changes go through apply_migration (db:admin).`,
          'NOT_A_WRITE',
        );
      if (options.expectedMaxRows !== undefined && affected > options.expectedMaxRows)
        throw new SqlError(
          `The change would affect ${affected} rows, more than expected_max_rows=${options.expectedMaxRows}; nothing was changed.`,
          'TOO_MANY_ROWS',
        );
      return {
        affected_rows: affected,
        dry_run: options.dryRun,
        ...(collector && returned(collector)),
        last_insert_rowid: null,
      };
    },
    { commit: !options.dryRun },
  );
}

/** One INSERT, UPDATE, DELETE or MERGE of the caller's (WITH ... and RETURNING allowed). */
export function execute(
  client: pg.ClientBase,
  request: ExecuteRequest,
  limits: SizeLimits,
  deadline: Deadline,
): Promise<WriteResult> {
  const params = bindParams(request.params);
  return change(
    client,
    () => Promise.resolve({ sql: request.sql, params }),
    {
      expectedMaxRows: request.expectedMaxRows,
      dryRun: request.dryRun,
      returned: { ...limits, maxRows: RETURNED_ROWS },
    },
    deadline,
  );
}

function checkValue(column: string, value: unknown): unknown {
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return value;
  throw new SqlError(
    `The value of ${column} must be a string, number, boolean or null.`,
    'INVALID_VALUE',
  );
}

/** Runs of consecutive rows with the same columns, at most as many as one INSERT may bind. */
function batches(rows: Row[]): { names: string[]; rows: Row[] }[] {
  const runs: { names: string[]; rows: Row[] }[] = [];
  for (const row of rows) {
    const names = Object.keys(row);
    const last = runs.at(-1);
    const fits =
      last !== undefined &&
      names.length > 0 &&
      JSON.stringify(last.names) === JSON.stringify(names) &&
      last.rows.length < Math.min(MAX_ROWS_PER_INSERT, Math.floor(MAX_PARAMS / names.length));
    if (fits) last.rows.push(row);
    else runs.push({ names, rows: [row] });
  }
  return runs;
}

function insertSql(
  client: pg.ClientBase,
  relation: Relation,
  names: string[],
  count: number,
  returning: boolean,
): string {
  const target = qualified(client, relation);
  const tail = returning ? ' RETURNING *' : '';
  if (names.length === 0) return `INSERT INTO ${target} DEFAULT VALUES${tail}`;
  const columns = names.map((name) => checkColumn(client, relation, name));
  const tuples = Array.from(
    { length: count },
    (_, row) => `(${names.map((_, column) => `$${row * names.length + column + 1}`).join(', ')})`,
  );
  return `INSERT INTO ${target} (${columns.join(', ')}) VALUES ${tuples.join(', ')}${tail}`;
}

/**
 * Rows into one table, in one transaction; columns checked against the catalog, values bound.
 * With returning, the inserted rows as they were stored, within the limits.
 */
export function insertRows(
  client: pg.ClientBase,
  request: InsertRowsRequest,
  limits: SizeLimits,
  deadline: Deadline,
): Promise<WriteResult> {
  const collector = request.returning
    ? new RowCollector<Row>({ ...limits, maxRows: RETURNED_ROWS })
    : undefined;
  return writeTransaction(
    client,
    deadline,
    async () => {
      const relation = await tableFor(client, request.table);
      let inserted = 0;
      for (const batch of batches(request.rows)) {
        const sql = insertSql(client, relation, batch.names, batch.rows.length, request.returning);
        const values = batch.rows.flatMap((row) =>
          batch.names.map((name) => checkValue(name, row[name])),
        );
        inserted += (await run(client, sql, values, collector)).affected;
      }
      return { affected_rows: inserted, dry_run: false, ...(collector && returned(collector)) };
    },
    { commit: true },
  );
}

/** A dry run shows the first rows it would change; a real update or delete returns none. */
function preview(dryRun: boolean, limits: SizeLimits): ResultLimits | undefined {
  return dryRun ? { ...limits, maxRows: PREVIEW_ROWS } : undefined;
}

export function updateRows(
  client: pg.ClientBase,
  request: UpdateRowsRequest,
  limits: SizeLimits,
  deadline: Deadline,
): Promise<WriteResult> {
  const names = Object.keys(request.set);
  if (names.length === 0) throw new SqlError('set needs at least one column.', 'INVALID_VALUE');
  const values = names.map((name) => checkValue(name, request.set[name]));
  return changeOf(client, request, limits, deadline, (relation) => {
    const assignments = names.map(
      (name, i) => `${checkColumn(client, relation, name)} = $${i + 1}`,
    );
    const filter = whereClause(client, relation, request.where, values.length + 1);
    return {
      sql: `UPDATE ${qualified(client, relation)} SET ${assignments.join(', ')} WHERE ${filter.sql}`,
      params: [...values, ...filter.params],
    };
  });
}

export function deleteRows(
  client: pg.ClientBase,
  request: DeleteRowsRequest,
  limits: SizeLimits,
  deadline: Deadline,
): Promise<WriteResult> {
  return changeOf(client, request, limits, deadline, (relation) => {
    const filter = whereClause(client, relation, request.where, 1);
    return {
      sql: `DELETE FROM ${qualified(client, relation)} WHERE ${filter.sql}`,
      params: filter.params,
    };
  });
}

/**
 * update_rows and delete_rows: the statement built for the table (resolved in the transaction),
 * with RETURNING * on a dry run only (its preview).
 */
function changeOf(
  client: pg.ClientBase,
  request: { table: string; expectedMaxRows: number; dryRun: boolean },
  limits: SizeLimits,
  deadline: Deadline,
  build: (relation: Relation) => { sql: string; params: unknown[] },
): Promise<WriteResult> {
  const returned = preview(request.dryRun, limits);
  const statement = async () => {
    const { sql, params } = build(await tableFor(client, request.table));
    return { sql: returned ? `${sql} RETURNING *` : sql, params };
  };
  return change(client, statement, { ...request, returned }, deadline);
}
