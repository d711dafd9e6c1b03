import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import {
  type AuthInfo,
  createMcpHandler,
  type McpHandlerRequestOptions,
  type McpHttpHandler,
  McpServer,
} from '@modelcontextprotocol/server';
import { type NodeMcpRequestHandler, toNodeHandler } from '@modelcontextprotocol/node';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  auditUnavailableResponse,
  AuditUnavailableError,
  jsonRpcIdOf,
} from '../audit/audit-unavailable.js';
import { hasAllScopes } from '../auth/principal.js';
import { mcpConfig, serverConfig } from '../config/configuration.js';
import { protectedResourceMetadataUrl } from '../well-known/protected-resource-metadata.js';
import { type CallScope, toolContextOf } from './call-scope.js';
import { answerDirectToolCall } from './direct-tool-call.js';
import { ToolCallPipeline } from './tool-call.js';
import { type RegisteredTool, ToolRegistry } from './tool-registry.js';

/** `_meta` key under which tools/list tells each tool's required scopes. */
export const REQUIRED_SCOPES_META = 'scopedb.dev/required_scopes';
export const SERVER_INFO = { name: 'scopedb-mcp', version: '0.1.0' };

/**
 * The SDK's stateless handler (2025-11-25 `initialize` clients and 2026-07-28 clients alike). A
 * fresh McpServer per request is what the SDK supports; tool definitions come from the registry,
 * and every call runs through ToolCallPipeline. A 2025-era request that is one `tools/call` and
 * nothing else is answered by the direct path (direct-tool-call.ts; MCP_DIRECT_TOOL_CALLS).
 */
@Injectable()
export class McpHandlerService implements OnModuleDestroy {
  private readonly logger = new Logger('Mcp');
  private readonly handler: McpHttpHandler;
  private readonly nodeHandler: NodeMcpRequestHandler;
  private readonly metadataUrl: string;
  private readonly resource: URL;

  constructor(
    private readonly registry: ToolRegistry,
    private readonly pipeline: ToolCallPipeline,
    @Inject(mcpConfig.KEY) private readonly cfg: ConfigType<typeof mcpConfig>,
    @Inject(serverConfig.KEY) server: ConfigType<typeof serverConfig>,
  ) {
    this.metadataUrl = protectedResourceMetadataUrl(cfg.resourceUrl);
    this.resource = new URL(cfg.resourceUrl);
    this.handler = createMcpHandler((context) => this.createServer(context.authInfo), {
      legacy: 'stateless',
      maxRequestBodySize: server.maxBodyBytes,
      onerror: (error) => this.logger.warn(`MCP: ${error.message}`),
    });
    this.nodeHandler = toNodeHandler(
      { fetch: (web, options) => this.fetch(web, options) },
      {
        maxRequestBodySize: server.maxBodyBytes,
        onerror: (error) => this.logger.error(`MCP handler failed: ${error.message}`, error.stack),
      },
    );
  }

  /**
   * Answers one POST /mcp. Node's own request and response (no framework methods), and the body
   * already parsed by whoever read it: the SDK's handler does not read the stream again.
   */
  async handle(
    request: IncomingMessage,
    response: ServerResponse,
    body: unknown,
    call: CallScope,
  ): Promise<void> {
    const run = (name: string, args: unknown) => this.callTool(name, args, call);
    if (this.cfg.directToolCalls && (await answerDirectToolCall(request, response, body, run)))
      return;
    const authInfo: AuthInfo = {
      token: '', // the raw token never leaves the auth layer
      clientId: call.principal.clientId ?? '',
      scopes: [...call.principal.scopes],
      expiresAt: call.principal.expiresAt,
      resource: this.resource,
      resourceMetadataUrl: this.metadataUrl,
      extra: { call },
    };
    Object.assign(request, { auth: authInfo });
    await this.nodeHandler(request, response, body);
  }

  /**
   * The SDK's answer, held back while it carries tool results: a tool whose record cannot be
   * written throws AuditUnavailableError, which the SDK's McpServer would turn into an `isError`
   * result, sent with status 200 (and, over SSE, after the headers). So the answer of a request
   * that calls tools is read to its end first (it is one message per call: nothing streams), and
   * replaced by the 503 if any of its records failed.
   */
  private async fetch(web: globalThis.Request, options?: McpHandlerRequestOptions) {
    const response = await this.handler.fetch(web, options);
    const call = options?.authInfo?.extra?.call as CallScope | undefined;
    if (!call?.toolCalls.calls.length || response.body === null) return response;
    let body: ArrayBuffer;
    try {
      body = await response.arrayBuffer();
    } catch (error) {
      if (web.signal.aborted) return new globalThis.Response(null, { status: 499 });
      throw error;
    }
    if (call.auditFailure) return auditUnavailableResponse(jsonRpcIdOf(options?.parsedBody));
    return new globalThis.Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }

  /** The tool of this name if the caller may see it (MCP_HIDE_UNAUTHORIZED_TOOLS hides others). */
  private visible(tool: RegisteredTool | undefined, call: CallScope): tool is RegisteredTool {
    return (
      tool !== undefined &&
      !(this.cfg.hideUnauthorizedTools && !hasAllScopes(call.principal, tool.requiredScopes))
    );
  }

  /** Runs a call through the pipeline; undefined for a tool the caller does not see. */
  private callTool(name: string, args: unknown, call: CallScope) {
    const tool = this.registry.get(name);
    return this.visible(tool, call) ? this.run(tool, args, call) : undefined;
  }

  /** A failed record marks the whole request: it is answered 503 (fetch), not with results. */
  private async run(tool: RegisteredTool, args: unknown, call: CallScope) {
    try {
      return await this.pipeline.call(tool, args, toolContextOf(tool, call));
    } catch (error) {
      if (error instanceof AuditUnavailableError) call.auditFailure = error;
      throw error;
    }
  }

  async onModuleDestroy(): Promise<void> {
    await this.handler.close();
  }

  private createServer(authInfo: AuthInfo | undefined): McpServer {
    const call = authInfo?.extra?.call as CallScope | undefined;
    if (!call) throw new Error('MCP request without an authenticated principal');
    const server = new McpServer(SERVER_INFO, { capabilities: { tools: {} } });
    // A tools/call needs only its tool; registering (and schema-wrapping) the rest is waste.
    const { calls, only } = call.toolCalls;
    const tools = only
      ? [...new Set(calls.map((c) => c.name))].flatMap((name) => this.registry.get(name) ?? [])
      : this.registry.tools;
    for (const tool of tools) {
      if (!this.visible(tool, call)) continue;
      const { options, requiredScopes, inputSchema, outputSchema } = tool;
      server.registerTool(
        tool.name,
        {
          title: options.title,
          description: options.description,
          inputSchema,
          outputSchema,
          annotations: options.annotations,
          _meta: { [REQUIRED_SCOPES_META]: requiredScopes },
        },
        (args: unknown, context: { mcpReq: { id: string | number } }) => {
          const sent = call.toolCalls.arguments.has(context.mcpReq.id)
            ? call.toolCalls.arguments.get(context.mcpReq.id)
            : args;
          return this.run(tool, sent ?? {}, call);
        },
      );
    }
    return server;
  }
}
