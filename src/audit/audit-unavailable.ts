import type { ServerResponse } from 'node:http';

/** JSON-RPC error code of a call refused because its record cannot be written (server error range). */
export const AUDIT_UNAVAILABLE_CODE = -32000;

/** What callers are told; the cause (paths, driver errors) goes to the server's log only. */
export const AUDIT_UNAVAILABLE_MESSAGE =
  'Service unavailable: the audit log cannot be written, so nothing was run or answered; retry later';

/** Seconds a refused caller is asked to wait before retrying. */
const RETRY_AFTER_S = 5;

/**
 * The audit store cannot be written: the record a call needs (its intent, its outcome or its
 * refusal) was not committed, so the call must not run or be answered (fail closed).
 */
export class AuditUnavailableError extends Error {
  override name = 'AuditUnavailableError';
  constructor(
    /** Why the store cannot be written, for the server's log. */
    readonly reason: string,
  ) {
    super(`the audit log cannot be written: ${reason}`);
  }
}

export type JsonRpcId = string | number | null;

/** The id to echo: a single JSON-RPC request's string or integer id, else null. */
export function jsonRpcIdOf(body: unknown): JsonRpcId {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const id = (body as { id?: unknown }).id;
  return typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id)) ? id : null;
}

export function auditUnavailableBody(id: JsonRpcId) {
  return {
    jsonrpc: '2.0',
    id,
    error: { code: AUDIT_UNAVAILABLE_CODE, message: AUDIT_UNAVAILABLE_MESSAGE },
  } as const;
}

const HEADERS = {
  'Content-Type': 'application/json',
  'Cache-Control': 'no-store',
  'Retry-After': String(RETRY_AFTER_S),
};

/** The 503 for a Node (or Express) response; nothing if an answer has already started. */
export function sendAuditUnavailable(response: ServerResponse, id: JsonRpcId): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = JSON.stringify(auditUnavailableBody(id));
  response.writeHead(503, { ...HEADERS, 'Content-Length': Buffer.byteLength(body) });
  response.end(body);
}

/** The same 503 as a web Response (for the SDK's handler). */
export function auditUnavailableResponse(id: JsonRpcId): Response {
  return Response.json(auditUnavailableBody(id), { status: 503, headers: HEADERS });
}
