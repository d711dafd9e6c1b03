import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { AUDIT_TABLE } from '../database/internal-tables.js';

export const AUDIT_OUTCOMES = [
  'success',
  'tool_error',
  'pending',
  'interrupted',
  'refused_no_token',
  'refused_invalid_token',
  'refused_scope',
  'refused_origin',
  'refused_rate_limit',
  'refused_invalid_request',
  /** ScopeDB's own change to the log: records moved in by the upgrade from release 0.1.0. */
  'upgrade',
] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** A write's intent, committed before the write runs; completed once with one of these. */
export const PENDING_OUTCOME = 'pending' satisfies AuditOutcome;
export const COMPLETED_OUTCOMES = [
  'success',
  'tool_error',
  'interrupted',
] as const satisfies readonly AuditOutcome[];
export type CompletedOutcome = (typeof COMPLETED_OUTCOMES)[number];

/** What completing a pending record may set; every other column is fixed once inserted. */
export const COMPLETION_COLUMNS = ['outcome', 'reason', 'rowCount', 'durationMs'] as const;

/** One decision about a request to the MCP endpoint. Written by AuditService (and once by
 * LegacyUpgrade); the table is created by the AuditLog migration in the audit database, the
 * later columns and the completion trigger by AuditIntents. */
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

  /** The token's `name` and `email`, as verified. */
  @Column({ type: 'varchar', length: 255, nullable: true })
  principalName!: string | null;

  @Column({ type: 'varchar', length: 255, nullable: true })
  principalEmail!: string | null;

  /** Rows a query returned, or rows a write changed (or would have, in a dry run). */
  @Column({ type: 'integer', nullable: true })
  rowCount!: number | null;

  /** The SQL as the caller sent it; its parameters are never stored. */
  @Column({ type: 'text', nullable: true })
  sqlText!: string | null;

  /** sha256 (hex) of the JSON of the bound parameters, when there were any. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  paramsHash!: string | null;

  @Column({ type: 'varchar', length: 32, nullable: true })
  protocolVersion!: string | null;

  @Column({ type: 'varchar', length: 256, nullable: true })
  userAgent!: string | null;

  /** The `table` argument of the tools that take one (insert_rows, describe_table, ...). */
  @Column({ type: 'varchar', length: 255, nullable: true })
  tableName!: string | null;
}
