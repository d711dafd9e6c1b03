import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import {
  type AuthInfo,
  type CallToolResult,
  createMcpHandler,
  type McpHandlerRequestOptions,
  type McpHttpHandler,
  McpServer,
} from '@modelcontextprotocol/server';
import { type NodeMcpRequestHandler, toNodeHandler } from '@modelcontextprotocol/node';
import type { Request, Response } from 'express';
import {
  auditUnavailableResponse,
  AuditUnavailableError,
  jsonRpcIdOf,
  sendAuditUnavailable,
} from '../audit/audit-unavailable.js';
import type { Principal } from '../auth/principal.js';
import { hasAllScopes } from '../auth/principal.js';
import type { RequestInfo } from '../common/request-info.js';
import { mcpConfig, serverConfig } from '../config/configuration.js';
import { protectedResourceMetadataUrl } from '../well-known/protected-resource-metadata.js';
import { directToolCallOf, validateWith } from './direct-tool-call.js';
import { messageOf, type ToolContext } from './tool-context.js';
import { type RegisteredMcpTool, ToolRegistry } from './tool-registry.js';

/** `_meta` key under which tools/list tells each tool's required scopes. */
export const REQUIRED_SCOPES_META = 'scopedb.dev/required_scopes';
export const SERVER_INFO = { name: 'scopedb-mcp', version: '0.1.0' };

/** Each tools/call's arguments as sent, by JSON-RPC id. */
export type CallArguments = Map<string | number, unknown>;

/** What the per-request server is built for: who calls, from where, and which tools. */
export interface CallScope extends RequestInfo {
  principal: Principal;
  /** The only tools this request calls, or undefined when it may need all (tools/list, ...). */
  tools: string[] | undefined;
  /** Whether the request calls any tool: then its answer waits for their records. */
  callsTools: boolean;
  /** The arguments the tools are given: as sent, not as the SDK's request schema left them. */
  arguments: CallArguments;
  /** Set when a record this request needs could not be written: it is answered 503 instead. */
  auditFailure: AuditUnavailableError | undefined;
}

/** What a tool sees of the call it serves. */
function toolContextOf(tool: RegisteredMcpTool, call: CallScope): ToolContext {
  return {
    tool: tool.options.name,
    principal: call.principal,
    requiredScopes: tool.requiredScopes,
    requestId: call.requestId,
    remoteAddress: call.remoteAddress,
    userAgent: call.userAgent,
    protocolVersion: call.protocolVersion,
  };
}

/**
 * The SDK's stateless handler (2025-11-25 `initialize` clients and 2026-07-28 clients alike). A
 * fresh McpServer per request is what the SDK supports; tool definitions come from the registry.
 *
 * A 2025-era request that is one `tools/call` and nothing else is answered directly (unless
 * MCP_DIRECT_TOOL_CALLS=false): the same input validation, tool pipeline and output validation
 * as the SDK's McpServer, answered as `application/json`, without building a server, a transport
 * and web Request/Response objects for it. It is most of the traffic of a database server.
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
    this.nodeHandler = toNodeHandler(
      { fetch: (web, options) => this.fetch(web, options) },
      {
        maxRequestBodySize: server.maxBodyBytes,
        onerror: (error) => this.logger.error(`MCP handler failed: ${error.message}`, error.stack),
      },
    );
  }

  async handle(request: Request, response: Response, call: CallScope): Promise<void> {
    if (this.cfg.directToolCalls && (await this.callDirect(request, response, call))) return;
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
    if (!call?.callsTools || response.body === null) return response;
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

  /** Answers a plain 2025-era `tools/call` as the SDK's McpServer would; false if not one. */
  private async callDirect(
    request: Request,
    response: Response,
    call: CallScope,
  ): Promise<boolean> {
    const rpc = directToolCallOf(request.headers, request.body);
    const tool = rpc && this.registry.get(rpc.name);
    if (!rpc || !tool) return false; // unknown tools get the SDK's JSON-RPC error
    if (this.cfg.hideUnauthorizedTools && !hasAllScopes(call.principal, tool.requiredScopes))
      return false;
    // The tool checks its arguments itself (as under the SDK: its input schema is list-only).
    let result: CallToolResult;
    try {
      result = await tool.invoke(rpc.arguments ?? {}, toolContextOf(tool, call));
    } catch (error) {
      if (error instanceof AuditUnavailableError) {
        sendAuditUnavailable(response, rpc.id);
        return true;
      }
      result = toolError(messageOf(error)); // as McpServer answers a handler that throws
    }
    if (!result.isError) {
      // As McpServer checks a result against the tool's output schema.
      const output =
        result.structuredContent === undefined
          ? { ok: false, error: undefined }
          : await validateWith(tool.outputSchema, result.structuredContent);
      if (!output.ok)
        result = toolError(
          output.error === undefined
            ? `Output validation error: Tool ${rpc.name} has an output schema but no structured content was provided`
            : `Output validation error: Invalid structured content for tool ${rpc.name}: ${output.error}`,
        );
    }
    if (!response.headersSent) {
      const body = JSON.stringify({ result, jsonrpc: '2.0', id: rpc.id });
      response.writeHead(200, {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
      });
      response.end(body);
    }
    return true;
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
        async (args: unknown, context: { mcpReq: { id: string | number } }) => {
          const sent = call.arguments.has(context.mcpReq.id)
            ? call.arguments.get(context.mcpReq.id)
            : args;
          try {
            return await tool.invoke(sent ?? {}, toolContextOf(tool, call));
          } catch (error) {
            if (error instanceof AuditUnavailableError) call.auditFailure = error;
            throw error;
          }
        },
      );
    }
    return server;
  }
}

function toolError(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true };
}
