/** Hand-made MCP requests over real HTTP, for asserting exact statuses and headers. */

import { request as httpRequest } from 'node:http';
import { LEGACY_PROTOCOL, mcpHeaders, mcpMessageJson } from './mcp-wire.mjs';

export { LEGACY_PROTOCOL };

/** A JSON-RPC message, as the tests read it. */
export interface McpMessage {
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
}

export interface McpResponse {
  status: number;
  headers: Headers;
  /** The JSON-RPC message (from a JSON body or the first SSE data event), if any. */
  message: McpMessage | undefined;
  body: string;
}

/** A POST with a client's headers; `headers` add to them, or remove one given as undefined. */
export async function postMcp(
  url: string,
  body: unknown,
  options: { token?: string; headers?: Record<string, string | undefined> } = {},
): Promise<McpResponse> {
  const headers = Object.entries({ ...mcpHeaders(options.token), ...options.headers }).filter(
    (header): header is [string, string] => header[1] !== undefined,
  );
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  const json = mcpMessageJson(response.headers.get('content-type') ?? '', text);
  const message = json === undefined ? undefined : (JSON.parse(json) as McpMessage);
  return { status: response.status, headers: response.headers, message, body: text };
}

/** A tools/call result, as the tests read it. */
export interface ToolResult {
  isError?: boolean;
  content: { type: string; text: string }[];
  structuredContent?: Record<string, unknown>;
}

/** The tools/call result an answer carries; fails when it carries none. */
export function toolResultOf(response: McpResponse): ToolResult {
  const result = response.message?.result as ToolResult | undefined;
  if (!result) throw new Error(`no tools/call result: ${response.body}`);
  return result;
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

/** An `initialize` without a token, from a chosen loopback address (another "client IP"). */
export function postMcpFrom(
  url: string,
  localAddress: string,
): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const body = JSON.stringify(initialize());
    const outgoing = httpRequest(
      url,
      {
        method: 'POST',
        localAddress,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => done({ status: response.statusCode ?? 0, body: text }));
      },
    );
    outgoing.on('error', fail);
    outgoing.end(body);
  });
}

/** Parses `Bearer k="v", ...` into its parameters. */
export function challengeParams(header: string | null): Record<string, string> {
  if (!header?.startsWith('Bearer ')) throw new Error(`not a Bearer challenge: ${header}`);
  const params: Record<string, string> = {};
  for (const match of header.slice(7).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
    params[match[1]] = match[2].replace(/\\(.)/g, '$1');
  return params;
}

/**
 * A browser's CORS preflight from `origin`: by default for a POST to the MCP endpoint, with the
 * headers an MCP client sends.
 */
export function preflight(
  url: string,
  origin: string,
  request: { method?: string; headers?: string } = {},
): Promise<Response> {
  return fetch(url, {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': request.method ?? 'POST',
      'Access-Control-Request-Headers':
        request.headers ?? 'authorization, content-type, mcp-protocol-version',
    },
  });
}
