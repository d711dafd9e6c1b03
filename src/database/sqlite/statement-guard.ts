import { types } from 'node:util';
import type Database from 'better-sqlite3';
import { leadingKeyword, stripLeadingComments } from '../sql-statements.js';
import { SqlError } from './errors.js';
import type { Instruction } from './program.js';

// The rules deciding what a caller's statement may touch, in one place.

export const READ_KEYWORDS = new Set(['SELECT', 'WITH', 'VALUES']);
export const WRITE_KEYWORDS = new Set(['INSERT', 'UPDATE', 'DELETE', 'REPLACE', 'WITH']);
export const DDL_KEYWORDS = new Set(['CREATE', 'ALTER', 'DROP']);
/** Statements SQLite may call read-only that still change the connection or the files. */
const CONNECTION_CHANGING: Record<string, string> = {
  ATTACH: 'ATTACH is not allowed: only this database can be used',
  DETACH: 'DETACH is not allowed',
  VACUUM: 'VACUUM (and VACUUM INTO) is not allowed',
  PRAGMA:
    "PRAGMA statements are not allowed; read a setting with SELECT * FROM pragma_<name> (e.g. pragma_table_info('t'))",
  ANALYZE: 'ANALYZE is not allowed',
  REINDEX: 'REINDEX is not allowed',
  BEGIN: 'Transaction control is not allowed: each call runs in its own transaction',
  COMMIT: 'Transaction control is not allowed: each call runs in its own transaction',
  END: 'Transaction control is not allowed: each call runs in its own transaction',
  ROLLBACK: 'Transaction control is not allowed: each call runs in its own transaction',
  SAVEPOINT: 'Transaction control is not allowed: each call runs in its own transaction',
  RELEASE: 'Transaction control is not allowed: each call runs in its own transaction',
};

/** The keyword SQLite compiles first: past comments, empty statements and EXPLAIN [QUERY PLAN]. */
export function compiledKeyword(sql: string): string {
  let rest = sql;
  for (;;) {
    const trimmed = stripLeadingComments(rest);
    const skipped = /^(?:;|EXPLAIN\b|QUERY\b|PLAN\b)/i.exec(trimmed);
    if (!skipped) return leadingKeyword(trimmed);
    rest = trimmed.slice(skipped[0].length);
  }
}

/**
 * Prepares exactly one statement. Connection-changing statements are refused before they are
 * compiled: SQLite applies some PRAGMAs (foreign_keys, query_only, ...) while compiling them.
 */
export function prepareOne(db: Database.Database, sql: string): Database.Statement<unknown[]> {
  const keyword = compiledKeyword(sql);
  if (keyword in CONNECTION_CHANGING)
    throw new SqlError(`${CONNECTION_CHANGING[keyword]}.`, `${keyword}_NOT_ALLOWED`);
  try {
    return db.prepare(sql);
  } catch (error) {
    // isNativeError, not instanceof: the addon's RangeError may come from another realm.
    if (
      types.isNativeError(error) &&
      error.name === 'RangeError' &&
      /more than one statement/.test(error.message)
    )
      throw new SqlError(
        'Exactly one SQL statement is allowed; remove the others.',
        'MULTIPLE_STATEMENTS',
      );
    throw error;
  }
}

/** Whether the statement is itself an EXPLAIN (past comments and empty statements). */
export function leadsWithExplain(sql: string): boolean {
  let rest = stripLeadingComments(sql);
  while (rest.startsWith(';')) rest = stripLeadingComments(rest.slice(1));
  return /^EXPLAIN\b/i.test(rest);
}

/**
 * Refuses a statement whose compiled program opens one of these tables (or their indexes): the
 * database's own plan (EXPLAIN) names the b-trees it reads and writes, views and CTEs resolved.
 */
export function refuseInternalAccess(
  db: Database.Database,
  program: readonly Instruction[],
  tables: readonly string[],
  access: 'read' | 'write',
): void {
  const protectedPages = new Set(
    db
      .prepare<string[], { rootpage: number }>(
        `SELECT rootpage FROM sqlite_schema WHERE rootpage > 0 AND tbl_name IN (${tables.map(() => '?').join(', ')})`,
      )
      .all(...tables)
      .map((row) => row.rootpage),
  );
  const touches = program.some(({ opcode, p1, p2, p3 }) => {
    if (opcode === 'OpenWrite' || (access === 'read' && opcode === 'OpenRead'))
      return p3 === 0 && protectedPages.has(p2);
    if (opcode === 'Clear') return p2 === 0 && protectedPages.has(p1);
    if (opcode === 'Destroy') return p3 === 0 && protectedPages.has(p1);
    return false;
  });
  if (touches)
    throw new SqlError(
      `ScopeDB's own tables (${tables.join(', ')}) cannot be ${access === 'read' ? 'read or changed' : 'changed'} through the database tools.`,
      'INTERNAL_TABLE',
    );
}
