import type { MigrationInterface, QueryRunner } from 'typeorm';
import { AUDIT_TABLE } from '../../database/internal-tables.js';
import { AUDIT_LOG_COLUMNS, type AuditColumn } from './1765000000000-audit-log.js';

const TRIGGER = `${AUDIT_TABLE}_completion_only`;
const REFUSAL = `${AUDIT_TABLE} is append-only: only a pending record may be completed, once`;
/** Completing a write's intent: the only change the triggers let through. */
const OUTCOMES_AFTER_PENDING = "('success', 'tool_error', 'interrupted')";
const MAY_CHANGE = ['outcome', 'reason', 'rowCount', 'durationMs'];
/** The column this migration adds: the table a call named. */
export const TABLE_NAME_COLUMN = {
  type: 'varchar',
  length: 255,
  nullable: true,
} as const satisfies AuditColumn;
/**
 * Every other column as of this migration (SQLite compares them one by one; PostgreSQL compares
 * whole rows). A later migration that adds a column must recreate the SQLite trigger with it.
 */
export const FIXED_COLUMNS = ['id', ...Object.keys(AUDIT_LOG_COLUMNS), 'tableName'].filter(
  (column) => !MAY_CHANGE.includes(column),
);

/**
 * Write intents and the table a call named. A write's record is inserted as `pending` before it
 * runs and completed with its outcome after; the append-only UPDATE trigger becomes a row-level
 * one that allows exactly that: a `pending` row's outcome (to success, tool_error or interrupted),
 * reason, rowCount and durationMs, once. Runs in the application database and in an audit
 * database of its own (SQLite or PostgreSQL).
 */
export class AuditIntents1765100000000 implements MigrationInterface {
  name = 'AuditIntents1765100000000';

  // Plain ALTER TABLE: TypeORM's addColumn rebuilds a SQLite table, dropping its triggers.
  async up(runner: QueryRunner): Promise<void> {
    const { type, length } = TABLE_NAME_COLUMN;
    await runner.query(`ALTER TABLE ${AUDIT_TABLE} ADD COLUMN "tableName" ${type}(${length}) NULL`);
    if (runner.connection.options.type === 'postgres') {
      await runner.query(`DROP TRIGGER ${AUDIT_TABLE}_no_update ON ${AUDIT_TABLE}`);
      const unchanged = `ARRAY[${MAY_CHANGE.map((c) => `'${c}'`).join(', ')}]`;
      await runner.query(
        `CREATE FUNCTION ${TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ` +
          `IF OLD.outcome <> 'pending' OR NEW.outcome NOT IN ${OUTCOMES_AFTER_PENDING} ` +
          `OR to_jsonb(NEW) - ${unchanged} IS DISTINCT FROM to_jsonb(OLD) - ${unchanged} ` +
          `THEN RAISE EXCEPTION '${REFUSAL}'; END IF; RETURN NEW; END $$`,
      );
      await runner.query(
        `CREATE TRIGGER ${TRIGGER} BEFORE UPDATE ON ${AUDIT_TABLE} ` +
          `FOR EACH ROW EXECUTE FUNCTION ${TRIGGER}()`,
      );
    } else {
      await runner.query(`DROP TRIGGER ${AUDIT_TABLE}_no_update`);
      const same = FIXED_COLUMNS.map((c) => `NEW."${c}" IS OLD."${c}"`).join(' AND ');
      await runner.query(
        `CREATE TRIGGER ${TRIGGER} BEFORE UPDATE ON ${AUDIT_TABLE} ` +
          `WHEN NOT (OLD.outcome = 'pending' AND NEW.outcome IN ${OUTCOMES_AFTER_PENDING} AND ${same}) ` +
          `BEGIN SELECT RAISE(ABORT, '${REFUSAL}'); END`,
      );
    }
  }

  async down(runner: QueryRunner): Promise<void> {
    const refusal = `${AUDIT_TABLE} is append-only`;
    if (runner.connection.options.type === 'postgres') {
      await runner.query(`DROP TRIGGER ${TRIGGER} ON ${AUDIT_TABLE}`);
      await runner.query(`DROP FUNCTION ${TRIGGER}()`);
      await runner.query(
        `CREATE TRIGGER ${AUDIT_TABLE}_no_update BEFORE UPDATE ON ${AUDIT_TABLE} ` +
          `FOR EACH STATEMENT EXECUTE FUNCTION ${AUDIT_TABLE}_append_only()`,
      );
    } else {
      await runner.query(`DROP TRIGGER ${TRIGGER}`);
      await runner.query(
        `CREATE TRIGGER ${AUDIT_TABLE}_no_update BEFORE UPDATE ON ${AUDIT_TABLE} ` +
          `BEGIN SELECT RAISE(ABORT, '${refusal}'); END`,
      );
    }
    await runner.query(`ALTER TABLE ${AUDIT_TABLE} DROP COLUMN "tableName"`);
  }
}
