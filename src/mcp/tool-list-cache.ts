// tools/list, rendered once: the SDK's own answer to a tools/list, kept per (era, visible tools)
// and replayed with the next request's id. An optimisation only (MCP_DIRECT_TOOL_CALLS): without
// it every tools/list goes to the SDK, with the same answers.
import type { IncomingHttpHeaders } from 'node:http';
import { type DirectEra, directRequestOf } from './direct-request.js';

/** A tools/list request the cache may answer, and the key of the answer it gets. */
export interface DirectToolList {
  id: string | number;
  served: DirectEra;
}

/**
 * The request, when it is one JSON-RPC `tools/list` (direct-request.ts: the era's headers and
 * envelope) without a cursor or anything else in its params: what the SDK answers from its tool
 * registrations alone. Undefined otherwise: the SDK answers it.
 */
export function directToolListOf(
  headers: IncomingHttpHeaders,
  body: unknown,
): DirectToolList | undefined {
  const rpc = directRequestOf(headers, body, 'tools/list');
  if (!rpc) return undefined;
  const allowed = rpc.served.era === 'modern' ? ['_meta'] : [];
  if (Object.keys(rpc.params).some((key) => !allowed.includes(key))) return undefined;
  return { id: rpc.id, served: rpc.served };
}

/**
 * What the SDK's answer can depend on: the era (the protocol version a legacy request names, the
 * revision of a modern one), the modern envelope as sent (client identity and capabilities), and
 * the tools it lists (the caller's visible set).
 */
export function toolListKey(
  served: DirectEra,
  body: unknown,
  visibleTools: readonly string[],
): string {
  const era =
    served.era === 'legacy'
      ? `legacy ${served.protocolVersion ?? '-'}`
      : `modern ${served.revision} ${JSON.stringify((body as { params: { _meta: unknown } }).params._meta)}`;
  return `${era}\n${visibleTools.join(',')}`;
}

/** An answer of the SDK's, split around the request id it echoes. */
export interface RenderedAnswer {
  status: number;
  headers: Record<string, string>;
  before: string;
  after: string;
}

/**
 * The SDK's answer to the request with this id, as a template for any id: its body must end
 * with the JSON-RPC envelope's `"jsonrpc":"2.0","id":<id>}` (the SDK writes the message with
 * JSON.stringify, result first), followed by nothing (JSON) or the end of one SSE event. Any other
 * shape is not cached (undefined): the SDK keeps answering.
 */
export function renderedAnswerOf(
  status: number,
  headers: [string, string][],
  body: string,
  id: string | number,
): RenderedAnswer | undefined {
  const tail = `,"jsonrpc":"2.0","id":${JSON.stringify(id)}}`;
  const contentType = headers.find(([name]) => name.toLowerCase() === 'content-type')?.[1] ?? '';
  const ending = contentType.startsWith('text/event-stream') ? '\n\n' : '';
  if (!body.endsWith(tail + ending)) return undefined;
  // Exactly one message, result first.
  const message = body.slice(0, body.length - ending.length);
  const start = message.indexOf('{"result":');
  if (start < 0 || message.indexOf('{"result":', start + 1) >= 0) return undefined;
  if (ending && message.slice(0, start) !== 'event: message\ndata: ') return undefined;
  if (!ending && start !== 0) return undefined;
  const cut = body.length - ending.length - 1 - JSON.stringify(id).length;
  return {
    status,
    headers: Object.fromEntries(headers),
    before: body.slice(0, cut),
    after: body.slice(cut + JSON.stringify(id).length),
  };
}

/** The answer for a request with this id. */
export function answerText(rendered: RenderedAnswer, id: string | number): string {
  return rendered.before + JSON.stringify(id) + rendered.after;
}

/** At most this many renderings (eras x scope sets x envelopes in use); the oldest goes first. */
export const TOOL_LIST_CACHE_SIZE = 64;

/** Rendered answers by key (toolListKey), bounded. */
export class ToolListCache {
  private readonly answers = new Map<string, RenderedAnswer>();

  constructor(private readonly size = TOOL_LIST_CACHE_SIZE) {}

  get(key: string): RenderedAnswer | undefined {
    return this.answers.get(key);
  }

  set(key: string, rendered: RenderedAnswer): void {
    this.answers.delete(key);
    this.answers.set(key, rendered);
    if (this.answers.size > this.size) this.answers.delete(this.answers.keys().next().value!);
  }

  get entries(): number {
    return this.answers.size;
  }
}
