import type { NextFunction, Request, Response } from 'express';
import { AuditUnavailableError, sendAuditUnavailable } from '../audit/audit-unavailable.js';
import type { AuditService } from '../audit/audit.service.js';
import { unverifiedClaims } from '../auth/unverified-claims.js';
import { requestInfoOf } from '../common/request-info.js';

/**
 * JSON-RPC shaped answers for bodies the parser refuses (malformed JSON, too large). On the MCP
 * endpoint the refusal is audited (before authentication: with the token's unverified claims),
 * and answered 503 instead when its record cannot be written.
 */
export function bodyErrorHandler(audit: AuditService, mcpPath: string) {
  return async (
    error: unknown,
    request: Request,
    response: Response,
    next: NextFunction,
  ): Promise<void> => {
    const status = (error as { status?: unknown } | null)?.status;
    const type = (error as { type?: unknown } | null)?.type;
    if (typeof status !== 'number' || typeof type !== 'string') return next(error);
    if (response.headersSent) return next(error);
    const tooLarge = type === 'entity.too.large';
    const message = tooLarge
      ? 'Request body too large'
      : 'Parse error: the request body is not valid JSON';
    if (request.path === mcpPath)
      try {
        await audit.record({
          outcome: 'refused_invalid_request',
          claimed: unverifiedClaims(request.headers.authorization),
          reason: message,
          ...requestInfoOf(request),
        });
      } catch (failure) {
        if (!(failure instanceof AuditUnavailableError)) return next(failure);
        return sendAuditUnavailable(response, null);
      }
    response.status(tooLarge ? 413 : status).json({
      jsonrpc: '2.0',
      error: { code: tooLarge ? -32600 : -32700, message },
      id: null,
    });
  };
}
