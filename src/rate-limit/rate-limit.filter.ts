// 429 Too Many Requests with Retry-After: RFC 6585 §4, RFC 9110 §10.2.3.
import { type ArgumentsHost, Catch, type ExceptionFilter, Inject, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Response } from 'express';
import {
  AuditUnavailableError,
  jsonRpcIdOf,
  sendAuditUnavailable,
} from '../audit/audit-unavailable.js';
import { AuditService } from '../audit/audit.service.js';
import type { AuthenticatedRequest } from '../auth/principal.js';
import { requestIdOf } from '../common/request-id.js';
import { requestInfoOf } from '../common/request-info.js';
import { mcpConfig } from '../config/configuration.js';
import { RateLimitExceededException } from './rate-limit.exception.js';

/**
 * Answers a refusal of RateLimitGuard: JSON body and Retry-After; audited on the MCP endpoint,
 * 503 there instead when its record cannot be written (fail closed).
 */
@Catch(RateLimitExceededException)
export class RateLimitFilter implements ExceptionFilter<RateLimitExceededException> {
  private readonly logger = new Logger('RateLimit');

  constructor(
    @Inject(mcpConfig.KEY) private readonly mcp: ConfigType<typeof mcpConfig>,
    private readonly audit: AuditService,
  ) {}

  async catch(exception: RateLimitExceededException, host: ArgumentsHost): Promise<void> {
    const http = host.switchToHttp();
    const request = http.getRequest<AuthenticatedRequest>();
    const response = http.getResponse<Response>();
    const retryAfter = exception.retryAfterS;
    const message = `Too many requests for ${request.user ? 'this principal' : 'this address'}; retry after ${retryAfter} s.`;

    this.logger.warn({
      requestId: requestIdOf(request),
      msg: `429 ${request.method} ${request.path} ${exception.tracker}`,
    });
    if (request.path === this.mcp.path)
      try {
        await this.audit.record({
          outcome: 'refused_rate_limit',
          principal: request.user,
          reason: message,
          ...requestInfoOf(request),
        });
      } catch (error) {
        if (!(error instanceof AuditUnavailableError)) throw error;
        return sendAuditUnavailable(response, jsonRpcIdOf(request.body));
      }

    response
      .status(429)
      .setHeader('Retry-After', String(retryAfter))
      .setHeader('Cache-Control', 'no-store')
      .json({ error: 'rate_limited', message, retry_after: retryAfter });
  }
}
