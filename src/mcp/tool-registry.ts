import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, ExternalContextCreator, MetadataScanner, Reflector } from '@nestjs/core';
import type { CallToolResult, StandardSchemaWithJSON } from '@modelcontextprotocol/server';
import { AuditService } from '../audit/audit.service.js';
import { InsufficientScopeException } from '../auth/oauth.exceptions.js';
import { REQUIRED_SCOPES_KEY } from '../auth/require-scopes.decorator.js';
import { attemptOf } from '../audit/audit.interceptor.js';
import { AuditUnavailableError } from '../audit/audit-unavailable.js';
import { withCachedJsonSchema } from './cached-schema.js';
import { validateWith } from './direct-tool-call.js';
import { exceedsDepth, refusedArguments } from './json-limits.js';
import { MCP_TOOL_KEY, type McpToolOptions } from './mcp-tool.decorator.js';
import {
  messageOf,
  TOOL_CONTEXT_TYPE,
  type ToolContext,
  ToolError,
  type ToolOutput,
} from './tool-context.js';

const TOOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export interface RegisteredMcpTool {
  options: McpToolOptions;
  requiredScopes: string[];
  /** The input and output schemas, JSON Schema rendering cached; the input one is list-only. */
  inputSchema: StandardSchemaWithJSON;
  outputSchema: StandardSchemaWithJSON;
  /**
   * Checks the arguments (a refusal is audited), then runs the tool through its pipeline. Rejects
   * with AuditUnavailableError when a record the call needs cannot be written: nothing may be
   * answered then, not even an error result.
   */
  invoke(args: unknown, context: ToolContext): Promise<CallToolResult>;
}

/** The database's own error code (better-sqlite3's SqliteError carries one), if any. */
function errorCode(error: unknown): string | undefined {
  if (error instanceof ToolError) return error.code;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Every @McpTool method of every provider, discovered once at start-up. Each is wrapped with
 * Nest's guard and interceptor pipeline (global enhancers, @UseGuards, @UseInterceptors), so a
 * tool in a new module is scope-checked and audited without code of its own.
 */
@Injectable()
export class ToolRegistry implements OnModuleInit {
  private readonly logger = new Logger(ToolRegistry.name);
  private readonly byName = new Map<string, RegisteredMcpTool>();
  private scopes: string[] = [];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly contextCreator: ExternalContextCreator,
    private readonly audit: AuditService,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (!instance || typeof instance !== 'object' || wrapper.isAlias) continue;
      const prototype = Object.getPrototypeOf(instance) as object;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const handler = (instance as Record<string, unknown>)[method];
        if (typeof handler !== 'function') continue;
        const options = this.reflector.get<McpToolOptions | undefined>(MCP_TOOL_KEY, handler);
        if (options)
          this.register(instance, method, handler as (...args: unknown[]) => unknown, options);
      }
    }
    this.scopes = [
      ...new Set([...this.byName.values()].flatMap((tool) => tool.requiredScopes)),
    ].sort();
    this.logger.log(`${this.byName.size} tools; scopes: ${this.scopes.join(' ')}`);
  }

  get tools(): IterableIterator<RegisteredMcpTool> {
    return this.byName.values();
  }

  get(name: string): RegisteredMcpTool | undefined {
    return this.byName.get(name);
  }

  /** The scopes the tools declare, for the protected resource metadata. */
  scopesSupported(): string[] {
    return this.scopes;
  }

  private register(
    instance: object,
    method: string,
    handler: (...args: unknown[]) => unknown,
    options: McpToolOptions,
  ): void {
    const where = `${instance.constructor.name}.${method}`;
    if (!TOOL_NAME.test(options.name))
      throw new Error(`${where}: invalid tool name "${options.name}"`);
    if (this.byName.has(options.name))
      throw new Error(`${where}: tool "${options.name}" is declared twice`);
    const requiredScopes = [
      ...new Set(
        this.reflector.getAllAndMerge<string[]>(REQUIRED_SCOPES_KEY, [
          handler,
          instance.constructor,
        ]),
      ),
    ];
    if (requiredScopes.length === 0)
      throw new Error(
        `${where}: tool "${options.name}" declares no scope; add @RequireScopes(...)`,
      );
    const pipeline = this.contextCreator.create(
      instance,
      handler,
      method,
      undefined,
      undefined,
      undefined,
      undefined,
      { guards: true, interceptors: true, filters: false },
      TOOL_CONTEXT_TYPE,
    ) as (input: unknown, context: ToolContext) => Promise<ToolOutput<object>>;

    this.byName.set(options.name, {
      options,
      requiredScopes,
      inputSchema: withCachedJsonSchema(options.input, { listOnly: true }),
      outputSchema: withCachedJsonSchema(options.output),
      invoke: async (args, context) => {
        const started = performance.now();
        // Before any schema sees them: zod drops a __proto__ key silently.
        const refused = refusedArguments(args);
        const input =
          refused === undefined
            ? await validateWith(options.input, args ?? {})
            : { ok: false as const, error: refused };
        if (!input.ok)
          return this.refuseInput(
            options.name,
            requiredScopes,
            context,
            args,
            input.error,
            started,
          );
        try {
          const output = await pipeline(input.value, context);
          return {
            content: [{ type: 'text', text: output.text }],
            structuredContent: output.data,
          };
        } catch (error) {
          if (error instanceof AuditUnavailableError) throw error;
          return this.failure(options.name, requiredScopes, context, args, error);
        }
      },
    });
  }

  /** Arguments that do not fit the input schema: the SDK's words, and an audit record. */
  private async refuseInput(
    tool: string,
    requiredScopes: string[],
    context: ToolContext,
    args: unknown,
    error: string,
    started: number,
  ): Promise<CallToolResult> {
    const message = `Input validation error: Invalid arguments for tool ${tool}: ${error}`;
    await this.audit.record({
      outcome: 'tool_error',
      principal: context.principal,
      tool,
      requiredScopes,
      // What it would have run, unless too deep to hash.
      ...(exceedsDepth(args) ? {} : attemptOf(args)),
      reason: message,
      durationMs: performance.now() - started,
      requestId: context.requestId,
      remoteAddress: context.remoteAddress,
      userAgent: context.userAgent,
      protocolVersion: context.protocolVersion,
    });
    return { isError: true, content: [{ type: 'text', text: message }] };
  }

  private async failure(
    tool: string,
    requiredScopes: string[],
    context: ToolContext,
    args: unknown,
    error: unknown,
  ): Promise<CallToolResult> {
    if (error instanceof InsufficientScopeException) {
      // The backstop refused what the HTTP-level challenge did not (it must not happen in practice).
      this.logger.warn(
        `tool ${tool} refused in its pipeline: ${error.message} sub=${context.principal?.subject ?? '-'}`,
      );
      await this.audit.record({
        outcome: 'refused_scope',
        principal: context.principal,
        tool,
        ...attemptOf(args),
        reason: error.message,
        requiredScopes,
        requestId: context.requestId,
        remoteAddress: context.remoteAddress,
        userAgent: context.userAgent,
        protocolVersion: context.protocolVersion,
      });
      return { isError: true, content: [{ type: 'text', text: `Forbidden: ${error.message}` }] };
    }
    const code = errorCode(error);
    const message = messageOf(error);
    if (!(error instanceof ToolError) && code === undefined)
      this.logger.error(`tool ${tool} failed`, error instanceof Error ? error.stack : message);
    return {
      isError: true,
      content: [{ type: 'text', text: `Error${code ? ` [${code}]` : ''}: ${message}` }],
    };
  }
}
