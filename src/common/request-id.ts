import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';

const REQUEST_ID = Symbol('scopedb.requestId');
const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

type WithRequestId = IncomingMessage & { [REQUEST_ID]?: string };

export function requestIdOf(request: IncomingMessage): string | undefined {
  return (request as WithRequestId)[REQUEST_ID];
}

/**
 * The request's id, assigned on first use (a caller's X-Request-Id when well-formed) and echoed in
 * the response. Idempotent; the request logger (request-log.ts) asks first, for every request.
 */
export function ensureRequestId(request: IncomingMessage, response: ServerResponse): string {
  const existing = requestIdOf(request);
  if (existing !== undefined) return existing;
  const incoming = request.headers['x-request-id'];
  const id = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
  (request as WithRequestId)[REQUEST_ID] = id;
  response.setHeader('X-Request-Id', id);
  return id;
}
