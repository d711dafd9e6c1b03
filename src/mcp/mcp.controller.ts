import { Controller, Delete, Get, HttpCode, Options, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { CurrentPrincipal } from '../auth/current-principal.decorator.js';
import { InsufficientScopeException } from '../auth/oauth.exceptions.js';
import { hasAllScopes, type Principal } from '../auth/principal.js';
import { Public } from '../auth/public.decorator.js';
import { requestInfoOf } from '../common/request-info.js';
import { McpHandlerService } from './mcp-handler.service.js';
import { ToolRegistry } from './tool-registry.js';

/**
 * The tools called by a JSON-RPC message or batch, and whether it calls tools only (then the
 * per-request server needs no other tool registered).
 */
function toolCalls(body: unknown): { names: string[]; only: boolean } {
  const messages: unknown[] = Array.isArray(body) ? body : [body];
  const names = messages.flatMap((message) => {
    const m = message as { method?: unknown; params?: { name?: unknown } } | null;
    return m?.method === 'tools/call' && typeof m.params?.name === 'string' ? [m.params.name] : [];
  });
  return { names, only: names.length > 0 && names.length === messages.length };
}

/** Streamable HTTP, stateless: POST carries every exchange; there are no sessions to GET or DELETE. */
@Controller()
export class McpController {
  constructor(
    private readonly mcp: McpHandlerService,
    private readonly registry: ToolRegistry,
  ) {}

  @Post()
  async post(
    @Req() request: Request,
    @Res() response: Response,
    @CurrentPrincipal() principal: Principal,
  ): Promise<void> {
    // Step-up at HTTP level (MCP authorization, scope challenge): refuse before dispatch.
    const calls = toolCalls(request.body);
    for (const name of calls.names) {
      const tool = this.registry.get(name);
      if (tool && !hasAllScopes(principal, tool.requiredScopes))
        throw new InsufficientScopeException(tool.requiredScopes, [...principal.scopes], name);
    }
    await this.mcp.handle(request, response, {
      ...requestInfoOf(request),
      principal,
      tools: calls.only ? calls.names : undefined,
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

  private methodNotAllowed(response: Response): void {
    response
      .status(405)
      .setHeader('Allow', 'POST')
      .json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
  }
}
