import type { Request } from 'express';
import { requestIdOf } from './request-id.js';

/** Where a request came from, as the audit trail records it. Never credentials. */
export interface RequestInfo {
  requestId: string | undefined;
  remoteAddress: string | undefined;
  userAgent: string | undefined;
  /** The MCP-Protocol-Version header, else the protocolVersion of an `initialize` request. */
  protocolVersion: string | undefined;
}

/** A legacy client's `initialize` carries its version in the body, before any header does. */
function initializeVersion(body: unknown): string | undefined {
  const message = (Array.isArray(body) ? body[0] : body) as {
    method?: unknown;
    params?: { protocolVersion?: unknown };
  } | null;
  const version = message?.method === 'initialize' ? message.params?.protocolVersion : undefined;
  return typeof version === 'string' ? version : undefined;
}

export function requestInfoOf(request: Request): RequestInfo {
  const header = request.headers['mcp-protocol-version'];
  return {
    requestId: requestIdOf(request),
    remoteAddress: request.socket.remoteAddress,
    userAgent: request.headers['user-agent'],
    protocolVersion:
      (typeof header === 'string' ? header : undefined) ?? initializeVersion(request.body),
  };
}
