import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { AUDIT_TABLE } from '../database/internal-tables.js';
import { AUDIT_LOG_COLUMNS } from './migrations/1765000000000-audit-log.js';
import { TABLE_NAME_COLUMN } from './migrations/1765100000000-audit-intents.js';

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
 * later columns and the completion trigger by AuditIntents. Each column is defined once, by the
 * migration that adds it; the entity maps those definitions. */
@Entity({ name: AUDIT_TABLE })
export class AuditRecord {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column(AUDIT_LOG_COLUMNS.time)
  time!: string;

  @Column(AUDIT_LOG_COLUMNS.requestId)
  requestId!: string | null;

  @Column(AUDIT_LOG_COLUMNS.subject)
  subject!: string | null;

  /** Set when the subject was read from a token that failed verification. */
  @Column(AUDIT_LOG_COLUMNS.subjectUnverified)
  subjectUnverified!: boolean;

  @Column(AUDIT_LOG_COLUMNS.clientId)
  clientId!: string | null;

  @Column(AUDIT_LOG_COLUMNS.tokenId)
  tokenId!: string | null;

  @Column(AUDIT_LOG_COLUMNS.tool)
  tool!: string | null;

  @Column(AUDIT_LOG_COLUMNS.outcome)
  outcome!: AuditOutcome;

  @Column(AUDIT_LOG_COLUMNS.reason)
  reason!: string | null;

  @Column(AUDIT_LOG_COLUMNS.requiredScopes)
  requiredScopes!: string | null;

  @Column(AUDIT_LOG_COLUMNS.grantedScopes)
  grantedScopes!: string | null;

  @Column(AUDIT_LOG_COLUMNS.durationMs)
  durationMs!: number | null;

  @Column(AUDIT_LOG_COLUMNS.remoteAddress)
  remoteAddress!: string | null;

  /** The token's `name` and `email`, as verified. */
  @Column(AUDIT_LOG_COLUMNS.principalName)
  principalName!: string | null;

  @Column(AUDIT_LOG_COLUMNS.principalEmail)
  principalEmail!: string | null;

  /** Rows a query returned, or rows a write changed (or would have, in a dry run). */
  @Column(AUDIT_LOG_COLUMNS.rowCount)
  rowCount!: number | null;

  /** The SQL as the caller sent it; its parameters are never stored. */
  @Column(AUDIT_LOG_COLUMNS.sqlText)
  sqlText!: string | null;

  /** sha256 (hex) of the JSON of the bound parameters, when there were any. */
  @Column(AUDIT_LOG_COLUMNS.paramsHash)
  paramsHash!: string | null;

  @Column(AUDIT_LOG_COLUMNS.protocolVersion)
  protocolVersion!: string | null;

  @Column(AUDIT_LOG_COLUMNS.userAgent)
  userAgent!: string | null;

  /** The `table` argument of the tools that take one (insert_rows, describe_table, ...). */
  @Column(TABLE_NAME_COLUMN)
  tableName!: string | null;
}
