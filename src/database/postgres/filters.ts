import type pg from 'pg';
import type { Filter } from '../engine.js';
import { whereClause as where } from '../filters.js';
import type { SqlValue } from '../sql-values.js';
import { checkColumn, type Relation } from './catalog.js';

// WHERE clauses of update_rows and delete_rows: columns checked against the catalog and quoted
// by the driver, values always bound ($n, numbered from `first`).

export function whereClause(
  client: pg.ClientBase,
  relation: Relation,
  filters: Filter[],
  first: number,
): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const bind = (value: SqlValue | SqlValue[]) => `$${first + params.push(value) - 1}`;
  const sql = where(filters, {
    column: (name) => checkColumn(client, relation, name),
    value: bind,
    in: (column, values) => `${column} = ANY(${bind(values)})`,
  });
  return { sql, params };
}
