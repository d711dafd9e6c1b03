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
import type { DirectEra } from './direct-request.js';
import { answerDirectToolCall } from './direct-tool-call.js';
import {
  answerText,
  directToolListOf,
  type RenderedAnswer,
  renderedAnswerOf,
  ToolListCache,
  toolListKey,
} from './tool-list-cache.js';
import { ToolCallPipeline } from './tool-call.js';
import { type RegisteredTool, ToolRegistry } from './tool-registry.js';

/** A tools/list the SDK answers whose answer is kept (ToolListCache) for the next ones. */
interface ToolListToRender {
  key: string;
  id: string | number;
}

/** Characters of a tools/list cache key (the envelope sent, the visible tools' names) kept at most. */
const MAX_TOOL_LIST_KEY_LENGTH = 4096;

/** Whether a JSON Schema declares `x-mcp-header` parameters (the SDK checks them against headers). */
function declaresMcpHeaders(tool: RegisteredTool): boolean {
  const json = tool.inputSchema['~standard'].jsonSchema.input({ target: 'draft-2020-12' });
  return JSON.stringify(json).includes('"x-mcp-header"');
}

/** `_meta` key under which tools/list tells each tool's required scopes. */
export const REQUIRED_SCOPES_META = 'scopedb.dev/required_scopes';
export const SERVER_INFO = { name: 'scopedb-mcp', version: '0.1.0' };

/**
 * The SDK's stateless handler (2025-11-25 `initialize` clients and 2026-07-28 clients alike). A
 * fresh McpServer per request is what the SDK supports; tool definitions come from the registry,
 * and every call runs through ToolCallPipeline. A request that is one `tools/call` and nothing
 * else, in either era, is answered by the direct path (direct-tool-call.ts), and a plain
 * `tools/list` by the SDK's own earlier answer to the same caller's view (tool-list-cache.ts);
 * both only with MCP_DIRECT_TOOL_CALLS.
 */
@Injectable()
export class McpHandlerService implements OnModuleDestroy {
  private readonly logger = new Logger('Mcp');
  private readonly handler: McpHttpHandler;
  private readonly nodeHandler: NodeMcpRequestHandler;
  private readonly metadataUrl: string;
  private readonly resource: URL;
  private readonly toolLists = new ToolListCache();
  private readonly mcpHeaderTools = new Map<string, boolean>();

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
    let toolList: ToolListToRender | undefined;
    if (this.cfg.directToolCalls) {
      const run = (name: string, args: unknown, served: DirectEra) =>
        this.callTool(name, args, call, served);
      if (await answerDirectToolCall(request, response, body, run, SERVER_INFO)) return;
      const listed = this.answerToolList(request, response, body, call);
      if (listed === true) return;
      toolList = listed;
    }
    const authInfo: AuthInfo = {
      token: '', // the raw token never leaves the auth layer
      clientId: call.principal.clientId ?? '',
      scopes: [...call.principal.scopes],
      expiresAt: call.principal.expiresAt,
      resource: this.resource,
      resourceMetadataUrl: this.metadataUrl,
      extra: { call, toolList },
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
    const toolList = options?.authInfo?.extra?.toolList as ToolListToRender | undefined;
    if (toolList && response.status === 200 && response.body !== null)
      return this.keepToolList(toolList, response, web.signal);
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

  /**
   * A plain tools/list (tool-list-cache.ts): answered from the SDK's earlier answer for the same
   * era and visible tools (true), or, the first time, what to keep of the SDK's answer to it.
   */
  private answerToolList(
    request: IncomingMessage,
    response: ServerResponse,
    body: unknown,
    call: CallScope,
  ): ToolListToRender | true | undefined {
    const rpc = directToolListOf(request.headers, body);
    if (!rpc) return undefined;
    const visible: string[] = [];
    for (const tool of this.registry.tools) if (this.visible(tool, call)) visible.push(tool.name);
    const key = toolListKey(rpc.served, body, visible);
    // An envelope is the client's to fill: a large one is answered, not kept.
    if (key.length > MAX_TOOL_LIST_KEY_LENGTH) return undefined;
    const rendered = this.toolLists.get(key);
    if (!rendered) return { key, id: rpc.id };
    const text = answerText(rendered, rpc.id);
    response.writeHead(rendered.status, {
      ...rendered.headers,
      'Content-Length': Buffer.byteLength(text),
    });
    response.end(text);
    return true;
  }

  /** Keeps the SDK's tools/list answer as the rendering for its key; the caller gets it as is. */
  private async keepToolList(
    toolList: ToolListToRender,
    response: globalThis.Response,
    signal: AbortSignal,
  ) {
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (signal.aborted) return new globalThis.Response(null, { status: 499 });
      throw error;
    }
    // The length is the one of each answer's own text.
    const headers = [...response.headers].filter(([name]) => name !== 'content-length');
    const rendered: RenderedAnswer | undefined = renderedAnswerOf(
      response.status,
      headers,
      text,
      toolList.id,
    );
    if (rendered) this.toolLists.set(toolList.key, rendered);
    return new globalThis.Response(text, {
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

  /**
   * Runs a direct call through the pipeline; undefined for a tool the caller does not see, and in
   * the 2026-07-28 era for one whose schema declares header parameters (the SDK checks those).
   */
  private callTool(name: string, args: unknown, call: CallScope, served: DirectEra) {
    const tool = this.registry.get(name);
    if (!this.visible(tool, call)) return undefined;
    if (served.era === 'modern' && this.declaresMcpHeaders(tool)) return undefined;
    return this.run(tool, args, call);
  }

  private declaresMcpHeaders(tool: RegisteredTool): boolean {
    let declares = this.mcpHeaderTools.get(tool.name);
    if (declares === undefined) {
      declares = declaresMcpHeaders(tool);
      this.mcpHeaderTools.set(tool.name, declares);
    }
    return declares;
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
