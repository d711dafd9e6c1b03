import type { MigrationInterface, QueryRunner } from 'typeorm';
import { AUDIT_TABLE } from '../internal-tables.js';

const COLUMNS: [name: string, type: string][] = [
  ['principalName', 'varchar(255)'],
  ['principalEmail', 'varchar(255)'],
  ['rowCount', 'integer'],
  ['sqlText', 'text'],
  ['paramsHash', 'varchar(64)'],
  ['protocolVersion', 'varchar(32)'],
  ['userAgent', 'varchar(256)'],
];

/** Who by name, what SQL (parameters only hashed), how many rows, and which client software. */
export class AuditDetails1764100000000 implements MigrationInterface {
  name = 'AuditDetails1764100000000';

  // Plain ALTER TABLE: TypeORM's addColumns rebuilds a SQLite table, which would drop its
  // append-only triggers and copy the whole trail.
  async up(runner: QueryRunner): Promise<void> {
    for (const [name, type] of COLUMNS)
      await runner.query(`ALTER TABLE ${AUDIT_TABLE} ADD COLUMN "${name}" ${type} NULL`);
  }

  async down(runner: QueryRunner): Promise<void> {
    for (const [name] of [...COLUMNS].reverse())
      await runner.query(`ALTER TABLE ${AUDIT_TABLE} DROP COLUMN "${name}"`);
  }
}
