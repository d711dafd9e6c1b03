import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { splitStatements } from './sql-statements.js';
import { SqlError } from '../sql-values.js';
import { SCOPEDB_TABLE_NAMES } from '../internal-tables.js';
import { guardDdl, guardSchemaAfterDdl } from './statement-guard.js';

// Migrations, the worker's half: DDL checked (plan) and applied (apply) against a fingerprint of
// the schema. The ledger is in the internal database; SchemaMigrations (src/internal/) keeps the
// two consistent.

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** sha256 of the schema: every catalog entry's type, name, table and SQL (not its root page). */
export function schemaFingerprint(db: Database.Database): string {
  const rows = db
    .prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name')
    .raw()
    .all();
  return sha256(JSON.stringify(rows));
}

export const migrationChecksum = sha256;

/** The statements of a migration; refuses an empty one. */
export function migrationStatements(sql: string): string[] {
  const statements = splitStatements(sql);
  if (statements.length === 0)
    throw new SqlError('The migration has no SQL statement.', 'EMPTY_MIGRATION');
  return statements;
}

/**
 * Runs the statements in the open transaction, each under the statement guard (DDL only, nothing
 * temporary, allowed virtual-table modules), then checks what they left.
 */
function runStatements(db: Database.Database, statements: string[]): void {
  statements.forEach((text, index) => guardDdl(db, text, index).run());
  guardSchemaAfterDdl(db);
  const reserved = db
    .prepare<[], { name: string; tbl_name: string }>('SELECT name, tbl_name FROM sqlite_schema')
    .all()
    .find((entry) => isReservedName(entry.name) || isReservedName(entry.tbl_name));
  if (reserved !== undefined)
    throw new SqlError(
      `The names ${SCOPEDB_TABLE_NAMES.join(', ')} are reserved (ScopeDB's tables had them in the application database up to release 0.1.0), in any letter case or look-alike spelling; choose another.`,
      'RESERVED_NAME',
    );
}

/** A reserved name in any letter case, compatibility form or with invisible characters added. */
function isReservedName(name: string): boolean {
  const seen = name
    .normalize('NFKC')
    .replace(/\p{Cf}/gu, '')
    .toLowerCase();
  return SCOPEDB_TABLE_NAMES.includes(seen);
}

export interface MigrationPlan {
  statements: number;
  /** The schema's fingerprint before and after the migration. */
  before: string;
  after: string;
}

/** Runs the migration in a write transaction and rolls it back: what it would do, or its error. */
export function planMigration(db: Database.Database, sql: string): MigrationPlan {
  const statements = migrationStatements(sql);
  const rollback = new Error('rollback');
  let plan: MigrationPlan | undefined;
  try {
    db.transaction(() => {
      const before = schemaFingerprint(db);
      runStatements(db, statements);
      plan = { statements: statements.length, before, after: schemaFingerprint(db) };
      throw rollback;
    }).immediate(); // it reads the schema first: a deferred one could not wait to upgrade
  } catch (error) {
    if (error !== rollback) throw error;
  }
  return plan!;
}

/** A definite answer: committed, or rolled back with the reason. */
export type MigrationOutcome =
  { applied: true } | { applied: false; message: string; code: string };

/**
 * Applies a planned migration under the write lock (BEGIN IMMEDIATE), only from the schema it was
 * planned on and only if it leaves the schema the plan did; else nothing is changed.
 */
export function applyMigration(
  db: Database.Database,
  migration: { sql: string; before: string; after: string },
): MigrationOutcome {
  try {
    db.transaction(() => {
      if (schemaFingerprint(db) !== migration.before)
        throw new SqlError(
          'The schema changed after the migration was checked; nothing was applied. Apply it again.',
          'SCHEMA_CHANGED',
        );
      runStatements(db, migrationStatements(migration.sql));
      if (schemaFingerprint(db) !== migration.after)
        throw new SqlError(
          'The migration left another schema than when it was checked; nothing was applied.',
          'SCHEMA_CHANGED',
        );
    }).immediate();
    return { applied: true };
  } catch (error) {
    // better-sqlite3 rolls the transaction back before it rethrows: nothing was committed.
    const { message, code } = error as { message?: unknown; code?: unknown };
    return {
      applied: false,
      message: typeof message === 'string' ? message : String(error),
      code: typeof code === 'string' ? code : 'SQL_ERROR',
    };
  }
}
