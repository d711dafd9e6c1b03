import type Database from 'better-sqlite3';
import { checkColumn, quoteIdentifier, tableOf } from './catalog.js';
import type { Filter, WriteResult } from '../engine.js';
import { whereClause as where } from '../filters.js';
import { bindable } from './bindable.js';
import { type Row, type SqlParams, SqlError, type SqlValue } from '../sql-values.js';
import { type ResultLimits, RowCollector, type SizeLimits } from '../result-rows.js';
import { guardBuiltWrite, guardWrite } from './statement-guard.js';

// Writes: rows changed in one transaction each, never the schema. Every transaction starts with
// BEGIN IMMEDIATE: it takes the write lock before reading, so busy_timeout applies. (A deferred
// transaction that has read cannot wait when it upgrades: SQLite answers SQLITE_BUSY at once.)

/** A WHERE clause from filters: columns checked against the catalog, values always bound. */
function whereClause(
  table: { name: string; columns: Set<string> },
  filters: Filter[],
): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const bind = (value: SqlValue) => {
    params.push(typeof value === 'boolean' ? Number(value) : value);
    return '?';
  };
  const sql = where(filters, {
    column: (name) => checkColumn(table, name),
    value: bind,
    in: (column, values) => `${column} IN (${values.map(bind).join(', ')})`,
  });
  return { sql, params };
}

/** Most rows execute and insert_rows return. */
const RETURNED_ROWS = 500;
/** Most rows a dry run of update_rows or delete_rows previews. */
const PREVIEW_ROWS = 20;

/** A dry run shows the first rows it would change; a real update or delete returns none. */
function preview(options: { dryRun: boolean; limits: SizeLimits }): ResultLimits | undefined {
  return options.dryRun ? { ...options.limits, maxRows: PREVIEW_ROWS } : undefined;
}

/** The rows a collector kept, and whether (and why) some were cut. */
function returned(
  collector: RowCollector<Row>,
): Required<Pick<WriteResult, 'rows' | 'truncated' | 'truncation_reason'>> {
  const reason = collector.truncationReason;
  return { rows: collector.rows, truncated: reason !== null, truncation_reason: reason };
}

/**
 * Runs a change in a transaction: rolled back when it changes more rows than expected (saying
 * how many it would have), when it is a dry run, or when it touched the schema. The statement
 * always runs to its end; of the rows it returns, only those within `returned` are kept (none
 * without it).
 */
function change(
  db: Database.Database,
  statement: Database.Statement<unknown[]>,
  params: unknown[],
  options: { expectedMaxRows?: number; dryRun: boolean; returned?: ResultLimits },
): WriteResult {
  const rollback = new Error('rollback');
  let result: WriteResult | undefined;
  const schemaVersion = () => db.pragma('schema_version', { simple: true }) as number;
  const lastRowid = () =>
    db.prepare<[], { id: number }>('SELECT last_insert_rowid() AS id').get()!.id;
  try {
    db.transaction(() => {
      const before = schemaVersion();
      const rowidBefore = lastRowid();
      let collector: RowCollector<Row> | undefined;
      let affected: number;
      if (statement.reader) {
        collector = options.returned && new RowCollector<Row>(options.returned);
        let keeping = collector !== undefined;
        for (const row of statement.iterate(...params) as IterableIterator<Row>)
          if (keeping) keeping = collector!.add(row);
        affected = db.prepare<[], { n: number }>('SELECT changes() AS n').get()!.n;
      } else {
        affected = statement.run(...params).changes;
      }
      if (schemaVersion() !== before)
        throw new SqlError(
          'The statement changed the schema; use apply_migration (db:admin).',
          'SCHEMA_CHANGE',
        );
      if (options.expectedMaxRows !== undefined && affected > options.expectedMaxRows)
        throw new SqlError(
          `The change would affect ${affected} rows, more than expected_max_rows=${options.expectedMaxRows}; nothing was changed.`,
          'TOO_MANY_ROWS',
        );
      const rowidAfter = lastRowid();
      result = {
        affected_rows: affected,
        dry_run: options.dryRun,
        ...(collector && returned(collector)),
        // Only a statement that inserted moves last_insert_rowid (UPDATE and DELETE leave it).
        last_insert_rowid: rowidAfter !== rowidBefore ? rowidAfter : null,
      };
      if (options.dryRun) throw rollback;
    }).immediate();
  } catch (error) {
    if (error !== rollback) throw error;
  }
  return result!;
}

