import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { catchError, concatMap, from, type Observable } from 'rxjs';
import { MCP_TOOL_KEY, type McpToolOptions } from '../mcp/mcp-tool.decorator.js';
import { ranOf, rowCountOf, toolCallEvent } from '../mcp/tool-audit.js';
import {
  messageOf,
  TOOL_CONTEXT_TYPE,
  type ToolContext,
  type ToolOutput,
} from '../mcp/tool-context.js';
import { AuditUnavailableError } from './audit-unavailable.js';
import { AuditService } from './audit.service.js';

/**
 * Records every tool call that reaches its method: who, which client, which tool, outcome, time,
 * and what the tool declares its records carry (`@McpTool({ audit })`, `ToolOutput.audit`:
 * statement, table, rows). The record is committed before the result goes back, so an answered
 * call is an audited call. A tool that is not read-only (annotations) first commits an intent, and
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
    const audit = options?.audit;
    const event = toolCallEvent(audit, call, input);
    const rowsOf = (output: ToolOutput<object> | undefined) => rowCountOf(audit, output);
    const started = performance.now();
    const outcomeOf = (details: { reason?: string; rowCount?: number }) => ({
      ...details,
      durationMs: performance.now() - started,
    });

    if (options?.annotations.readOnlyHint === true)
      return next.handle().pipe(
        concatMap(async (output: ToolOutput<object> | undefined) => {
          await this.audit.record({
            ...event,
            ...ranOf(output),
            outcome: 'success',
            ...outcomeOf({ rowCount: rowsOf(output) }),
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
          concatMap(async (output: ToolOutput<object> | undefined) => {
            await this.audit.complete(intent, {
              outcome: 'success',
              ...outcomeOf({ rowCount: rowsOf(output) }),
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
