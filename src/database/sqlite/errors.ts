// Values, parameters and errors shared by every part of the SQLite engine.

export type SqlValue = string | number | boolean | null;
export type SqlParams = SqlValue[] | Record<string, SqlValue>;
export type Row = Record<string, unknown>;

/** A refusal or failure the caller can act on; `code` is ours or SQLite's. */
export class SqlError extends Error {
  override name = 'SqlError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** better-sqlite3 binds booleans only as numbers; everything else binds as is. */
export function bindable(params: SqlParams | undefined): unknown[] {
  if (params === undefined) return [];
  const convert = (value: SqlValue) => (typeof value === 'boolean' ? Number(value) : value);
  if (Array.isArray(params)) return params.map(convert);
  return [Object.fromEntries(Object.entries(params).map(([key, value]) => [key, convert(value)]))];
}
