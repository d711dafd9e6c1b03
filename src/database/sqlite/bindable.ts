import type { SqlParams, SqlValue } from '../sql-values.js';

/** better-sqlite3 binds booleans only as numbers; everything else binds as is. */
export function bindable(params: SqlParams | undefined): unknown[] {
  if (params === undefined) return [];
  const convert = (value: SqlValue) => (typeof value === 'boolean' ? Number(value) : value);
  if (Array.isArray(params)) return params.map(convert);
  return [Object.fromEntries(Object.entries(params).map(([key, value]) => [key, convert(value)]))];
}
