import pg from 'pg';
import { SqlError } from '../sql-values.js';
import type { Deadline } from './deadline.js';

// PostgreSQL's errors (SQLSTATE in `code`) as SqlErrors with our codes, where the same thing
// happens as in SQLite, and PG_<sqlstate> otherwise. Messages are PostgreSQL's own (which never
// carry connection settings) plus what the caller can do; a constraint's detail is kept only
// where it shows the caller's own row, never another row's values.

/** Constraint violations whose detail may show another row's values (an exclusion's conflict). */
const DETAIL_OF_OTHER_ROWS = new Set(['23P01']);

function withDetail(error: pg.DatabaseError): string {
  const detail = error.detail && !DETAIL_OF_OTHER_ROWS.has(error.code ?? '') ? error.detail : '';
  return detail ? `${error.message} (${detail})` : error.message;
}

/** The TIMEOUT error of a call whose deadline passed. */
export function timeoutError(deadline: Deadline): SqlError {
  return new SqlError(
    `The statement was cancelled after ${deadline.ms} ms (${deadline.source}); nothing was changed: narrow it (WHERE, LIMIT), aggregate, or allow more time.`,
    'TIMEOUT',
  );
}

/** A DatabaseError as a SqlError; anything else is returned as it is. */
export function toSqlError(error: unknown, deadline: Deadline): unknown {
  if (!(error instanceof pg.DatabaseError) || error.code === undefined) return error;
  const { code, message } = error;
  const fail = (text: string, ours: string) => new SqlError(text, ours);
  switch (code) {
    case '25006':
      return fail(
        `${message}: this tool runs read-only statements; changes go through execute (rows) or apply_migration (schema).`,
        'NOT_READ_ONLY',
      );
    case '57014':
      // A statement_timeout, or a cancel from elsewhere (our own backstop says TIMEOUT itself).
      return /statement timeout/.test(message)
        ? timeoutError(deadline)
        : fail(`${message}; nothing was changed.`, 'CANCELLED');
    case '55P03':
      return fail(
        `Waited for a lock another transaction holds until close to the deadline of ${deadline.ms} ms (${deadline.source}): ${message}; nothing was changed. Try again shortly.`,
        'TIMEOUT',
      );
    case '25P03':
      return fail(
        `The transaction was idle longer than ${deadline.ms} ms (${deadline.source}) and the database ended it; nothing was changed.`,
        'TIMEOUT',
      );
    case '42501':
      return fail(message, 'PERMISSION_DENIED');
    case '42P01':
      return fail(`${message}; list_tables shows the tables.`, 'UNKNOWN_TABLE');
    case '42703':
      return fail(`${message}; describe_table lists the columns.`, 'UNKNOWN_COLUMN');
    case '42601':
      return /multiple commands/.test(message)
        ? fail('Exactly one SQL statement is allowed; remove the others.', 'MULTIPLE_STATEMENTS')
        : fail(message, 'SYNTAX_ERROR');
    case '42P18':
      return fail(
        `${message}: cast the placeholder to its type (e.g. $1::integer).`,
        'INVALID_PARAMS',
      );
    case '08P01':
      // The protocol's own check: the number of values differs from the placeholders ($1..$n).
      return /bind message/.test(message)
        ? fail(`${message} (params bind to $1..$n in order).`, 'INVALID_PARAMS')
        : fail(message, `PG_${code}`);
    case '53200':
      return fail(`${message}: narrow the statement or aggregate.`, 'MEMORY_LIMIT');
  }
  if (code.startsWith('23')) return fail(withDetail(error), 'CONSTRAINT');
  if (code.startsWith('53') || code.startsWith('54'))
    return fail(`${message}: the statement exceeded a database limit.`, 'RESOURCE_LIMIT');
  return fail(message, `PG_${code}`);
}