/** One INSERT, UPDATE, DELETE or REPLACE (optionally RETURNING); never a schema change. */
export function execute(
  db: Database.Database,
  sql: string,
  params: SqlParams | undefined,
  options: { expectedMaxRows?: number; dryRun: boolean; limits: SizeLimits },
): WriteResult {
  const bound = bindable(params);
  const statement = guardWrite(db, sql, bound);
  return change(db, statement, bound, {
    ...options,
    returned: { ...options.limits, maxRows: RETURNED_ROWS },
  });
}

function checkValue(column: string, value: unknown): unknown {
  if (value === null || ['string', 'number'].includes(typeof value)) return value;
  if (typeof value === 'boolean') return Number(value);
  throw new SqlError(
    `The value of ${column} must be a string, number, boolean or null.`,
    'INVALID_VALUE',
  );
}

/**
 * Rows into one table, in one transaction; columns checked against the catalog. With returning,
 * the inserted rows as they were stored, within the limits.
 */
export function insertRows(
  db: Database.Database,
  tableName: string,
  rows: Row[],
  options: { returning: boolean; limits: SizeLimits },
): WriteResult {
  const table = tableOf(db, tableName, 'table');
  const { returning } = options;
  const collector = returning
    ? new RowCollector<Row>({ ...options.limits, maxRows: RETURNED_ROWS })
    : undefined;
  let keeping = returning;
  let inserted = 0;
  db.transaction(() => {
    const statements = new Map<string, Database.Statement<unknown[]>>();
    for (const row of rows) {
      const names = Object.keys(row);
      const values = names.map((name) => checkValue(name, row[name]));
      const key = JSON.stringify(names);
      let statement = statements.get(key);
      if (!statement) {
        const columns = names.map((name) => checkColumn(table, name));
        const target = quoteIdentifier(table.name);
        statement = guardBuiltWrite(
          db,
          names.length === 0
            ? `INSERT INTO ${target} DEFAULT VALUES${returning ? ' RETURNING *' : ''}`
            : `INSERT INTO ${target} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})${returning ? ' RETURNING *' : ''}`,
          values,
        );
        statements.set(key, statement);
      }
      if (returning) {
        for (const stored of statement.iterate(...values) as IterableIterator<Row>)
          if (keeping) keeping = collector!.add(stored);
      } else statement.run(...values);
      inserted++;
    }
  }).immediate();
  return { affected_rows: inserted, dry_run: false, ...(collector && returned(collector)) };
}

export function updateRows(
  db: Database.Database,
  tableName: string,
  set: Row,
  where: Filter[],
  options: { expectedMaxRows: number; dryRun: boolean; limits: SizeLimits },
): WriteResult {
  const table = tableOf(db, tableName, 'table');
  const names = Object.keys(set);
  if (names.length === 0) throw new SqlError('set needs at least one column.', 'INVALID_VALUE');
  const assignments = names.map((name) => `${checkColumn(table, name)} = ?`);
  const values = names.map((name) => checkValue(name, set[name]));
  const filter = whereClause(table, where);
  const params = [...values, ...filter.params];
  const statement = guardBuiltWrite(
    db,
    `UPDATE ${quoteIdentifier(table.name)} SET ${assignments.join(', ')} WHERE ${filter.sql} RETURNING *`,
    params,
  );
  return change(db, statement, params, { ...options, returned: preview(options) });
}

export function deleteRows(
  db: Database.Database,
  tableName: string,
  where: Filter[],
  options: { expectedMaxRows: number; dryRun: boolean; limits: SizeLimits },
): WriteResult {
  const table = tableOf(db, tableName, 'table');
  const filter = whereClause(table, where);
  const statement = guardBuiltWrite(
    db,
    `DELETE FROM ${quoteIdentifier(table.name)} WHERE ${filter.sql} RETURNING *`,
    filter.params,
  );
  return change(db, statement, filter.params, { ...options, returned: preview(options) });
}
