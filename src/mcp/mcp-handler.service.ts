import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import {
  type AuthInfo,
  createMcpHandler,
  type McpHttpHandler,
  McpServer,
} from '@modelcontextprotocol/server';
import { type NodeMcpRequestHandler, toNodeHandler } from '@modelcontextprotocol/node';
import type { Request, Response } from 'express';
import type { Principal } from '../auth/principal.js';
import { hasAllScopes } from '../auth/principal.js';
import type { RequestInfo } from '../common/request-info.js';
import { mcpConfig, serverConfig } from '../config/configuration.js';
import { protectedResourceMetadataUrl } from '../well-known/protected-resource-metadata.js';
import { ToolRegistry } from './tool-registry.js';

/** `_meta` key under which tools/list tells each tool's required scopes. */
export const REQUIRED_SCOPES_META = 'scopedb.dev/required_scopes';
export const SERVER_INFO = { name: 'scopedb-mcp', version: '0.1.0' };

/** What the per-request server is built for: who calls, from where, and which tools. */
export interface CallScope extends RequestInfo {
  principal: Principal;
  /** The only tools this request calls, or undefined when it may need all (tools/list, ...). */
  tools: string[] | undefined;
}

/**
 * The SDK's stateless handler (2025-11-25 `initialize` clients and 2026-07-28 clients alike). A
 * fresh McpServer per request is what the SDK supports; tool definitions come from the registry.
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
    this.nodeHandler = toNodeHandler(this.handler, {
      maxRequestBodySize: server.maxBodyBytes,
      onerror: (error) => this.logger.error(`MCP handler failed: ${error.message}`, error.stack),
    });
  }

  async handle(request: Request, response: Response, call: CallScope): Promise<void> {
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
    await this.nodeHandler(request, response, request.body);
  }

  async onModuleDestroy(): Promise<void> {
    await this.handler.close();
  }

  private createServer(authInfo: AuthInfo | undefined): McpServer {
    const call = authInfo?.extra?.call as CallScope | undefined;
    if (!call) throw new Error('MCP request without an authenticated principal');
    const server = new McpServer(SERVER_INFO, { capabilities: { tools: {} } });
    // A tools/call needs only its tool; registering (and schema-wrapping) the rest is waste.
    const tools = call.tools
      ? [...new Set(call.tools)].flatMap((name) => this.registry.get(name) ?? [])
      : this.registry.tools;
    for (const tool of tools) {
      const { options, requiredScopes, inputSchema, outputSchema } = tool;
      if (this.cfg.hideUnauthorizedTools && !hasAllScopes(call.principal, requiredScopes)) continue;
      server.registerTool(
        options.name,
        {
          title: options.title,
          description: options.description,
          inputSchema,
          outputSchema,
          annotations: options.annotations,
          _meta: { [REQUIRED_SCOPES_META]: requiredScopes },
        },
        (args: unknown) =>
          tool.invoke(args, {
            tool: options.name,
            principal: call.principal,
            requiredScopes,
            requestId: call.requestId,
            remoteAddress: call.remoteAddress,
            userAgent: call.userAgent,
            protocolVersion: call.protocolVersion,
          }),
      );
    }
    return server;
  }
}
