import type { AuditRecord } from '../../src/audit/audit-record.entity.js';
import { match } from './matchers.js';
import { type McpResponse, postMcp } from './mcp-http.js';
import { nextRequestId } from './request-ids.js';
import { readSqlite } from './sqlite-files.js';

/** An audit_log row as SQLite stores it: the entity's columns, its boolean as 0 or 1. */
export type AuditRow = Omit<AuditRecord, 'subjectUnverified'> & { subjectUnverified: 0 | 1 };

/**
 * The audit rows in a SQLite audit file, in id order: those of one request, or all of them. Read
 * through a read-only connection of the test's own; a record is committed before its answer, so
 * no waiting is needed.
 */
export function readAuditRows(path: string, requestId?: string): AuditRow[] {
  return readSqlite(path, (db) =>
    requestId === undefined
      ? db.prepare<[], AuditRow>('SELECT * FROM audit_log ORDER BY id').all()
      : db
          .prepare<[string], AuditRow>('SELECT * FROM audit_log WHERE requestId = ? ORDER BY id')
          .all(requestId),
  );
}

/** How many rows a SQLite audit file holds. */
export function countAuditRows(path: string): number {
  return readSqlite(path, (db) =>
    db.prepare<[], number>('SELECT count(*) FROM audit_log').pluck().get(),
  )!;
}

/** What a server under test needs for an audited request: its endpoint and its audit file. */
export interface AuditedServer {
  mcpUrl: string;
  auditDatabasePath: string;
}

/**
 * POSTs `body` to the MCP endpoint with a request id of its own (X-Request-Id, `prefix`-...); the
 * answer, and the audit rows written for that request.
 */
export async function postAudited(
  server: AuditedServer,
  prefix: string,
  body: unknown,
  options: { token?: string; headers?: Record<string, string> } = {},
): Promise<{ requestId: string; response: McpResponse; records: AuditRow[] }> {
  const requestId = nextRequestId(prefix);
  const response = await postMcp(server.mcpUrl, body, {
    token: options.token,
    headers: { 'X-Request-Id': requestId, ...options.headers },
  });
  return { requestId, response, records: readAuditRows(server.auditDatabasePath, requestId) };
}

/**
 * Expects the answer to a call refused for want of a scope (403), recorded once as refused_scope
 * of `tool` with these fields among its own.
 */
export function expectRefusedScope(
  answer: { response: McpResponse; records: readonly object[] },
  tool: string,
  fields: Record<string, unknown> = {},
): void {
  expect(answer.response.status).toBe(403);
  expect(answer.records).toEqual([
    match.objectContaining({ outcome: 'refused_scope', tool, ...fields }),
  ]);
}
