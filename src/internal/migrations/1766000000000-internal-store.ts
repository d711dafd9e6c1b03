import type { MigrationInterface, QueryRunner } from 'typeorm';
import { LEDGER_TABLE, STATE_TABLE } from '../store-tables.js';

/** Columns a ledger row never changes once written (all but status, error and settledAt). */
const FIXED_COLUMNS = [
  'id',
  'name',
  'checksum',
  'sql',
  'appliedAt',
  'appliedBy',
  'clientId',
  'schemaBefore',
  'schemaAfter',
];

/**
 * The migrations ledger and ScopeDB's bookkeeping, in the internal database. A ledger row is
 * written `pending` before its DDL runs and settled once (applied, failed or diverged); the
 * database refuses any other change and every delete. At most one row per name is not `failed`.
 */
export class InternalStore1766000000000 implements MigrationInterface {
  name = 'InternalStore1766000000000';

  async up(runner: QueryRunner): Promise<void> {
    await runner.query(
      `CREATE TABLE "${LEDGER_TABLE}" (
        "id" integer PRIMARY KEY AUTOINCREMENT NOT NULL,
        "name" varchar(64) NOT NULL,
        "checksum" varchar(64) NOT NULL,
        "sql" text NOT NULL,
        "appliedAt" varchar(32) NOT NULL,
        "appliedBy" varchar(255) NOT NULL,
        "clientId" varchar(255),
        "status" varchar(16) NOT NULL CHECK ("status" IN ('pending', 'applied', 'failed', 'diverged')),
        "schemaBefore" varchar(64),
        "schemaAfter" varchar(64),
        "error" text,
        "settledAt" varchar(32)
      )`,
    );
    await runner.query(
      `CREATE UNIQUE INDEX "IDX_${LEDGER_TABLE}_name" ON "${LEDGER_TABLE}" ("name") WHERE "status" <> 'failed'`,
    );
    await runner.query(
      `CREATE TRIGGER "${LEDGER_TABLE}_no_delete" BEFORE DELETE ON "${LEDGER_TABLE}" ` +
        `BEGIN SELECT RAISE(ABORT, '${LEDGER_TABLE} keeps every row'); END`,
    );
    const changed = FIXED_COLUMNS.map((column) => `NEW."${column}" IS NOT OLD."${column}"`);
    await runner.query(
      `CREATE TRIGGER "${LEDGER_TABLE}_settled_once" BEFORE UPDATE ON "${LEDGER_TABLE}" ` +
        `WHEN OLD."status" <> 'pending' OR NEW."status" = 'pending' OR ${changed.join(' OR ')} ` +
        `BEGIN SELECT RAISE(ABORT, 'a ${LEDGER_TABLE} row changes once, from pending to its outcome'); END`,
    );
    await runner.query(
      `CREATE TABLE "${STATE_TABLE}" (
        "key" varchar(64) PRIMARY KEY NOT NULL,
        "value" text NOT NULL,
        "updatedAt" varchar(32) NOT NULL
      )`,
    );
  }

  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP TABLE "${STATE_TABLE}"`);
    await runner.query(`DROP TABLE "${LEDGER_TABLE}"`);
  }
}
