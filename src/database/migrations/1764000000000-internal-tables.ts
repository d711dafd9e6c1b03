import { type MigrationInterface, type QueryRunner, Table, TableIndex } from 'typeorm';
import { AUDIT_TABLE, LEDGER_TABLE } from '../internal-tables.js';

/** ScopeDB's own tables: the audit trail and the apply_migration ledger. */
export class InternalTables1764000000000 implements MigrationInterface {
  name = 'InternalTables1764000000000';

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
          { name: 'time', type: 'varchar', length: '32' },
          { name: 'requestId', type: 'varchar', length: '64', isNullable: true },
          { name: 'subject', type: 'varchar', length: '255', isNullable: true },
          { name: 'subjectUnverified', type: 'boolean', default: false },
          { name: 'clientId', type: 'varchar', length: '255', isNullable: true },
          { name: 'tokenId', type: 'varchar', length: '255', isNullable: true },
          { name: 'tool', type: 'varchar', length: '128', isNullable: true },
          { name: 'outcome', type: 'varchar', length: '32' },
          { name: 'reason', type: 'text', isNullable: true },
          { name: 'requiredScopes', type: 'varchar', length: '512', isNullable: true },
          { name: 'grantedScopes', type: 'varchar', length: '1024', isNullable: true },
          { name: 'durationMs', type: 'integer', isNullable: true },
          { name: 'remoteAddress', type: 'varchar', length: '64', isNullable: true },
        ],
      }),
      true,
    );
    for (const column of ['time', 'subject', 'outcome'])
      await runner.createIndex(
        AUDIT_TABLE,
        new TableIndex({ name: `IDX_audit_log_${column}`, columnNames: [column] }),
      );
    await runner.createTable(
      new Table({
        name: LEDGER_TABLE,
        columns: [
          { name: 'name', type: 'varchar', length: '64', isPrimary: true },
          { name: 'checksum', type: 'varchar', length: '64' },
          { name: 'sql', type: 'text' },
          { name: 'appliedAt', type: 'varchar', length: '32' },
          { name: 'appliedBy', type: 'varchar', length: '255' },
          { name: 'clientId', type: 'varchar', length: '255', isNullable: true },
        ],
      }),
      true,
    );
    // The application only ever inserts into these tables; the database refuses anything else.
    for (const table of [AUDIT_TABLE, LEDGER_TABLE])
      for (const event of ['UPDATE', 'DELETE'])
        await runner.query(
          `CREATE TRIGGER ${table}_no_${event.toLowerCase()} BEFORE ${event} ON ${table} ` +
            `BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END`,
        );
  }

  async down(runner: QueryRunner): Promise<void> {
    await runner.dropTable(LEDGER_TABLE, true);
    await runner.dropTable(AUDIT_TABLE, true);
  }
}
