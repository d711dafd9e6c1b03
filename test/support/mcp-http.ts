/** Hand-made MCP requests over real HTTP, for asserting exact statuses and headers. */

export const LEGACY_PROTOCOL = '2025-11-25';

export interface McpResponse {
  status: number;
  headers: Headers;
  /** The JSON-RPC message (from a JSON body or the first SSE data event), if any. */
  message:
    { result?: Record<string, unknown>; error?: { code: number; message: string } } | undefined;
  body: string;
}

export async function postMcp(
  url: string,
  body: unknown,
  options: { token?: string; headers?: Record<string, string> } = {},
): Promise<McpResponse> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': LEGACY_PROTOCOL,
      ...(options.token && { Authorization: `Bearer ${options.token}` }),
      ...options.headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let message: McpResponse['message'];
  const contentType = response.headers.get('content-type') ?? '';
  if (contentType.includes('text/event-stream')) {
    const data = text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
      .find((line) => line.trim() !== '');
    message = data ? (JSON.parse(data) as McpResponse['message']) : undefined;
  } else if (contentType.includes('application/json') && text) {
    message = JSON.parse(text) as McpResponse['message'];
  }
  return { status: response.status, headers: response.headers, message, body: text };
}

/** A tools/call result, as the tests read it. */
export interface ToolResult {
  isError?: boolean;
  content: { type: string; text: string }[];
  structuredContent?: Record<string, unknown>;
}

let nextId = 1;
export function rpc(method: string, params: Record<string, unknown> = {}) {
  return { jsonrpc: '2.0', id: nextId++, method, params };
}

export function initialize() {
  return rpc('initialize', {
    protocolVersion: LEGACY_PROTOCOL,
    capabilities: {},
    clientInfo: { name: 'e2e', version: '1.0.0' },
  });
}

export function callTool(name: string, args: Record<string, unknown> = {}) {
  return rpc('tools/call', { name, arguments: args });
}

/** Parses `Bearer k="v", ...` into its parameters. */
export function challengeParams(header: string | null): Record<string, string> {
  if (!header?.startsWith('Bearer ')) throw new Error(`not a Bearer challenge: ${header}`);
  const params: Record<string, string> = {};
  for (const match of header.slice(7).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
    params[match[1]] = match[2].replace(/\\(.)/g, '$1');
  return params;
}
