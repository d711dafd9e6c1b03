import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { catchError, concatMap, type Observable } from 'rxjs';
import { messageOf, TOOL_CONTEXT_TYPE, type ToolContext } from '../mcp/tool-context.js';
import { AuditService } from './audit.service.js';

/** The SQL of a tool's input (query, explain_query, execute, apply_migration) and its params. */
export function statementOf(input: unknown): { sql?: string; params?: unknown } {
  const { sql, params } = (input ?? {}) as { sql?: unknown; params?: unknown };
  return { sql: typeof sql === 'string' ? sql : undefined, params };
}

/** Rows returned (`row_count` of query) or changed (`affected_rows` of the write tools). */
function rowCountOf(output: unknown): number | undefined {
  const data = (output as { data?: { row_count?: unknown; affected_rows?: unknown } } | null)?.data;
  const count = data?.row_count ?? data?.affected_rows;
  return typeof count === 'number' ? count : undefined;
}

/**
 * Records every tool call that reaches its method: who, which client, which tool and SQL, outcome,
 * rows, time. The record is written before the result goes back, so an answered call is an
 * audited call.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(private readonly audit: AuditService) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType<string>() !== TOOL_CONTEXT_TYPE) return next.handle();
    const input = context.getArgByIndex<unknown>(0);
    const call = context.getArgByIndex<ToolContext>(1);
    const started = performance.now();
    const record = (
      outcome: 'success' | 'tool_error',
      details: { reason?: string; rowCount?: number },
    ) =>
      this.audit.record({
        outcome,
        principal: call.principal,
        tool: call.tool,
        requiredScopes: call.requiredScopes,
        ...statementOf(input),
        ...details,
        durationMs: performance.now() - started,
        requestId: call.requestId,
        remoteAddress: call.remoteAddress,
        userAgent: call.userAgent,
        protocolVersion: call.protocolVersion,
      });
    return next.handle().pipe(
      concatMap(async (output: unknown) => {
        await record('success', { rowCount: rowCountOf(output) });
        return output;
      }),
      catchError(async (error: unknown) => {
        await record('tool_error', { reason: messageOf(error) });
        throw error;
      }),
    );
  }
}
