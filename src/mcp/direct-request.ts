// What the direct paths (direct-tool-call.ts, tool-list-cache.ts) may answer themselves: a single
// JSON-RPC request that the SDK's handler would dispatch without refusing anything about it. The
// era decision is the SDK's own classifier; everything it lets through that the SDK's later steps
// would still check (standard headers, envelope extras, Accept) is left to the SDK here.
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  classifyInboundRequest,
  isJsonContentType,
  PROTOCOL_VERSION_META_KEY,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/server';
import type { IncomingHttpHeaders } from 'node:http';

/** The one revision the SDK (2.4) serves on its modern path; a request naming another goes to it. */
export const MODERN_REVISION = '2026-07-28';

/** The era a request is served in: its protocol version header (legacy) or revision (modern). */
export type DirectEra =
  { era: 'legacy'; protocolVersion: string | undefined } | { era: 'modern'; revision: string };

/** A single JSON-RPC request the direct path may answer, with the era it is served in. */
export interface DirectRequest {
  id: string | number;
  params: Record<string, unknown>;
  served: DirectEra;
}

const ENVELOPE_KEYS = new Set([
  PROTOCOL_VERSION_META_KEY,
  CLIENT_INFO_META_KEY,
  CLIENT_CAPABILITIES_META_KEY,
]);
// The SDK decodes an Mcp-Name of this form (Base64); a plain name never starts so.
const ENCODED_NAME_PREFIX = '=?';

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/** A header as web Headers.get reads it (repeated values joined). */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * The request, when it is one JSON-RPC request for `method` with a string or integer id and
 * object params (absent params read as `{}`), sent as JSON, that the SDK classifies:
 * - legacy: from a client that accepts JSON and SSE answers and names a supported protocol
 *   version or none (the legacy transport refuses others);
 * - modern (2026-07-28): with the standard headers the SDK requires (MCP-Protocol-Version,
 *   Mcp-Method; the classifier has checked that they agree with the body) and a `_meta` that is the
 *   envelope and nothing else (the classifier has validated it; other keys are the SDK's to check).
 * Anything else is undefined: the SDK answers it, including its refusals.
 */
export function directRequestOf(
  headers: IncomingHttpHeaders,
  body: unknown,
  method: string,
): DirectRequest | undefined {
  if (!isPlainObject(body) || body.method !== method || body.jsonrpc !== '2.0') return undefined;
  const id = body.id;
  if (typeof id !== 'string' && !(typeof id === 'number' && Number.isInteger(id))) return undefined;
  const params = body.params === undefined ? {} : body.params;
  if (!isPlainObject(params)) return undefined;
  if (params._meta !== undefined && !isPlainObject(params._meta)) return undefined;
  if (!isJsonContentType(header(headers, 'content-type') ?? null)) return undefined;

  const protocolVersion = header(headers, 'mcp-protocol-version');
  const mcpMethod = header(headers, 'mcp-method');
  const route = classifyInboundRequest({
    httpMethod: 'POST',
    protocolVersionHeader: protocolVersion,
    mcpMethodHeader: mcpMethod,
    mcpNameHeader: header(headers, 'mcp-name'),
    body,
  });
  if (route.kind === 'legacy') {
    const accept = header(headers, 'accept');
    if (!accept?.includes('application/json') || !accept.includes('text/event-stream'))
      return undefined;
    if (protocolVersion !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(protocolVersion))
      return undefined;
    return { id, params, served: { era: 'legacy', protocolVersion } };
  }
  if (route.kind !== 'modern' || route.messageKind !== 'request') return undefined;
  const revision = route.classification.revision;
  if (revision !== MODERN_REVISION || protocolVersion === undefined || mcpMethod === undefined)
    return undefined;
  const meta = params._meta;
  if (meta === undefined || Object.keys(meta).some((key) => !ENVELOPE_KEYS.has(key)))
    return undefined;
  return { id, params, served: { era: 'modern', revision } };
}

/**
 * Whether a modern request's Mcp-Name header names `name` as the SDK reads it (present, not
 * Base64-encoded, equal): the SDK refuses a missing or different one before dispatch.
 */
export function mcpNameAgrees(headers: IncomingHttpHeaders, name: string): boolean {
  const sent = header(headers, 'mcp-name');
  return sent !== undefined && !sent.startsWith(ENCODED_NAME_PREFIX) && sent === name;
}
