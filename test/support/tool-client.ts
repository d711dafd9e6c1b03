import { readAuditRows, type AuditRow } from './audit-rows.js';
import type { TestIssuer } from './issuer.js';
import { callTool, type McpResponse, postMcp, type ToolResult, toolResultOf } from './mcp-http.js';
import { match } from './matchers.js';
import { nextRequestId } from './request-ids.js';

/** A tool result's text blocks, joined. */
export const textOf = (result: { content: readonly { type: string; text?: string }[] }) =>
  result.content.map((block) => block.text ?? '').join('\n');

export interface ToolClientOptions {
  /** Where `timed` notes the order in which answers arrived; clients may share one. */
  settled?: string[];
  /**
   * Gives each call a request id of its own (X-Request-Id, `requestIds`-...); without it only
   * `traced` and `audited` calls send one.
   */
  requestIds?: string;
  /** Headers every call sends (e.g. User-Agent). */
  headers?: Record<string, string>;
  /** The SQLite file of the server's audit log, for `audited` (read when called). */
  auditDatabasePath?: () => string;
}

/** One tools/call: its request id (if it had one), the HTTP answer and the tool's result. */
export interface ToolCall {
  requestId: string | undefined;
  response: McpResponse;
  result: ToolResult;
}

/**
 * A client of one MCP endpoint with one token: tool calls over real HTTP (each answered 200 with
 * a tools/call result), their text and structured results, and the audit rows they left.
 */
export function toolClient(mcpUrl: string, token: string, options: ToolClientOptions = {}) {
  const settled = options.settled ?? [];

  /** Calls a tool; the request id it was sent with, the answer and the result. */
  async function send(
    name: string,
    args: Record<string, unknown>,
    request: { requestId?: string } = {},
  ): Promise<ToolCall> {
    const requestId =
      request.requestId ?? (options.requestIds ? nextRequestId(options.requestIds) : undefined);
    const response = await postMcp(mcpUrl, callTool(name, args), {
      token,
      headers: { ...options.headers, ...(requestId && { 'X-Request-Id': requestId }) },
    });
    expect(response.status).toBe(200);
    return { requestId, response, result: toolResultOf(response) };
  }
  /** Calls a tool; its result, success or not. */
  async function call(name: string, args: Record<string, unknown> = {}): Promise<ToolResult> {
    return (await send(name, args)).result;
  }
  /** Calls a tool; `label` goes into `settled` when the answer arrives, with the time it took. */
  async function timed(label: string, name: string, args: Record<string, unknown>) {
    const started = performance.now();
    const result = await call(name, args);
    settled.push(label);
    return { result, ms: performance.now() - started };
  }
  /** Calls a tool that must succeed; its structured result (typed as the caller expects it). */
  async function ok<T = Record<string, unknown>>(
    name: string,
    args: Record<string, unknown> = {},
  ): Promise<T> {
    const result = await call(name, args);
    expect({ isError: result.isError ?? false, text: textOf(result) }).toEqual({
      isError: false,
      text: match.any(String),
    });
    return result.structuredContent as T;
  }
  /** Calls a tool that must fail; the error text. */
  async function refused(name: string, args: Record<string, unknown>): Promise<string> {
    const result = await call(name, args);
    expect(result.isError).toBe(true);
    return textOf(result);
  }
  /** Calls a tool with a request id of its own; the id, the answer and the result. */
  async function traced(
    name: string,
    args: Record<string, unknown> = {},
  ): Promise<ToolCall & { requestId: string }> {
    const requestId = nextRequestId(options.requestIds ?? 'tool-client');
    return { ...(await send(name, args, { requestId })), requestId };
  }
  /** Calls a tool with a request id of its own; the result and the audit rows of that request. */
  async function audited(
    name: string,
    args: Record<string, unknown>,
  ): Promise<{ requestId: string; result: ToolResult; records: AuditRow[] }> {
    if (!options.auditDatabasePath) throw new Error('toolClient: no auditDatabasePath given');
    const { requestId, result } = await traced(name, args);
    return { requestId, result, records: readAuditRows(options.auditDatabasePath(), requestId) };
  }
  return {
    send,
    call,
    timed,
    ok,
    refused,
    traced,
    audited,
    settled,
    token,
  };
}

export type ToolClient = ReturnType<typeof toolClient>;

/**
 * A client of the server at `baseUrl` (its `/mcp`) with a token `issuer` signs for it with these
 * scopes; for servers that restart on new ports, make one per server.
 */
export function serverClient(
  baseUrl: string,
  issuer: TestIssuer,
  scope: string,
  { claims, ...options }: ToolClientOptions & { claims?: Record<string, unknown> } = {},
): ToolClient {
  const mcpUrl = `${baseUrl}/mcp`;
  return toolClient(mcpUrl, issuer.token({ audience: mcpUrl, scope, claims }), options);
}
