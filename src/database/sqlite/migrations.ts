import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { INTERNAL_TABLES, LEDGER_TABLE } from '../internal-tables.js';
import { leadingKeyword, splitStatements } from '../sql-statements.js';
import { quoteIdentifier } from './catalog.js';
import { SqlError } from './errors.js';
import { DDL_KEYWORDS, prepareOne } from './statement-guard.js';

// Migrations: DDL applied atomically and recorded in the ledger.

/** The catalog entries of ScopeDB's tables and of anything defined on or referring to them. */
function internalSchema(db: Database.Database): string {
  const names = INTERNAL_TABLES.join('|');
  const mentions = new RegExp(`(^|[^\\w$])["\`\\[]?(${names})["\`\\]]?($|[^\\w$])`, 'i');
  const rows = db
    .prepare<[], { type: string; name: string; tbl_name: string; sql: string | null }>(
      'SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name',
    )
    .all()
    .filter(
      (row) =>
        (INTERNAL_TABLES as readonly string[]).includes(row.tbl_name) ||
        (row.sql !== null && mentions.test(row.sql)),
    );
  return JSON.stringify(rows);
}

export interface MigrationResult {
  name: string;
  applied: boolean;
  dry_run: boolean;
  statements: number;
  checksum: string;
}

/**
 * DDL statements applied atomically and recorded by name, checksum, who and when. The same name
 * with the same SQL is a no-op; with different SQL it is an error.
 */
export function migrate(
  db: Database.Database,
  migration: {
    name: string;
    sql: string;
    dryRun: boolean;
    appliedBy: string;
    clientId: string | null;
  },
): MigrationResult {
  const { name, sql, dryRun } = migration;
  const checksum = createHash('sha256').update(sql).digest('hex');
  const statements = splitStatements(sql);
  if (statements.length === 0)
    throw new SqlError('The migration has no SQL statement.', 'EMPTY_MIGRATION');
  const ledger = quoteIdentifier(LEDGER_TABLE);
  const rollback = new Error('rollback');
  let result: MigrationResult | undefined;
  try {
    db.transaction(() => {
      const existing = db
        .prepare<[string], { checksum: string }>(`SELECT checksum FROM ${ledger} WHERE name = ?`)
        .get(name);
      if (existing) {
        if (existing.checksum !== checksum)
          throw new SqlError(
            `A migration named ${name} was already applied with different SQL; choose a new name.`,
            'MIGRATION_CONFLICT',
          );
        result = { name, applied: false, dry_run: dryRun, statements: statements.length, checksum };
        return;
      }
      const internalBefore = internalSchema(db);
      statements.forEach((text, index) => {
        const statement = prepareOne(db, text);
        if (statement.readonly || !DDL_KEYWORDS.has(leadingKeyword(text)))
          throw new SqlError(
            `Statement ${index + 1} is not DDL: apply_migration runs CREATE, ALTER and DROP statements only.`,
            'NOT_DDL',
          );
        statement.run();
      });
      if (internalSchema(db) !== internalBefore)
        throw new SqlError(
          `A migration cannot change ScopeDB's own tables (${INTERNAL_TABLES.join(', ')}) or define objects that refer to them.`,
          'INTERNAL_TABLE',
        );
      db.prepare(
        `INSERT INTO ${ledger} (name, checksum, sql, appliedAt, appliedBy, clientId) VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(name, checksum, sql, new Date().toISOString(), migration.appliedBy, migration.clientId);
      result = { name, applied: !dryRun, dry_run: dryRun, statements: statements.length, checksum };
      if (dryRun) throw rollback;
    }).immediate();
  } catch (error) {
    if (error !== rollback) throw error;
  }
  return result!;
}

export interface LedgerEntry {
  name: string;
  checksum: string;
  applied_at: string;
  applied_by: string;
  client_id: string | null;
  sql: string;
}

export function listMigrations(db: Database.Database): { migrations: LedgerEntry[] } {
  const migrations = db
    .prepare<[], LedgerEntry>(
      `SELECT name, checksum, appliedAt AS applied_at, appliedBy AS applied_by, clientId AS client_id, sql FROM ${quoteIdentifier(LEDGER_TABLE)} ORDER BY appliedAt, name`,
    )
    .all();
  return { migrations };
}
