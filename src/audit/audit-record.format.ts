import { z } from 'zod';
import { AUDIT_OUTCOMES, type AuditRecord } from './audit-record.entity.js';

const nullable = z.string().nullable();

/** An audit record as get_audit_log and audit:export give it out. */
export const auditRecordJson = z.object({
  id: z.number().int(),
  time: z.string(),
  outcome: z.enum(AUDIT_OUTCOMES),
  tool: nullable,
  subject: nullable,
  subject_unverified: z.boolean(),
  principal_name: nullable,
  principal_email: nullable,
  client_id: nullable,
  token_id: nullable,
  required_scopes: z.array(z.string()).nullable(),
  granted_scopes: z.array(z.string()).nullable(),
  reason: nullable,
  table_name: nullable,
  sql_text: nullable,
  params_hash: nullable,
  row_count: z.number().int().nullable(),
  duration_ms: z.number().int().nullable(),
  request_id: nullable,
  remote_address: nullable,
  user_agent: nullable,
  protocol_version: nullable,
});
export type AuditRecordJson = z.infer<typeof auditRecordJson>;

/** A row as TypeORM (boolean) or better-sqlite3 (0/1) reads it. */
export type StoredAuditRecord = Omit<AuditRecord, 'subjectUnverified'> & {
  subjectUnverified: boolean | number;
};

const scopes = (text: string | null) => (text === null ? null : text.split(' ').filter(Boolean));

export function toAuditJson(record: StoredAuditRecord): AuditRecordJson {
  return {
    id: record.id,
    time: record.time,
    outcome: record.outcome,
    tool: record.tool,
    subject: record.subject,
    subject_unverified: Boolean(record.subjectUnverified),
    principal_name: record.principalName,
    principal_email: record.principalEmail,
    client_id: record.clientId,
    token_id: record.tokenId,
    required_scopes: scopes(record.requiredScopes),
    granted_scopes: scopes(record.grantedScopes),
    reason: record.reason,
    table_name: record.tableName,
    sql_text: record.sqlText,
    params_hash: record.paramsHash,
    row_count: record.rowCount,
    duration_ms: record.durationMs,
    request_id: record.requestId,
    remote_address: record.remoteAddress,
    user_agent: record.userAgent,
    protocol_version: record.protocolVersion,
  };
}

/** An ISO 8601 date-time with `Z` or an offset, e.g. 2026-05-01T00:00:00Z. */
export const isoDateTime = z.iso.datetime({ offset: true });

/** The form records store `time` in (UTC, milliseconds), so that text order is time order. */
export const storedTime = (iso: string): string => new Date(iso).toISOString();
