import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { catchError, concatMap, type Observable } from 'rxjs';
import { messageOf, TOOL_CONTEXT_TYPE, type ToolContext } from '../mcp/tool-context.js';
import { AuditService } from './audit.service.js';

/**
 * Records every tool call that reaches its method: who, which client, which tool, outcome, time.
 * The record is written before the result goes back, so an answered call is an audited call.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(private readonly audit: AuditService) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType<string>() !== TOOL_CONTEXT_TYPE) return next.handle();
    const call = context.getArgByIndex<ToolContext>(1);
    const started = performance.now();
    const record = (outcome: 'success' | 'tool_error', reason?: string) =>
      this.audit.record({
        outcome,
        principal: call.principal,
        tool: call.tool,
        reason,
        durationMs: performance.now() - started,
        requestId: call.requestId,
      });
    return next.handle().pipe(
      concatMap(async (result: unknown) => {
        await record('success');
        return result;
      }),
      catchError(async (error: unknown) => {
        await record('tool_error', messageOf(error));
        throw error;
      }),
    );
  }
}
