import {
  classifyInboundRequest,
  isJsonContentType,
  type StandardSchemaWithJSON,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/server';
import type { IncomingHttpHeaders } from 'node:http';
import type { z } from 'zod';

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

/** A schema check's outcome, issues rendered as `path: message` (as the SDK renders them). */
export async function validateWith(
  schema: Pick<StandardSchemaWithJSON, '~standard'> | z.ZodType,
  value: unknown,
): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  const result = await (schema['~standard'] as StandardSchemaWithJSON['~standard']).validate(value);
  if (result.issues && result.issues.length > 0)
    return {
      ok: false,
      error: result.issues
        .map((issue) => {
          const path = (issue.path ?? [])
            .map((segment) => (typeof segment === 'object' ? String(segment.key) : String(segment)))
            .join('.');
          return path ? `${path}: ${issue.message}` : issue.message;
        })
        .join(', '),
    };
  return { ok: true, value: (result as { value: unknown }).value };
}
