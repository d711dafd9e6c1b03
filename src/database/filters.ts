import type { Filter } from './engine.js';
import { SqlError, type SqlValue } from './sql-values.js';

// The WHERE clause of update_rows and delete_rows, for every engine: each filter is checked here
// once; the engine names the column (checked against its catalog, quoted) and binds the values.

export interface FilterDialect {
  /** The column, checked against the table and quoted; throws UNKNOWN_COLUMN otherwise. */
  column(name: string): string;
  /** Binds a value; its placeholder. */
  value(value: SqlValue): string;
  /** `column IN` the values, bound. */
  in(column: string, values: SqlValue[]): string;
}

const COMPARISONS = new Set(['=', '!=', '<', '<=', '>', '>=']);

/** The filters joined with AND (at least one); every value bound through the dialect. */
export function whereClause(filters: Filter[], dialect: FilterDialect): string {
  if (filters.length === 0)
    throw new SqlError('At least one filter is required.', 'FILTER_REQUIRED');
  return filters
    .map((filter) => {
      const column = dialect.column(filter.column);
      const { value } = filter;
      if (filter.op === 'is_null') {
        if (value !== undefined && typeof value !== 'boolean')
          throw new SqlError('is_null takes no value, or true/false.', 'INVALID_FILTER');
        return `${column} IS ${value === false ? 'NOT ' : ''}NULL`;
      }
      if (filter.op === 'in') {
        if (!Array.isArray(value) || value.length === 0)
          throw new SqlError(`"in" on ${filter.column} needs a non-empty array.`, 'INVALID_FILTER');
        return dialect.in(column, value);
      }
      if (value === undefined || value === null || Array.isArray(value))
        throw new SqlError(
          `"${filter.op}" on ${filter.column} needs one non-null value (use is_null for NULL).`,
          'INVALID_FILTER',
        );
      if (filter.op === 'like') {
        if (typeof value !== 'string')
          throw new SqlError(
            `"like" on ${filter.column} needs a string pattern.`,
            'INVALID_FILTER',
          );
        return `${column} LIKE ${dialect.value(value)}`;
      }
      if (!COMPARISONS.has(filter.op))
        throw new SqlError(
          `Unknown filter operator ${JSON.stringify(filter.op)}.`,
          'INVALID_FILTER',
        );
      return `${column} ${filter.op} ${dialect.value(value)}`;
    })
    .join(' AND ');
}
