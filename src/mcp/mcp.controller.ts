import { Controller, Delete, Get, HttpCode, Options, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import {
  AuditUnavailableError,
  jsonRpcIdOf,
  sendAuditUnavailable,
} from '../audit/audit-unavailable.js';
import { AuditService } from '../audit/audit.service.js';
import { CurrentPrincipal } from '../auth/current-principal.decorator.js';
import { InsufficientScopeException } from '../auth/oauth.exceptions.js';
import { hasAllScopes, type Principal } from '../auth/principal.js';
import { Public } from '../auth/public.decorator.js';
import { requestInfoOf } from '../common/request-info.js';
import { markExpectedRefusal } from '../logging/expected-refusal.js';
import { exceedsDepth, MAX_JSON_DEPTH } from './json-limits.js';
import { toolCallsOf } from './call-scope.js';
import { McpHandlerService } from './mcp-handler.service.js';
import { attemptOf } from './tool-audit.js';
import { ToolRegistry } from './tool-registry.js';

/** Streamable HTTP, stateless: POST carries every exchange; there are no sessions to GET or DELETE. */
@Controller()
export class McpController {
  constructor(
    private readonly mcp: McpHandlerService,
    private readonly registry: ToolRegistry,
    private readonly audit: AuditService,
  ) {}

  @Post()
  async post(
    @Req() request: Request,
    @Res() response: Response,
    @CurrentPrincipal() principal: Principal,
  ): Promise<void> {
    const body: unknown = request.body;
    // First, before anything recursive (the SDK's JSON.stringify, schemas, hashing) touches it.
    if (exceedsDepth(body))
      return this.refuseInvalid(
        request,
        response,
        principal,
        `JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
      );
    const toolCalls = toolCallsOf(body);
    // The audit store is known down: no tool may run (fail closed); other requests carry on.
    if (toolCalls.calls.length > 0 && !this.audit.accepting)
      return sendAuditUnavailable(response, jsonRpcIdOf(body));
    // Step-up at HTTP level (MCP authorization, scope challenge): refuse before dispatch.
    for (const call of toolCalls.calls) {
      const tool = this.registry.get(call.name);
      if (tool && !hasAllScopes(principal, tool.requiredScopes))
        throw new InsufficientScopeException(
          tool.requiredScopes,
          [...principal.scopes],
          call.name,
          attemptOf(tool.options.audit, call.arguments),
        );
    }
    await this.mcp.handle(request, response, request.body, {
      ...requestInfoOf(request),
      principal,
      toolCalls,
      auditFailure: undefined,
    });
  }

  /** A body whose shape is refused: 400 with a JSON-RPC error, audited (503 if it cannot be). */
  private async refuseInvalid(
    request: Request,
    response: Response,
    principal: Principal,
    reason: string,
  ): Promise<void> {
    try {
      await this.audit.record({
        outcome: 'refused_invalid_request',
        principal,
        reason: `Invalid Request: ${reason}`,
        ...requestInfoOf(request),
      });
    } catch (error) {
      if (!(error instanceof AuditUnavailableError)) throw error;
      return sendAuditUnavailable(response, jsonRpcIdOf(request.body));
    }
    response.status(400).json({
      jsonrpc: '2.0',
      id: jsonRpcIdOf(request.body),
      error: { code: -32600, message: `Invalid Request: ${reason}` },
    });
  }

  @Public()
  @Get()
  getNotAllowed(@Res() response: Response): void {
    this.methodNotAllowed(response);
  }

  @Public()
  @Delete()
  deleteNotAllowed(@Res() response: Response): void {
    this.methodNotAllowed(response);
  }

  /** CORS preflight for allowed browser origins (the Origin middleware has already checked). */
  @Public()
  @Options()
  @HttpCode(204)
  preflight(@Res({ passthrough: true }) response: Response): void {
    response.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
    response.setHeader(
      'Access-Control-Allow-Headers',
      'Authorization, Content-Type, Accept, Mcp-Protocol-Version, Mcp-Session-Id, Last-Event-ID',
    );
    response.setHeader('Access-Control-Max-Age', '86400');
  }

  /** What every Streamable HTTP client tries (GET for a stream, DELETE to end a session). */
  private methodNotAllowed(response: Response): void {
    markExpectedRefusal(response);
    response
      .status(405)
      .setHeader('Allow', 'POST')
      .json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
  }
}
