import { Column, Entity, PrimaryColumn } from 'typeorm';
import { LEDGER_TABLE } from './internal-tables.js';

/** The ledger of schema changes applied through apply_migration, one row per name. */
@Entity({ name: LEDGER_TABLE })
export class MigrationRecord {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  name!: string;

  /** sha256 of the SQL text, to tell a re-run from a conflicting change. */
  @Column({ type: 'varchar', length: 64 })
  checksum!: string;

  @Column({ type: 'text' })
  sql!: string;

  @Column({ type: 'varchar', length: 32 })
  appliedAt!: string;

  @Column({ type: 'varchar', length: 255 })
  appliedBy!: string;

  @Column({ type: 'varchar', length: 255, nullable: true })
  clientId!: string | null;
}
