import type { AuditEvent, ToolAttempt } from '../audit/audit.service.js';
import type { AuditFieldNames } from './mcp-tool.decorator.js';
import type { ToolContext, ToolOutput } from './tool-context.js';

/** A field of the arguments or result, read only from the object itself (never a prototype). */
function field(object: unknown, name: string | undefined): unknown {
  if (name === undefined || typeof object !== 'object' || object === null) return undefined;
  return Object.hasOwn(object, name) ? (object as Record<string, unknown>)[name] : undefined;
}

const text = (value: unknown) => (typeof value === 'string' ? value : undefined);

/**
 * What a call would run, as its records keep it: the statement, parameters and table from the
 * fields its tool declares (`@McpTool({ audit })`), from the arguments as sent (also those that
 * its input schema then refuses).
 */
export function attemptOf(audit: AuditFieldNames | undefined, args: unknown): ToolAttempt {
  return {
    sql: text(field(args, audit?.statement)),
    params: field(args, audit?.params),
    table: text(field(args, audit?.table)),
  };
}

/** The rows a call read or changed: as its method told, else from the declared result field. */
export function rowCountOf(
  audit: AuditFieldNames | undefined,
  output: ToolOutput<object> | undefined,
): number | undefined {
  const count = output?.audit?.rowCount ?? field(output?.data, audit?.rowCount);
  return typeof count === 'number' ? count : undefined;
}

/** What a read-only call ran, as its method told it (`ToolOutput.audit`), over what was declared. */
export function ranOf(output: ToolOutput<object> | undefined): ToolAttempt {
  const ran = output?.audit;
  if (!ran) return {};
  return {
    ...(ran.statement !== undefined && { sql: ran.statement }),
    ...(ran.params !== undefined && { params: ran.params }),
    ...(ran.table !== undefined && { table: ran.table }),
  };
}

/**
 * The one builder of a tool call's audit event, but for its outcome: who called which tool from
 * where, with which scopes required, and what the call would run.
 */
export function toolCallEvent(
  audit: AuditFieldNames | undefined,
  context: ToolContext,
  args: unknown,
): Omit<AuditEvent, 'outcome'> {
  return {
    principal: context.principal,
    tool: context.tool,
    requiredScopes: context.requiredScopes,
    ...attemptOf(audit, args),
    requestId: context.requestId,
    remoteAddress: context.remoteAddress,
    userAgent: context.userAgent,
    protocolVersion: context.protocolVersion,
  };
}
