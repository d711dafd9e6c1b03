import { type MigrationInterface, type QueryRunner, Table, TableIndex } from 'typeorm';
import { AUDIT_TABLE } from '../../database/internal-tables.js';

/** The statements that would change or remove records; the database refuses each of them. */
const REFUSED = ['UPDATE', 'DELETE', 'TRUNCATE'] as const;
const POSTGRES_GUARD_FUNCTION = `${AUDIT_TABLE}_append_only`;

/**
 * The audit log in a database of its own (AUDIT_DATABASE_URL), SQLite or PostgreSQL: the table as
 * the application database's migrations leave it, append-only through triggers.
 */
export class AuditLog1765000000000 implements MigrationInterface {
  name = 'AuditLog1765000000000';

  async up(runner: QueryRunner): Promise<void> {
    const optional = (name: string, type: string, length?: string) => ({
      name,
      type,
      length,
      isNullable: true,
    });
    await runner.createTable(
      new Table({
        name: AUDIT_TABLE,
        columns: [
          {
            name: 'id',
            type: 'integer',
            isPrimary: true,
            isGenerated: true,
            generationStrategy: 'increment',
          },
          { name: 'time', type: 'varchar', length: '32' },
          optional('requestId', 'varchar', '64'),
          optional('subject', 'varchar', '255'),
          { name: 'subjectUnverified', type: 'boolean', default: false },
          optional('clientId', 'varchar', '255'),
          optional('tokenId', 'varchar', '255'),
          optional('tool', 'varchar', '128'),
          { name: 'outcome', type: 'varchar', length: '32' },
          optional('reason', 'text'),
          optional('requiredScopes', 'varchar', '512'),
          optional('grantedScopes', 'varchar', '1024'),
          optional('durationMs', 'integer'),
          optional('remoteAddress', 'varchar', '64'),
          optional('principalName', 'varchar', '255'),
          optional('principalEmail', 'varchar', '255'),
          optional('rowCount', 'integer'),
          optional('sqlText', 'text'),
          optional('paramsHash', 'varchar', '64'),
          optional('protocolVersion', 'varchar', '32'),
          optional('userAgent', 'varchar', '256'),
        ],
      }),
    );
    for (const column of ['time', 'subject', 'outcome'])
      await runner.createIndex(
        AUDIT_TABLE,
        new TableIndex({ name: `IDX_audit_log_${column}`, columnNames: [column] }),
      );

    if (runner.connection.options.type === 'postgres') {
      await runner.query(
        `CREATE FUNCTION ${POSTGRES_GUARD_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS ` +
          `$$ BEGIN RAISE EXCEPTION '${AUDIT_TABLE} is append-only'; END $$`,
      );
      // Per statement: refused even when no row matches, and TRUNCATE has no rows to fire for.
      for (const event of REFUSED)
        await runner.query(
          `CREATE TRIGGER ${AUDIT_TABLE}_no_${event.toLowerCase()} BEFORE ${event} ON ${AUDIT_TABLE} ` +
            `FOR EACH STATEMENT EXECUTE FUNCTION ${POSTGRES_GUARD_FUNCTION}()`,
        );
    } else {
      // SQLite has no TRUNCATE: its truncate optimization is a DELETE, which the trigger disables.
      for (const event of REFUSED.filter((e) => e !== 'TRUNCATE'))
        await runner.query(
          `CREATE TRIGGER ${AUDIT_TABLE}_no_${event.toLowerCase()} BEFORE ${event} ON ${AUDIT_TABLE} ` +
            `BEGIN SELECT RAISE(ABORT, '${AUDIT_TABLE} is append-only'); END`,
        );
    }
  }

  async down(runner: QueryRunner): Promise<void> {
    await runner.dropTable(AUDIT_TABLE);
    if (runner.connection.options.type === 'postgres')
      await runner.query(`DROP FUNCTION ${POSTGRES_GUARD_FUNCTION}()`);
  }
}
