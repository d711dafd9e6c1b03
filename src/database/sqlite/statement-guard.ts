import { types } from 'node:util';
import type Database from 'better-sqlite3';
import { leadingKeyword, stripLeadingComments, virtualTableModule } from './sql-statements.js';
import { SCOPEDB_TABLE_NAMES } from '../internal-tables.js';
import { quoteIdentifier } from './catalog.js';
import { SqlError } from '../sql-values.js';
import { type Instruction, programOf } from './program.js';

// The rules deciding what a caller's statement may touch, in one place, for every tool that runs
// SQL: reads (query, explain_query), writes (execute, insert_rows, update_rows, delete_rows) and
// migrations (apply_migration). ScopeDB's own records are not in this database at all: they live
// in a store no tool connection opens (isolation by construction). These rules are the second
// layer; each is decided on what SQLite itself reports (the statement's read-only flags, its
// compiled program from EXPLAIN, the schema tables), never on the SQL text alone.

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
 * What a statement may do: read rows, change rows of the application's tables, or change the
 * schema (whose upkeep of sqlite_sequence and sqlite_stat1 is SQLite's own, e.g. on DROP TABLE).
 */
export type Access = 'read' | 'write' | 'schema';

/**
 * Eponymous virtual tables that expose the file's storage, the connection's statements or its
 * maintenance rather than rows: refused in every statement (a view cannot use them either).
 */
const REFUSED_VTABS = ['dbstat', 'sqlite_dbpage', 'sqlite_stmt', 'pragma_optimize'] as const;

/** The virtual-table modules a migration may create tables of: text search and spatial indexes. */
export const VIRTUAL_TABLE_MODULES: ReadonlySet<string> = new Set([
  'fts3',
  'fts4',
  'fts5',
  'rtree',
  'rtree_i32',
  'geopoly',
]);

/** Opcodes that open a b-tree; their P3 is the database (0 main, 1 temp, 2+ attached). */
const OPEN_OPCODES = new Set(['OpenRead', 'OpenWrite', 'ReopenIdx']);
/** Opcodes that change a table's rows; P4 names the table when the change is the statement's own. */
const CHANGE_OPCODES = new Set(['Insert', 'Delete', 'Clear']);

function refuse(message: string, code: string): never {
  throw new SqlError(message, code);
}

/**
 * The `vtab:<address>` operand of each refused virtual table on this connection, by name: the
 * storage-exposing eponymous ones, and any table of the schema whose module is not one a
 * migration may create (one made before this rule, or by other means).
 */
function refusedVtabAddresses(db: Database.Database): Map<string, string> {
  const available = new Set(
    db.prepare<[], string>('SELECT name FROM pragma_module_list').pluck().all(),
  );
  const refused: string[] = REFUSED_VTABS.filter((name) => available.has(name));
  for (const { name, sql } of db
    .prepare<[], { name: string; sql: string }>(
      "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'",
    )
    .all())
    if (!VIRTUAL_TABLE_MODULES.has((virtualTableModule(sql) ?? '').toLowerCase()))
      refused.push(quoteIdentifier(name));
  const addresses = new Map<string, string>();
  for (const name of refused) {
    const open = programOf(db, `SELECT * FROM ${name}`, []).find((i) => i.opcode === 'VOpen');
    if (open?.p4) addresses.set(open.p4, name);
  }
  return addresses;
}

/** Root pages of the b-trees (tables and their indexes) that carry one of ScopeDB's names. */
function scopedbPages(db: Database.Database): Set<number> {
  return new Set(
    db
      .prepare<string[], number>(
        `SELECT rootpage FROM sqlite_schema WHERE rootpage > 0 AND lower(tbl_name) IN (${SCOPEDB_TABLE_NAMES.map(() => '?').join(', ')})`,
      )
      .pluck()
      .all(...SCOPEDB_TABLE_NAMES),
  );
}

/**
 * The rules on a compiled program, trigger and foreign-key action programs included (EXPLAIN
 * lists them after the statement's own):
 * - no storage-exposing virtual table (dbstat, ...), directly or through a view;
 * - only the main database: nothing temporary or attached is opened;
 * - row writes change no `sqlite_*` table (sqlite_sequence, sqlite_stat1, ...): SQLite's own upkeep
 *   of AUTOINCREMENT writes sqlite_sequence too, but never as a change of the statement's own
 *   (its Insert names no table); a schema change's own upkeep may, the triggers and actions it
 *   fires may not; no statement drops one (SQLite lets DROP TABLE sqlite_stat1 by);
 * - nothing opens a table of ScopeDB's names.
 */
export function checkProgram(
  db: Database.Database,
  program: readonly Instruction[],
  access: Access,
): void {
  const vtabs = program.some((i) => i.opcode === 'VOpen') ? refusedVtabAddresses(db) : undefined;
  const ours = scopedbPages(db);
  // EXPLAIN lists trigger and foreign-key action programs after the statement's own, each from
  // address 0 again. A schema change's own program may change sqlite_stat1 and sqlite_sequence
  // (DROP TABLE clears a table's rows there); the programs it fires (a DROP TABLE deletes the
  // table's rows first, and so runs ON DELETE actions and their triggers) may not.
  let fired = false;
  for (const [index, { addr, opcode, p1, p2, p3, p4 }] of program.entries()) {
    if (index > 0 && addr === 0) fired = true;
    const vtab = opcode === 'VOpen' && p4 !== null ? vtabs?.get(p4) : undefined;
    if (vtab)
      refuse(
        `${vtab} exposes the database's storage or connection, not rows; it cannot be used through the database tools.`,
        'STORAGE_NOT_ALLOWED',
      );
    if (OPEN_OPCODES.has(opcode) && p3 !== 0)
      refuse(
        'Only the tables of the main database can be used: temporary and attached objects are not allowed.',
        'TEMPORARY_OBJECT',
      );
    if (
      (OPEN_OPCODES.has(opcode) && ours.has(p2)) ||
      ((opcode === 'Clear' || opcode === 'Destroy') && ours.has(p1))
    )
      refuse(
        `Tables named like ScopeDB's own (${SCOPEDB_TABLE_NAMES.join(', ')}) cannot be used through the database tools.`,
        'INTERNAL_TABLE',
      );
    if (
      ((CHANGE_OPCODES.has(opcode) && (access === 'write' || fired)) || opcode === 'DropTable') &&
      p4 &&
      /^sqlite_/i.test(p4)
    )
      refuse(
        `${p4} belongs to SQLite; the write tools change the application's tables only.`,
        'SYSTEM_TABLE',
      );
  }
}

/**
 * A caller's read: one statement that SQLite judges read-only and that returns rows (SELECT,
 * WITH ... SELECT, VALUES), not an EXPLAIN (plans come from explain_query), within the program
 * rules. Returns the prepared statement and its program.
 */
export function guardRead(
  db: Database.Database,
  sql: string,
  params: unknown[],
): { statement: Database.Statement<unknown[]>; program: Instruction[] } {
  if (leadsWithExplain(sql))
    refuse(
      'Give the statement itself, without EXPLAIN; explain_query shows its plan.',
      'NOT_READ_ONLY',
    );
  const statement = prepareOne(db, sql);
  if (!statement.reader || !statement.readonly || !READ_KEYWORDS.has(compiledKeyword(sql)))
    refuse(
      'Only one read-only statement that returns rows is allowed here (SELECT, WITH ... SELECT, VALUES); writes go through execute.',
      'NOT_READ_ONLY',
    );
  const program = programOf(db, sql, params);
  checkProgram(db, program, 'read');
  return { statement, program };
}

/** A caller's change for execute: one INSERT, UPDATE, DELETE or REPLACE, within the program rules. */
export function guardWrite(
  db: Database.Database,
  sql: string,
  params: unknown[],
): Database.Statement<unknown[]> {
  const statement = prepareOne(db, sql);
  if (statement.readonly || !WRITE_KEYWORDS.has(compiledKeyword(sql)))
    refuse(
      'execute runs exactly one INSERT, UPDATE, DELETE or REPLACE statement. Use query to read; schema changes go through apply_migration (db:admin).',
      'NOT_A_WRITE',
    );
  checkProgram(db, programOf(db, sql, params), 'write');
  return statement;
}

/**
 * A change the row tools built from catalog names and bound values: the same program rules as
 * execute's, so that the triggers it fires are held to them too.
 */
export function guardBuiltWrite(
  db: Database.Database,
  sql: string,
  params: unknown[],
): Database.Statement<unknown[]> {
  const statement = db.prepare(sql);
  checkProgram(db, programOf(db, sql, params), 'write');
  return statement;
}

/** Temporary objects of this connection; a migration must leave none. */
function temporaryObjects(db: Database.Database): string[] {
  return db.prepare<[], string>('SELECT name FROM temp.sqlite_schema').pluck().all();
}

/**
 * Statement `index` (from 0) of a migration: DDL only (CREATE, ALTER, DROP), virtual tables of
 * allowed modules only, within the program rules (so `CREATE TABLE x AS SELECT` reads only what a
 * query may, and nothing temporary is created). Returns it prepared.
 */
export function guardDdl(
  db: Database.Database,
  text: string,
  index: number,
): Database.Statement<unknown[]> {
  const statement = prepareOne(db, text);
  if (statement.readonly || !DDL_KEYWORDS.has(leadingKeyword(text)))
    refuse(
      `Statement ${index + 1} is not DDL: apply_migration runs CREATE, ALTER and DROP statements only.`,
      'NOT_DDL',
    );
  const module = virtualTableModule(text);
  if (module !== undefined && !VIRTUAL_TABLE_MODULES.has(module.toLowerCase()))
    refuse(
      `Statement ${index + 1} creates a virtual table with module "${module}"; allowed: ${[...VIRTUAL_TABLE_MODULES].join(', ')}.`,
      'VIRTUAL_TABLE_MODULE',
    );
  checkProgram(db, programOf(db, text, []), 'schema');
  return statement;
}

/**
 * After a migration's statements ran, inside its transaction: no temporary object was made (it
 * would live on one worker connection and vanish on restart).
 */
export function guardSchemaAfterDdl(db: Database.Database): void {
  const temporary = temporaryObjects(db);
  if (temporary.length > 0)
    refuse(
      `Temporary objects (${temporary.join(', ')}) are not allowed: they would live on one database connection and vanish on restart. Create them in the main schema.`,
      'TEMPORARY_OBJECT',
    );
}
