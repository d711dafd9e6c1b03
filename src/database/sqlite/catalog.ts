import type Database from 'better-sqlite3';
import type { TableList, TableType } from '../engine.js';
import { SCOPEDB_TABLE_NAMES } from '../internal-tables.js';
import { SqlError } from '../sql-values.js';

// The catalog: which tables and views a caller may name, and their columns.

/** An identifier quoted for SQLite; only ever called with names taken from the catalog. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export interface CatalogEntry {
  name: string;
  type: TableType;
}

/** Tables and views, ScopeDB's own left out. */
export function catalog(db: Database.Database): CatalogEntry[] {
  return db
    .prepare<[], CatalogEntry>(
      "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .all()
    .filter((entry) => !SCOPEDB_TABLE_NAMES.includes(entry.name.toLowerCase()));
}

/** SQL LIKE semantics (case-insensitive, % and _) for filtering names without SQL. */
function likePattern(pattern: string): RegExp {
  const body = [...pattern]
    .map((c) => (c === '%' ? '.*' : c === '_' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 'is');
}

export function listTables(
  db: Database.Database,
  pattern: string | undefined,
  includeViews: boolean,
): TableList {
  const matches = pattern === undefined ? undefined : likePattern(pattern);
  const tables = catalog(db)
    .filter((entry) => includeViews || entry.type === 'table')
    .filter((entry) => !matches || matches.test(entry.name))
    .map(({ name, type }) => ({
      name,
      type,
      row_estimate:
        type === 'table'
          ? db
              .prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${quoteIdentifier(name)}`)
              .get()!.n
          : null,
    }));
  return { tables };
}

/** A table of the catalog by exact name, with its columns; refuses anything else. */
export function tableOf(
  db: Database.Database,
  name: string,
  kind: 'table' | 'table or view',
): { name: string; columns: Set<string> } {
  const entry = catalog(db).find((candidate) => candidate.name === name);
  if (!entry || (kind === 'table' && entry.type !== 'table'))
    throw new SqlError(
      `No ${kind} is named ${JSON.stringify(name)}; list_tables shows them.`,
      'UNKNOWN_TABLE',
    );
  const columns = db
    .prepare<[string], { name: string }>('SELECT name FROM pragma_table_xinfo(?)')
    .all(entry.name)
    .map((column) => column.name);
  return { name: entry.name, columns: new Set(columns) };
}

export function checkColumn(table: { name: string; columns: Set<string> }, column: string): string {
  if (!table.columns.has(column))
    throw new SqlError(
      `Table ${table.name} has no column ${JSON.stringify(column)}; describe_table lists them.`,
      'UNKNOWN_COLUMN',
    );
  return quoteIdentifier(column);
}
