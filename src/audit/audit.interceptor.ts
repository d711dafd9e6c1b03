import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { catchError, concatMap, from, type Observable } from 'rxjs';
import { MCP_TOOL_KEY, type McpToolOptions } from '../mcp/mcp-tool.decorator.js';
import { messageOf, TOOL_CONTEXT_TYPE, type ToolContext } from '../mcp/tool-context.js';
import { AuditUnavailableError } from './audit-unavailable.js';
import { type AuditEvent, AuditService } from './audit.service.js';

/**
 * What a call would run, as its record keeps it: the SQL of query, explain_query, execute and
 * apply_migration with its params, and the `table` of the tools that take one.
 */
export function attemptOf(input: unknown): Pick<AuditEvent, 'sql' | 'params' | 'table'> {
  const { sql, params, table } = (input ?? {}) as {
    sql?: unknown;
    params?: unknown;
    table?: unknown;
  };
  return {
    sql: typeof sql === 'string' ? sql : undefined,
    params,
    table: typeof table === 'string' ? table : undefined,
  };
}

/** Rows returned (`row_count` of query) or changed (`affected_rows` of the write tools). */
function rowCountOf(output: unknown): number | undefined {
  const data = (output as { data?: { row_count?: unknown; affected_rows?: unknown } } | null)?.data;
  const count = data?.row_count ?? data?.affected_rows;
  return typeof count === 'number' ? count : undefined;
}

/**
 * Records every tool call that reaches its method: who, which client, which tool, table and SQL,
 * outcome, rows, time. The record is committed before the result goes back, so an answered call
 * is an audited call. A tool that is not read-only (annotations) first commits an intent, and
 * runs only once it is committed: its change never comes before its record.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(
    private readonly audit: AuditService,
    private readonly reflector: Reflector,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType<string>() !== TOOL_CONTEXT_TYPE) return next.handle();
    const input = context.getArgByIndex<unknown>(0);
    const call = context.getArgByIndex<ToolContext>(1);
    const options = this.reflector.get<McpToolOptions | undefined>(
      MCP_TOOL_KEY,
      context.getHandler(),
    );
    const event = {
      principal: call.principal,
      tool: call.tool,
      requiredScopes: call.requiredScopes,
      ...attemptOf(input),
      requestId: call.requestId,
      remoteAddress: call.remoteAddress,
      userAgent: call.userAgent,
      protocolVersion: call.protocolVersion,
    };
    const started = performance.now();
    const outcomeOf = (details: { reason?: string; rowCount?: number }) => ({
      ...details,
      durationMs: performance.now() - started,
    });

    if (options?.annotations.readOnlyHint === true)
      return next.handle().pipe(
        concatMap(async (output: unknown) => {
          await this.audit.record({
            ...event,
            outcome: 'success',
            ...outcomeOf({ rowCount: rowCountOf(output) }),
          });
          return output;
        }),
        catchError(async (error: unknown) => {
          if (error instanceof AuditUnavailableError) throw error;
          await this.audit.record({
            ...event,
            outcome: 'tool_error',
            ...outcomeOf({ reason: messageOf(error) }),
          });
          throw error;
        }),
      );

    // A write (or a tool that does not say it is read-only): intent first, then the write.
    return from(this.audit.begin(event)).pipe(
      concatMap((intent) =>
        next.handle().pipe(
          concatMap(async (output: unknown) => {
            await this.audit.complete(intent, {
              outcome: 'success',
              ...outcomeOf({ rowCount: rowCountOf(output) }),
            });
            return output;
          }),
          catchError(async (error: unknown) => {
            if (error instanceof AuditUnavailableError) throw error;
            await this.audit.complete(intent, {
              outcome: 'tool_error',
              ...outcomeOf({ reason: messageOf(error) }),
            });
            throw error;
          }),
        ),
      ),
    );
  }
}
