import { Inject, Injectable, type NestMiddleware } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { NextFunction, Request, Response } from 'express';
import { AuditUnavailableError, sendAuditUnavailable } from '../audit/audit-unavailable.js';
import { AuditService } from '../audit/audit.service.js';
import { requestInfoOf } from '../common/request-info.js';
import { mcpConfig } from '../config/configuration.js';

/**
 * DNS-rebinding defence (MCP Streamable HTTP transport, security warning): a browser request
 * from a foreign Origin is refused before authentication. Requests without an Origin (native
 * clients) and from allowed origins pass; the latter get CORS headers.
 */
@Injectable()
export class OriginMiddleware implements NestMiddleware {
  private readonly allowed: ReadonlySet<string>;

  constructor(
    @Inject(mcpConfig.KEY) cfg: ConfigType<typeof mcpConfig>,
    private readonly audit: AuditService,
  ) {
    this.allowed = new Set(cfg.allowedOrigins);
  }

  async use(request: Request, response: Response, next: NextFunction): Promise<void> {
    const origin = request.headers.origin;
    if (origin === undefined) return next();
    if (!this.allowed.has(origin)) {
      try {
        await this.audit.record({
          outcome: 'refused_origin',
          reason: `Origin ${origin.slice(0, 200)} is not allowed`,
          ...requestInfoOf(request),
        });
      } catch (error) {
        if (!(error instanceof AuditUnavailableError)) throw error;
        return sendAuditUnavailable(response, null);
      }
      response.status(403).json({
        jsonrpc: '2.0',
        error: {
          code: -32000,
          message: 'Forbidden: this Origin is not allowed to use the MCP endpoint',
        },
        id: null,
      });
      return;
    }
    response.setHeader('Access-Control-Allow-Origin', origin);
    response.setHeader('Vary', 'Origin');
    response.setHeader(
      'Access-Control-Expose-Headers',
      'WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version, X-Request-Id',
    );
    next();
  }
}
