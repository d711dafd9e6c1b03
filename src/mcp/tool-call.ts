import { Injectable, Logger } from '@nestjs/common';
import type { CallToolResult } from '@modelcontextprotocol/server';
import { AuditService } from '../audit/audit.service.js';
import { AuditUnavailableError } from '../audit/audit-unavailable.js';
import { InsufficientScopeException } from '../auth/oauth.exceptions.js';
import { exceedsDepth, refusedArguments } from './json-limits.js';
import { toolCallEvent } from './tool-audit.js';
import { messageOf, type ToolContext, ToolError, type ToolOutput } from './tool-context.js';
import type { RegisteredTool } from './tool-registry.js';
import { validateWith } from './validate.js';

type Step<T> = { ok: true; value: T } | { ok: false; result: CallToolResult };

function errorResult(text: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text }] };
}

/** The database's own error code (better-sqlite3's SqliteError carries one), if any. */
function errorCode(error: unknown): string | undefined {
  if (error instanceof ToolError) return error.code;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A `tools/call`, in named steps after the SDK's own handler: validateToolInput ->
 * executeToolHandler (Nest's guards and interceptors, audit among them, then the method) ->
 * validateToolOutput, a failure mapped to an `isError` result at each step. Both the SDK's
 * McpServer and the direct path answer calls through it, with the SDK's messages.
 *
 * Fail closed: when a record the call needs cannot be written, it rejects with
 * AuditUnavailableError; nothing may be answered then, not even an error result.
 */
@Injectable()
export class ToolCallPipeline {
  private readonly logger = new Logger('ToolCall');

  constructor(private readonly audit: AuditService) {}

  async call(tool: RegisteredTool, args: unknown, context: ToolContext): Promise<CallToolResult> {
    const started = performance.now();
    const input = await this.validateToolInput(tool, args, context, started);
    if (!input.ok) return input.result;
    const output = await this.executeToolHandler(tool, input.value, args, context);
    if (!output.ok) return output.result;
    return this.validateToolOutput(tool, output.value, args, context);
  }

  /**
   * The arguments as sent, against the tool's input schema (reserved keys and depth first: zod
   * drops a `__proto__` key silently). A refusal is audited: it is a call that did not run.
   */
  private async validateToolInput(
    tool: RegisteredTool,
    args: unknown,
    context: ToolContext,
    started: number,
  ): Promise<Step<unknown>> {
    const refused = refusedArguments(args);
    const input =
      refused === undefined
        ? await validateWith(tool.options.input, args ?? {})
        : { ok: false as const, error: refused };
    if (input.ok) return input;
    const message = `Input validation error: Invalid arguments for tool ${tool.name}: ${input.error}`;
    // What it would have run, unless too deep to hash.
    await this.audit.record({
      ...toolCallEvent(tool.options.audit, context, exceedsDepth(args) ? undefined : args),
      outcome: 'tool_error',
      reason: message,
      durationMs: performance.now() - started,
    });
    return { ok: false, result: errorResult(message) };
  }

  /** The tool's method behind its guards and interceptors (the audit interceptor records it). */
  private async executeToolHandler(
    tool: RegisteredTool,
    input: unknown,
    args: unknown,
    context: ToolContext,
  ): Promise<Step<ToolOutput<object>>> {
    try {
      return { ok: true, value: await tool.handler(input, context) };
    } catch (error) {
      if (error instanceof AuditUnavailableError) throw error;
      return { ok: false, result: await this.toolFailure(tool, args, context, error) };
    }
  }

  /**
   * The structured result against the output schema: a mismatch is a defect of the tool. The
   * call's record says it ran; a second record says the caller got an error instead of its result.
   */
  private async validateToolOutput(
    tool: RegisteredTool,
    output: ToolOutput<object>,
    args: unknown,
    context: ToolContext,
  ): Promise<CallToolResult> {
    const checked =
      (output as Partial<ToolOutput<object>> | undefined)?.data === undefined
        ? undefined
        : await validateWith(tool.options.output, output.data);
    if (checked?.ok)
      return { content: [{ type: 'text', text: output.text }], structuredContent: output.data };
    const message =
      checked === undefined
        ? `Output validation error: Tool ${tool.name} has an output schema but no structured content was provided`
        : `Output validation error: Invalid structured content for tool ${tool.name}: ${checked.error}`;
    this.logger.error(`${tool.declaredAt} returned what its output schema refuses: ${message}`);
    await this.audit.record({
      ...toolCallEvent(tool.options.audit, context, args),
      outcome: 'tool_error',
      reason: message,
    });
    return errorResult(message);
  }

  /** A failure of the method or of its guards, as the caller sees it. */
  private async toolFailure(
    tool: RegisteredTool,
    args: unknown,
    context: ToolContext,
    error: unknown,
  ): Promise<CallToolResult> {
    if (error instanceof InsufficientScopeException) {
      // The backstop refused what the HTTP-level challenge did not (it must not happen in practice).
      this.logger.warn(
        `tool ${tool.name} refused in its pipeline: ${error.message} sub=${context.principal?.subject ?? '-'}`,
      );
      await this.audit.record({
        ...toolCallEvent(tool.options.audit, context, args),
        outcome: 'refused_scope',
        reason: error.message,
      });
      return errorResult(`Forbidden: ${error.message}`);
    }
    const code = errorCode(error);
    const message = messageOf(error);
    if (!(error instanceof ToolError) && code === undefined)
      this.logger.error(`tool ${tool.name} failed`, error instanceof Error ? error.stack : message);
    return errorResult(`Error${code ? ` [${code}]` : ''}: ${message}`);
  }
}
