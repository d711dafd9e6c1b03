import { type MigrationInterface, type QueryRunner, Table, TableIndex } from 'typeorm';
import { AUDIT_TABLE } from '../../database/internal-tables.js';

/** An audit column's definition: the migration that adds it creates it, the entity maps it. */
export interface AuditColumn {
  type: 'varchar' | 'text' | 'integer' | 'boolean';
  length?: number;
  nullable?: true;
  default?: boolean;
}

const optional = (type: AuditColumn['type'], length?: number) =>
  ({ type, length, nullable: true }) as const;

/** Release 0.1.0's columns but `id`, in its order. */
export const AUDIT_LOG_COLUMNS = {
  time: { type: 'varchar', length: 32 },
  requestId: optional('varchar', 64),
  subject: optional('varchar', 255),
  subjectUnverified: { type: 'boolean', default: false },
  clientId: optional('varchar', 255),
  tokenId: optional('varchar', 255),
  tool: optional('varchar', 128),
  outcome: { type: 'varchar', length: 32 },
  reason: optional('text'),
  requiredScopes: optional('varchar', 512),
  grantedScopes: optional('varchar', 1024),
  durationMs: optional('integer'),
  remoteAddress: optional('varchar', 64),
  principalName: optional('varchar', 255),
  principalEmail: optional('varchar', 255),
  rowCount: optional('integer'),
  sqlText: optional('text'),
  paramsHash: optional('varchar', 64),
  protocolVersion: optional('varchar', 32),
  userAgent: optional('varchar', 256),
} as const satisfies Record<string, AuditColumn>;

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
          ...Object.entries(AUDIT_LOG_COLUMNS).map(([name, column]: [string, AuditColumn]) => ({
            name,
            type: column.type,
            length: column.length?.toString(),
            isNullable: column.nullable ?? false,
            default: column.default,
          })),
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
