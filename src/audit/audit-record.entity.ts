import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { AUDIT_TABLE } from '../database/internal-tables.js';

export type AuditOutcome =
  | 'success'
  | 'tool_error'
  | 'refused_no_token'
  | 'refused_invalid_token'
  | 'refused_scope'
  | 'refused_origin';

/** One decision about a request to the MCP endpoint. Written by AuditService only; the table and
 * its indexes are created by the InternalTables migration. */
@Entity({ name: AUDIT_TABLE })
export class AuditRecord {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 32 })
  time!: string;

  @Column({ type: 'varchar', length: 64, nullable: true })
  requestId!: string | null;

  @Column({ type: 'varchar', length: 255, nullable: true })
  subject!: string | null;

  /** Set when the subject was read from a token that failed verification. */
  @Column({ type: 'boolean', default: false })
  subjectUnverified!: boolean;

  @Column({ type: 'varchar', length: 255, nullable: true })
  clientId!: string | null;

  @Column({ type: 'varchar', length: 255, nullable: true })
  tokenId!: string | null;

  @Column({ type: 'varchar', length: 128, nullable: true })
  tool!: string | null;

  @Column({ type: 'varchar', length: 32 })
  outcome!: AuditOutcome;

  @Column({ type: 'text', nullable: true })
  reason!: string | null;

  @Column({ type: 'varchar', length: 512, nullable: true })
  requiredScopes!: string | null;

  @Column({ type: 'varchar', length: 1024, nullable: true })
  grantedScopes!: string | null;

  @Column({ type: 'integer', nullable: true })
  durationMs!: number | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  remoteAddress!: string | null;
}
