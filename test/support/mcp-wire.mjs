// MCP over HTTP as a client writes and reads it, in plain JavaScript so that the specs (through
// mcp-http.ts) and `npm run bench` (bench/run.mjs, run by Node as it is) share one copy.

/** The protocol version hand-made requests announce (the SDK's stateless legacy mode). */
export const LEGACY_PROTOCOL = '2025-11-25';

/**
 * The headers of a POST to an MCP endpoint, with a bearer token when one is given.
 * @param {string} [token]
 * @returns {Record<string, string>}
 */
export function mcpHeaders(token) {
  return {
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': LEGACY_PROTOCOL,
    ...(token && { Authorization: `Bearer ${token}` }),
  };
}

/**
 * The JSON text of an answer's JSON-RPC message: its JSON body, or the first data event of its SSE
 * stream; `undefined` when it has none.
 * @param {string} contentType
 * @param {string} text
 * @returns {string | undefined}
 */
export function mcpMessageJson(contentType, text) {
  if (contentType.includes('text/event-stream'))
    return text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
      .find((line) => line.trim() !== '');
  return contentType.includes('application/json') && text ? text : undefined;
}
