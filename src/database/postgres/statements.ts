import { SqlError } from '../sql-values.js';

// PostgreSQL's lexical rules, as far as splitting a migration script needs them: each statement
// then runs alone through the extended protocol (which refuses two commands in one), inside the
// migration's transaction.

/** Where a token that hides semicolons ends, or -1 for none at `at`. */
function skipQuoted(sql: string, at: number): number {
  const c = sql[at];
  const next = sql[at + 1];
  if (c === '-' && next === '-') {
    const end = sql.indexOf('\n', at);
    return end < 0 ? sql.length : end + 1;
  }
  if (c === '/' && next === '*') {
    // Block comments nest in PostgreSQL.
    let depth = 1;
    let i = at + 2;
    while (i < sql.length && depth > 0) {
      if (sql.startsWith('/*', i)) {
        depth++;
        i += 2;
      } else if (sql.startsWith('*/', i)) {
        depth--;
        i += 2;
      } else i++;
    }
    if (depth > 0) throw unterminated('comment');
    return i;
  }
  if (c === "'" || c === '"') {
    // E'...' strings take backslash escapes; a doubled quote is one quote in every kind.
    const escapes =
      c === "'" && at > 0 && /[eE]/.test(sql[at - 1]) && !/\w/.test(sql[at - 2] ?? '');
    let i = at + 1;
    while (i < sql.length) {
      if (escapes && sql[i] === '\\') i += 2;
      else if (sql[i] === c && sql[i + 1] === c) i += 2;
      else if (sql[i] === c) return i + 1;
      else i++;
    }
    throw unterminated(c === "'" ? 'string' : 'quoted identifier');
  }
  if (c === '$' && !/[\w$]/.test(sql[at - 1] ?? '')) {
    const tag = /^\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/.exec(sql.slice(at))?.[0];
    if (tag === undefined) return -1;
    const end = sql.indexOf(tag, at + tag.length);
    if (end < 0) throw unterminated(`${tag}-quoted string`);
    return end + tag.length;
  }
  return -1;
}

function unterminated(what: string): SqlError {
  return new SqlError(`The SQL has an unterminated ${what}.`, 'SQL_ERROR');
}

/** The statements of a script, without empty ones (comments and whitespace alone). */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  while (i < sql.length) {
    const skipped = skipQuoted(sql, i);
    if (skipped >= 0) i = skipped;
    else if (sql[i] === ';') {
      statements.push(sql.slice(start, i));
      start = ++i;
    } else i++;
  }
  statements.push(sql.slice(start));
  return statements.filter((statement) => firstWord(statement) !== '');
}

/** The statement's first keyword, upper case, past comments and whitespace ('' for none). */
export function firstWord(statement: string): string {
  let i = 0;
  while (i < statement.length) {
    if (/\s/.test(statement[i])) i++;
    else if (statement.startsWith('--', i) || statement.startsWith('/*', i))
      i = skipQuoted(statement, i);
    else break;
  }
  return /^[A-Za-z_]+/.exec(statement.slice(i))?.[0].toUpperCase() ?? '';
}

/**
 * Statements that end or split the migration's transaction. PostgreSQL would run them inside it
 * (COMMIT would commit the statements before it, and the rest would run outside), so they are
 * refused before anything runs. CALL and DO cannot commit inside a transaction block: PostgreSQL
 * refuses that itself.
 */
export const TRANSACTION_CONTROL = new Set([
  'BEGIN',
  'START',
  'COMMIT',
  'END',
  'ROLLBACK',
  'ABORT',
  'SAVEPOINT',
  'RELEASE',
  'PREPARE',
]);
