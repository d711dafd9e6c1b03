import type pg from 'pg';
import type { Filter } from '../engine.js';
import { SqlError, type SqlValue } from '../sql-values.js';
import { checkColumn, type Relation } from './catalog.js';

// WHERE clauses of update_rows and delete_rows: columns checked against the catalog and quoted
// by the driver, values always bound ($n, numbered from `first`).

const COMPARISONS = new Set(['=', '!=', '<', '<=', '>', '>=']);

export function whereClause(
  client: pg.ClientBase,
  relation: Relation,
  filters: Filter[],
  first: number,
): { sql: string; params: unknown[] } {
  if (filters.length === 0)
    throw new SqlError('At least one filter is required.', 'FILTER_REQUIRED');
  const params: unknown[] = [];
  const bind = (value: SqlValue | SqlValue[]) => `$${first + params.push(value) - 1}`;
  const parts = filters.map((filter) => {
    const column = checkColumn(client, relation, filter.column);
    const { value } = filter;
    if (filter.op === 'is_null') {
      if (value !== undefined && typeof value !== 'boolean')
        throw new SqlError('is_null takes no value, or true/false.', 'INVALID_FILTER');
      return `${column} IS ${value === false ? 'NOT ' : ''}NULL`;
    }
    if (filter.op === 'in') {
      if (!Array.isArray(value) || value.length === 0)
        throw new SqlError(`"in" on ${filter.column} needs a non-empty array.`, 'INVALID_FILTER');
      return `${column} = ANY(${bind(value)})`;
    }
    if (value === undefined || value === null || Array.isArray(value))
      throw new SqlError(
        `"${filter.op}" on ${filter.column} needs one non-null value (use is_null for NULL).`,
        'INVALID_FILTER',
      );
    if (filter.op === 'like') {
      if (typeof value !== 'string')
        throw new SqlError(`"like" on ${filter.column} needs a string pattern.`, 'INVALID_FILTER');
      return `${column} LIKE ${bind(value)}`;
    }
    if (!COMPARISONS.has(filter.op))
      throw new SqlError(`Unknown filter operator ${JSON.stringify(filter.op)}.`, 'INVALID_FILTER');
    return `${column} ${filter.op} ${bind(value)}`;
  });
  return { sql: parts.join(' AND '), params };
}
