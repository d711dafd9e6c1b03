// The direct path: answering a plain `tools/call` (2025-era or 2026-07-28) without building an SDK
// server for it. An optimisation only (MCP_DIRECT_TOOL_CALLS): deleting this file and its one call
// in McpHandlerService.handle leaves every request to the SDK, with the same answers.
import { type CallToolResult, SERVER_INFO_META_KEY } from '@modelcontextprotocol/server';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { AuditUnavailableError, sendAuditUnavailable } from '../audit/audit-unavailable.js';
import { type DirectEra, directRequestOf, isPlainObject, mcpNameAgrees } from './direct-request.js';
import { messageOf } from './tool-context.js';

/** A JSON-RPC `tools/call` request that can be answered without the SDK's server. */
export interface DirectToolCall {
  id: string | number;
  name: string;
  arguments: Record<string, unknown> | undefined;
  served: DirectEra;
}

const PARAM_KEYS = new Set(['name', 'arguments', '_meta']);

/**
 * The request, when it is one a per-request SDK server would answer by running the tool and
 * nothing else: one JSON-RPC request for `tools/call` (direct-request.ts: the era's headers and
 * envelope) whose params are exactly `name`, `arguments` and `_meta`, and in the 2026-07-28 era an
 * Mcp-Name header naming the tool. Anything else (batches, notifications, tasks, bad headers,
 * malformed envelopes) is undefined: the SDK answers it, including its error responses.
 */
export function directToolCallOf(
  headers: IncomingHttpHeaders,
  body: unknown,
): DirectToolCall | undefined {
  const rpc = directRequestOf(headers, body, 'tools/call');
  if (!rpc) return undefined;
  const { params } = rpc;
  if (typeof params.name !== 'string') return undefined;
  for (const key of Object.keys(params)) if (!PARAM_KEYS.has(key)) return undefined;
  const args = params.arguments;
  if (args !== undefined && !isPlainObject(args)) return undefined;
  if (rpc.served.era === 'modern' && !mcpNameAgrees(headers, params.name)) return undefined;
  return { id: rpc.id, name: params.name, arguments: args, served: rpc.served };
}

/**
 * The answer's JSON text, as the SDK writes it: the result's members in its wire schema's order
 * (content, structuredContent, isError); in the 2026-07-28 era then `resultType` and the `_meta`
 * stamped with the server's identity (the SDK's encode contract; tools/call results carry no cache
 * fields). The pipeline's results have no other members.
 */
export function toolCallAnswer(
  served: DirectEra,
  id: string | number,
  result: CallToolResult,
  serverInfo: { name: string; version: string },
): string {
  const wire: Record<string, unknown> = { content: result.content };
  if (result.structuredContent !== undefined) wire.structuredContent = result.structuredContent;
  if (result.isError !== undefined) wire.isError = result.isError;
  if (served.era === 'modern') {
    wire.resultType = 'complete';
    wire._meta = { [SERVER_INFO_META_KEY]: serverInfo };
  }
  return JSON.stringify({ result: wire, jsonrpc: '2.0', id });
}

/**
 * Runs a tool call through the tool-call pipeline; undefined when the caller may not see a tool
 * of that name, or the SDK would check more than the direct path does (then the SDK answers).
 */
export type RunToolCall = (
  name: string,
  args: unknown,
  served: DirectEra,
) => Promise<CallToolResult> | undefined;

/**
 * Answers the request when it is a plain `tools/call` (directToolCallOf): the same answer as the
 * SDK's McpServer, as `application/json` (what the SDK sends in the 2026-07-28 era; a 2025-era
 * client takes either), without building a server, a transport and web Request/Response objects
 * for it; most of a database server's traffic. False when it is not one: the SDK answers it.
 */
export async function answerDirectToolCall(
  request: IncomingMessage,
  response: ServerResponse,
  body: unknown,
  run: RunToolCall,
  serverInfo: { name: string; version: string },
): Promise<boolean> {
  const rpc = directToolCallOf(request.headers, body);
  const running = rpc && run(rpc.name, rpc.arguments ?? {}, rpc.served);
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
    const text = toolCallAnswer(rpc.served, rpc.id, result, serverInfo);
    response.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
    });
    response.end(text);
  }
  return true;
}
