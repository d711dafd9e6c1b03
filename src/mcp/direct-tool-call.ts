// The direct path: answering a plain 2025-era `tools/call` without building an SDK server for
// it. An optimisation only (MCP_DIRECT_TOOL_CALLS): deleting this file and its one call in
// McpHandlerService.handle leaves every request to the SDK, with the same answers.
import {
  type CallToolResult,
  classifyInboundRequest,
  isJsonContentType,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/server';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { AuditUnavailableError, sendAuditUnavailable } from '../audit/audit-unavailable.js';
import { messageOf } from './tool-context.js';

/** A 2025-era JSON-RPC `tools/call` request that can be answered without the SDK's server. */
export interface DirectToolCall {
  id: string | number;
  name: string;
  arguments: Record<string, unknown> | undefined;
}

const PARAM_KEYS = new Set(['name', 'arguments', '_meta']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * The request, when it is one a per-request SDK server would answer by running the tool and
 * nothing else: a POST with a JSON body holding one 2025-era (legacy) JSON-RPC request for
 * `tools/call` whose params are exactly `name`, `arguments` and `_meta`, from a client that
 * accepts both JSON and SSE answers and names a supported protocol version (or none). Anything
 * else (batches, notifications, 2026-07-28 envelopes, tasks, bad headers) is undefined: the SDK
 * answers it, including its error responses. The era decision is the SDK's own classifier.
 */
export function directToolCallOf(
  headers: IncomingHttpHeaders,
  body: unknown,
): DirectToolCall | undefined {
  if (!isPlainObject(body) || body.method !== 'tools/call' || body.jsonrpc !== '2.0')
    return undefined;
  const id = body.id;
  if (typeof id !== 'string' && !(typeof id === 'number' && Number.isInteger(id))) return undefined;
  const params = body.params;
  if (!isPlainObject(params) || typeof params.name !== 'string') return undefined;
  for (const key of Object.keys(params)) if (!PARAM_KEYS.has(key)) return undefined;
  const args = params.arguments;
  if (args !== undefined && !isPlainObject(args)) return undefined;
  if (params._meta !== undefined && !isPlainObject(params._meta)) return undefined;

  if (!isJsonContentType(header(headers, 'content-type') ?? null)) return undefined;
  const accept = header(headers, 'accept');
  if (!accept?.includes('application/json') || !accept.includes('text/event-stream'))
    return undefined;
  const protocolVersion = header(headers, 'mcp-protocol-version');
  if (protocolVersion !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(protocolVersion))
    return undefined;
  const era = classifyInboundRequest({
    httpMethod: 'POST',
    protocolVersionHeader: protocolVersion,
    mcpMethodHeader: header(headers, 'mcp-method'),
    mcpNameHeader: header(headers, 'mcp-name'),
    body,
  });
  if (era.kind !== 'legacy') return undefined;
  return { id, name: params.name, arguments: args };
}

/**
 * Runs a tool call through the tool-call pipeline; undefined when the caller may not see a tool
 * of that name (then the SDK answers, with its JSON-RPC error).
 */
export type RunToolCall = (name: string, args: unknown) => Promise<CallToolResult> | undefined;

/**
 * Answers the request when it is a plain 2025-era `tools/call` (directToolCallOf): the same
 * answer as the SDK's McpServer, as `application/json`, without building a server, a transport
 * and web Request/Response objects for it; most of a database server's traffic. False when it
 * is not one: the SDK answers it.
 */
export async function answerDirectToolCall(
  request: IncomingMessage,
  response: ServerResponse,
  body: unknown,
  run: RunToolCall,
): Promise<boolean> {
  const rpc = directToolCallOf(request.headers, body);
  const running = rpc && run(rpc.name, rpc.arguments ?? {});
  if (!rpc || !running) return false;
  let result: CallToolResult;
  try {
    result = await running;
  } catch (error) {
    if (error instanceof AuditUnavailableError) {
      sendAuditUnavailable(response, rpc.id);
      return true;
    }
    // As McpServer answers a handler that throws.
    result = { content: [{ type: 'text', text: messageOf(error) }], isError: true };
  }
  if (!response.headersSent) {
    const body = JSON.stringify({ result, jsonrpc: '2.0', id: rpc.id });
    response.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
    });
    response.end(body);
  }
  return true;
}
