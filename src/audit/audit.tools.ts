import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import { McpTool, READ_ONLY_TOOL } from '../mcp/mcp-tool.decorator.js';
import { DATABASE_SCOPES } from '../tools/scopes.js';
import { ToolError, type ToolOutput } from '../mcp/tool-context.js';
import { AUDIT_OUTCOMES } from './audit-record.entity.js';
import { auditRecordJson, isoDateTime, storedTime, toAuditJson } from './audit-record.format.js';
import { AuditService } from './audit.service.js';

const AUDIT_PAGE_DEFAULT = 50;
const AUDIT_PAGE_MAX = 500;

const text = z.string().min(1).max(255);
const getAuditLogInput = z.object({
  since: isoDateTime.optional().describe('Only records at or after this ISO 8601 date-time'),
  until: isoDateTime.optional().describe('Only records before this ISO 8601 date-time'),
  principal: text.optional().describe("Only this user (the token's sub)"),
  client: text.optional().describe('Only this OAuth client id'),
  tool: text.optional().describe('Only calls of this tool'),
  outcome: z.enum(AUDIT_OUTCOMES).optional(),
  limit: z.number().int().min(1).max(AUDIT_PAGE_MAX).default(AUDIT_PAGE_DEFAULT),
  cursor: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('next_cursor of the previous page, with the same filters'),
});

const getAuditLogOutput = z.object({
  records: z.array(auditRecordJson),
  next_cursor: z.string().nullable(),
});
type AuditLogPage = z.infer<typeof getAuditLogOutput>;

/** Opaque to callers; a position in the trail (records older than `id` come next). */
export function encodeCursor(id: number): string {
  return Buffer.from(JSON.stringify({ id })).toString('base64url');
}

export function decodeCursor(cursor: string): number {
  const invalid = () =>
    new ToolError(
      'cursor is not one that get_audit_log gave out; pass next_cursor unchanged, or omit it to start from the newest record',
      'INVALID_CURSOR',
    );
  let id: unknown;
  try {
    id = (JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { id?: unknown } | null)
      ?.id;
  } catch {
    throw invalid();
  }
  // Only the exact encoding of a positive id: anything else was not made here.
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1 || encodeCursor(id) !== cursor)
    throw invalid();
  return id;
}

/** Reading the audit trail: the only way to it, as the SQL tools refuse the table. */
@Injectable()
@RequireScopes(DATABASE_SCOPES.admin)
export class AuditTools {
  constructor(private readonly audit: AuditService) {}

  @McpTool({
    name: 'get_audit_log',
    title: 'Read the audit log',
    description:
      'Audit records, newest first: who (sub, name, client), which tool, table and SQL (parameters only as a sha256), outcome, rows, duration, request id, address, user agent. A write is recorded as pending before it runs and completed with its outcome; interrupted means the server stopped before its outcome was recorded. Filters are combined with AND; since is inclusive, until exclusive. At most limit records (default 50, at most 500); pass next_cursor back as cursor for the next page.',
    input: getAuditLogInput,
    output: getAuditLogOutput,
    annotations: READ_ONLY_TOOL,
  })
  async getAuditLog(input: z.infer<typeof getAuditLogInput>): Promise<ToolOutput<AuditLogPage>> {
    const beforeId = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
    // One more than asked tells whether another page follows.
    const found = await this.audit.search({
      since: input.since === undefined ? undefined : storedTime(input.since),
      until: input.until === undefined ? undefined : storedTime(input.until),
      subject: input.principal,
      clientId: input.client,
      tool: input.tool,
      outcome: input.outcome,
      beforeId,
      limit: input.limit + 1,
    });
    const records = found.slice(0, input.limit).map(toAuditJson);
    const next_cursor =
      found.length > input.limit ? encodeCursor(records[records.length - 1].id) : null;
    const lines = records.map(
      (r) =>
        `#${r.id} ${r.time} ${r.outcome} ${r.tool ?? '-'} sub=${r.subject ?? '-'}` +
        ` client=${r.client_id ?? '-'}` +
        (r.table_name === null ? '' : ` table=${JSON.stringify(r.table_name)}`) +
        (r.row_count === null ? '' : ` rows=${r.row_count}`) +
        (r.sql_text === null ? '' : ` sql=${JSON.stringify(r.sql_text.slice(0, 200))}`) +
        (r.reason === null ? '' : ` reason=${JSON.stringify(r.reason)}`),
    );
    lines.push(
      next_cursor !== null
        ? `More records: call again with cursor ${next_cursor}`
        : records.length === 0
          ? 'No record matches.'
          : 'No more records.',
    );
    return { data: { records, next_cursor }, text: lines.join('\n') };
  }
}
