import { callTool, postMcp, type ToolResult } from './mcp-http.js';
import { match } from './matchers.js';

/** A tool result's text blocks, joined. */
export const textOf = (result: ToolResult) => result.content.map((block) => block.text).join('\n');

/**
 * A client of one MCP endpoint with one token: tool calls over real HTTP, and the order in which
 * they settled (in `settled`, which clients may share).
 */
export function toolClient(mcpUrl: string, token: string, settled: string[] = []) {
  async function call(name: string, args: Record<string, unknown>): Promise<ToolResult> {
    const response = await postMcp(mcpUrl, callTool(name, args), { token });
    expect(response.status).toBe(200);
    const result = response.message?.result as ToolResult | undefined;
    if (!result) throw new Error(`no tools/call result: ${response.body}`);
    return result;
  }
  /** Calls a tool; `label` goes into `settled` when the answer arrives, with the time it took. */
  async function timed(label: string, name: string, args: Record<string, unknown>) {
    const started = performance.now();
    const result = await call(name, args);
    settled.push(label);
    return { result, ms: performance.now() - started };
  }
  /** Calls a tool that must succeed; its structured result. */
  async function ok(name: string, args: Record<string, unknown>) {
    const result = await call(name, args);
    expect({ isError: result.isError ?? false, text: textOf(result) }).toEqual({
      isError: false,
      text: match.any(String),
    });
    return result.structuredContent!;
  }
  /** Calls a tool that must fail; the error text. */
  async function refused(name: string, args: Record<string, unknown>): Promise<string> {
    const result = await call(name, args);
    expect(result.isError).toBe(true);
    return textOf(result);
  }
  return { call, timed, ok, refused, settled, token };
}

export type ToolClient = ReturnType<typeof toolClient>;
