import { z } from 'zod';
import type { AuditOutcome, AuditRecord } from './audit-record.entity.js';

/** An audit record as get_audit_log and audit:export give it out. */
export interface AuditRecordJson {
  id: number;
  time: string;
  outcome: AuditOutcome;
  tool: string | null;
  subject: string | null;
  subject_unverified: boolean;
  principal_name: string | null;
  principal_email: string | null;
  client_id: string | null;
  token_id: string | null;
  required_scopes: string[] | null;
  granted_scopes: string[] | null;
  reason: string | null;
  table_name: string | null;
  sql_text: string | null;
  params_hash: string | null;
  row_count: number | null;
  duration_ms: number | null;
  request_id: string | null;
  remote_address: string | null;
  user_agent: string | null;
  protocol_version: string | null;
}

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
