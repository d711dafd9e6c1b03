import { type CallHandler, type ExecutionContext, Injectable, type NestInterceptor } from '@nestjs/common';
import { type Observable, tap } from 'rxjs';
import { TOOL_CONTEXT_TYPE } from '../mcp/tool-registry.js';
import type { ToolContext } from '../mcp/tool-context.js';
import { AuditService } from './audit.service.js';

/** Records every tool call that reaches its method: who, which client, which tool, outcome, time. */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(private readonly audit: AuditService) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType<string>() !== TOOL_CONTEXT_TYPE) return next.handle();
    const call = context.getArgByIndex<ToolContext>(1);
    const started = performance.now();
    const record = (outcome: 'success' | 'tool_error', reason?: string) =>
      void this.audit.record({
        outcome,
        principal: call.principal,
        tool: call.tool,
        reason,
        durationMs: performance.now() - started,
        requestId: call.requestId,
      });
    return next.handle().pipe(
      tap({
        next: () => record('success'),
        error: (error: unknown) => record('tool_error', error instanceof Error ? error.message : String(error)),
      }),
    );
  }
}
