import type { Principal } from '../auth/principal.js';
import type { RequestInfo } from '../common/request-info.js';

/** Nest's context type of a tool pipeline (`ExecutionContext.getType()`). */
export const TOOL_CONTEXT_TYPE = 'mcp';

/** The second argument of every tool method, and what guards and interceptors see of a call. */
export interface ToolContext extends RequestInfo {
  tool: string;
  principal: Principal;
  /** The tool's scopes (class and method merged), as the registry resolved them. */
  requiredScopes: readonly string[];
}

/**
 * What a call ran, told by the tool itself when its arguments do not say it (a statement of its
 * own, the rows it read). A read-only tool's record takes all of it; a write's record is committed
 * before the write runs (with what its `@McpTool({ audit })` fields say), and takes the row count.
 */
export interface ToolRunAudit {
  statement?: string;
  /** Bound parameters: stored only as a hash, never a value. */
  params?: unknown;
  table?: string;
  rowCount?: number;
}

/** What a tool method returns: the structured result, its rendering for the model, and audit. */
export interface ToolOutput<T extends object> {
  data: T;
  text: string;
  audit?: ToolRunAudit;
}

/** A failure the caller can act on; becomes an `isError` result with this message. */
export class ToolError extends Error {
  override name = 'ToolError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** An error's message, also for errors from another realm (native addons, VM contexts). */
export function messageOf(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(error);
}
