import type { AuditUnavailableError } from '../audit/audit-unavailable.js';
import type { Principal } from '../auth/principal.js';
import type { RequestInfo } from '../common/request-info.js';
import type { ToolContext } from './tool-context.js';
import type { RegisteredTool } from './tool-registry.js';

/** A `tools/call` in a request body, as sent. */
export interface ToolCallInBody {
  name: string;
  id: unknown;
  arguments: unknown;
}

/** Each tools/call's arguments as sent, by JSON-RPC id. */
export type CallArguments = Map<string | number, unknown>;

/** The tool calls of a request body, read once (by the controller) for everything after it. */
export interface ToolCallsInBody {
  calls: ToolCallInBody[];
  /** The body is tool calls and nothing else (the per-request server needs only their tools). */
  only: boolean;
  /**
   * Each call's arguments as sent, by JSON-RPC id (ids sent twice are left out): the SDK's own
   * request schema drops a top-level `__proto__` key, which the pipeline must see to refuse.
   */
  arguments: CallArguments;
}

/** The tool calls of a JSON-RPC message or batch. */
export function toolCallsOf(body: unknown): ToolCallsInBody {
  const messages: unknown[] = Array.isArray(body) ? body : [body];
  const calls = messages.flatMap((message) => {
    const m = message as {
      method?: unknown;
      id?: unknown;
      params?: { name?: unknown; arguments?: unknown };
    } | null;
    return m?.method === 'tools/call' && typeof m.params?.name === 'string'
      ? [{ name: m.params.name, id: m.id, arguments: m.params.arguments }]
      : [];
  });
  const byId: CallArguments = new Map();
  const repeated = new Set<unknown>();
  for (const call of calls) {
    if (typeof call.id !== 'string' && typeof call.id !== 'number') continue;
    if (byId.has(call.id)) repeated.add(call.id);
    byId.set(call.id, call.arguments);
  }
  for (const id of repeated) byId.delete(id as string | number);
  return { calls, only: calls.length > 0 && calls.length === messages.length, arguments: byId };
}

/** What the per-request handling is for: who calls, from where, and which tools. */
export interface CallScope extends RequestInfo {
  principal: Principal;
  toolCalls: ToolCallsInBody;
  /** Set when a record this request needs could not be written: it is answered 503 instead. */
  auditFailure: AuditUnavailableError | undefined;
}

/** What a tool sees of the call it serves. */
export function toolContextOf(tool: RegisteredTool, call: CallScope): ToolContext {
  return {
    tool: tool.name,
    principal: call.principal,
    requiredScopes: tool.requiredScopes,
    requestId: call.requestId,
    remoteAddress: call.remoteAddress,
    userAgent: call.userAgent,
    protocolVersion: call.protocolVersion,
  };
}
