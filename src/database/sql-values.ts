// Values, parameters and errors shared by every engine and by the tools.

export type SqlValue = string | number | boolean | null;
export type SqlParams = SqlValue[] | Record<string, SqlValue>;
export type Row = Record<string, unknown>;

/** A refusal or failure the caller can act on; `code` is ours or the database's. */
export class SqlError extends Error {
  override name = 'SqlError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}
