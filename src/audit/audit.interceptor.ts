import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { defer, lastValueFrom, type Observable } from 'rxjs';
import { MCP_TOOL_KEY, type McpToolOptions } from '../mcp/mcp-tool.decorator.js';
import type { PromiseInterceptor } from '../mcp/promise-interceptor.js';
import { ranOf, rowCountOf, toolCallEvent } from '../mcp/tool-audit.js';
import {
  messageOf,
  TOOL_CONTEXT_TYPE,
  type ToolContext,
  type ToolOutput,
} from '../mcp/tool-context.js';
import { AuditUnavailableError } from './audit-unavailable.js';
import { AuditService } from './audit.service.js';

type Handler = ReturnType<ExecutionContext['getHandler']>;

/**
 * Records every tool call that reaches its method: who, which client, which tool, outcome, time,
 * and what the tool declares its records carry (`@McpTool({ audit })`, `ToolOutput.audit`:
 * statement, table, rows). The record is committed before the result goes back, so an answered
 * call is an audited call. A tool that is not read-only (annotations) first commits an intent, and
 * runs only once it is committed: its change never comes before its record.
 *
 * One implementation, two forms: `interceptAsync` for the tool pipeline's promise chain, and
 * `intercept` (an Observable over the same) where another interceptor has only that form.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor, PromiseInterceptor {
  /** Each tool method's @McpTool options, read once. */
  private readonly options = new WeakMap<Handler, McpToolOptions | undefined>();

  constructor(
    private readonly audit: AuditService,
    private readonly reflector: Reflector,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType<string>() !== TOOL_CONTEXT_TYPE) return next.handle();
    return defer(() => this.interceptAsync(context, () => lastValueFrom(next.handle())));
  }

  async interceptAsync(context: ExecutionContext, next: () => Promise<unknown>): Promise<unknown> {
    if (context.getType<string>() !== TOOL_CONTEXT_TYPE) return next();
    const input = context.getArgByIndex<unknown>(0);
    const call = context.getArgByIndex<ToolContext>(1);
    const options = this.optionsOf(context.getHandler());
    const audit = options?.audit;
    const event = toolCallEvent(audit, call, input);
    const started = performance.now();
    const readOnly = options?.annotations.readOnlyHint === true;
    // A write (or a tool that does not say it is read-only): intent first, then the write.
    const intent = readOnly ? undefined : await this.audit.begin(event);
    const settle = (
      details: { outcome: 'success' | 'tool_error'; reason?: string; rowCount?: number },
      output?: ToolOutput<object>,
    ) => {
      const outcome = { ...details, durationMs: performance.now() - started };
      return intent
        ? this.audit.complete(intent, outcome)
        : this.audit.record({ ...event, ...ranOf(output), ...outcome });
    };
    try {
      const output = (await next()) as ToolOutput<object> | undefined;
      await settle({ outcome: 'success', rowCount: rowCountOf(audit, output) }, output);
      return output;
    } catch (error) {
      if (error instanceof AuditUnavailableError) throw error;
      await settle({ outcome: 'tool_error', reason: messageOf(error) });
      throw error;
    }
  }

  private optionsOf(handler: Handler): McpToolOptions | undefined {
    if (!this.options.has(handler))
      this.options.set(handler, this.reflector.get<McpToolOptions>(MCP_TOOL_KEY, handler));
    return this.options.get(handler);
  }
}
