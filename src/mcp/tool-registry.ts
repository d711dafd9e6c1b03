import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import {
  EXCEPTION_FILTERS_METADATA,
  PIPES_METADATA,
  ROUTE_ARGS_METADATA,
} from '@nestjs/common/constants.js';
import {
  ApplicationConfig,
  DiscoveryService,
  MetadataScanner,
  ModulesContainer,
  Reflector,
} from '@nestjs/core';
import type { StandardSchemaWithJSON } from '@modelcontextprotocol/server';
import { REQUIRED_SCOPES_KEY } from '../auth/require-scopes.decorator.js';
import { type ScopeDeclaration, scopeDeclaration } from '../auth/scopes.js';
import { withCachedJsonSchema } from './cached-schema.js';
import { Metrics } from '../metrics/metrics.service.js';
import { MCP_TOOL_KEY, type McpToolOptions } from './mcp-tool.decorator.js';
import { type ToolHandler, ToolInvokers } from './tool-invoker.js';

const TOOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** A tool as discovered: its declaration, resolved scopes, and its method behind Nest's pipeline. */
export interface RegisteredTool {
  name: string;
  options: McpToolOptions;
  /** Where it is declared, `Class.method`, for messages. */
  declaredAt: string;
  /** The tool's scopes, class and method merged (all of them are required). */
  requiredScopes: readonly string[];
  /** Its schemas as the SDK lists them, JSON Schema rendering cached; values are checked by ToolCallPipeline. */
  inputSchema: StandardSchemaWithJSON;
  outputSchema: StandardSchemaWithJSON;
  /** The method, run through the guards and interceptors that apply to it (global ones too). */
  handler: ToolHandler;
}

/** A scope the running server requires somewhere, its declaration and the tools requiring it. */
export interface ScopeInUse extends ScopeDeclaration {
  tools: string[];
}

/** A method marked @McpTool on a provider, as declared: its options and its merged scopes. */
export interface DeclaredTool {
  instance: object;
  method: string;
  handler: (...args: unknown[]) => unknown;
  options: McpToolOptions;
  /** Class and method scopes merged, each once (all of them are required). */
  requiredScopes: string[];
  /** The module providing it: its enhancers apply to the tool. */
  moduleKey: string;
}

/**
 * Every @McpTool method of these providers (DiscoveryService.getProviders()). Nest's preview mode
 * lists the same providers without creating them, which is how `npm run doctor` finds the tools
 * of a deployment without opening its databases.
 */
export function declaredTools(
  providers: ReturnType<DiscoveryService['getProviders']>,
  scanner: MetadataScanner,
  reflector: Reflector,
): DeclaredTool[] {
  const tools: DeclaredTool[] = [];
  for (const wrapper of providers) {
    const instance: unknown = wrapper.instance;
    if (!instance || typeof instance !== 'object' || wrapper.isAlias) continue;
    const prototype = Object.getPrototypeOf(instance) as object;
    for (const method of scanner.getAllMethodNames(prototype)) {
      const handler = (instance as Record<string, unknown>)[method];
      if (typeof handler !== 'function') continue;
      const options = reflector.get<McpToolOptions | undefined>(MCP_TOOL_KEY, handler);
      if (!options) continue;
      const requiredScopes = [
        ...new Set(
          reflector.getAllAndMerge<string[]>(REQUIRED_SCOPES_KEY, [handler, instance.constructor]),
        ),
      ];
      tools.push({
        instance,
        method,
        handler: handler as DeclaredTool['handler'],
        options,
        requiredScopes,
        moduleKey: wrapper.host?.token ?? '',
      });
    }
  }
  return tools;
}

/** Nest enhancers that a tool cannot honour, and what to do instead. */
const REFUSED_ENHANCERS: [key: string, what: string, instead: string][] = [
  [
    EXCEPTION_FILTERS_METADATA,
    '@UseFilters',
    "a tool's failures become isError results: throw ToolError, or map errors in an interceptor",
  ],
  [PIPES_METADATA, '@UsePipes', 'its input schema (zod) validates and transforms its arguments'],
];

/**
 * Discovery and lookup: every @McpTool method of every provider, found once at start-up, its
 * declaration checked (name, scopes, enhancers), bound to Nest's guards and interceptors once
 * (global enhancers, @UseGuards, @UseInterceptors; see ToolInvokers). A tool in a new module is
 * scope-checked and audited without code of its own. Calls go through ToolCallPipeline.
 */
@Injectable()
export class ToolRegistry implements OnModuleInit {
  private readonly logger = new Logger(ToolRegistry.name);
  private readonly byName = new Map<string, RegisteredTool>();
  private catalog: ScopeInUse[] = [];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly modules: ModulesContainer,
    private readonly config: ApplicationConfig,
    private readonly metrics: Metrics,
  ) {}

  onModuleInit(): void {
    const invokers = new ToolInvokers(this.modules, this.config);
    for (const tool of declaredTools(this.discovery.getProviders(), this.scanner, this.reflector))
      this.register(tool, invokers);
    this.catalog = this.scopesInUse();
    this.metrics.toolsRegistered(this.byName.keys());
    this.logger.log(
      `${this.byName.size} tools; scopes: ${this.catalog.map((s) => `${s.name} (${s.module})`).join(' ')}`,
    );
  }

  get tools(): IterableIterator<RegisteredTool> {
    return this.byName.values();
  }

  get(name: string): RegisteredTool | undefined {
    return this.byName.get(name);
  }

  /** The scopes the tools require, sorted, for the protected resource metadata. */
  scopesSupported(): string[] {
    return this.catalog.map((scope) => scope.name);
  }

  /** Every scope the tools require, with the module that declared it and the tools requiring it. */
  scopes(): readonly ScopeInUse[] {
    return this.catalog;
  }

  private scopesInUse(): ScopeInUse[] {
    const byScope = new Map<string, ScopeInUse>();
    for (const tool of this.byName.values())
      for (const scope of tool.requiredScopes) {
        let entry = byScope.get(scope);
        if (!entry) {
          // RequireScopes accepts declared scopes only; a declaration is there.
          entry = { ...scopeDeclaration(scope)!, tools: [] };
          byScope.set(scope, entry);
        }
        entry.tools.push(tool.name);
      }
    return [...byScope.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private register(
    { instance, method, handler, options, requiredScopes, moduleKey }: DeclaredTool,
    invokers: ToolInvokers,
  ): void {
    const declaredAt = `${instance.constructor.name}.${method}`;
    const fail = (problem: string) => new Error(`${declaredAt}: ${problem}`);
    if (!TOOL_NAME.test(options.name)) throw fail(`invalid tool name "${options.name}"`);
    if (this.byName.has(options.name))
      throw fail(
        `tool "${options.name}" is declared twice (also by ${this.byName.get(options.name)!.declaredAt})`,
      );
    if (requiredScopes.length === 0)
      throw fail(`tool "${options.name}" declares no scope; add @RequireScopes(...)`);
    for (const [key, what, instead] of REFUSED_ENHANCERS)
      if (this.reflector.getAllAndMerge<unknown[]>(key, [handler, instance.constructor]).length > 0)
        throw fail(`${what} is not applied to MCP tools (${instead}); remove it`);
    if (Reflect.getMetadata(ROUTE_ARGS_METADATA, instance.constructor, method) !== undefined)
      throw fail(
        'parameter decorators are not applied to MCP tools: a tool method takes (input, context: ToolContext)',
      );

    this.byName.set(options.name, {
      name: options.name,
      options,
      declaredAt,
      requiredScopes,
      inputSchema: withCachedJsonSchema(options.input, { listOnly: true }),
      outputSchema: withCachedJsonSchema(options.output, { listOnly: true }),
      handler: invokers.create({ instance, handler, moduleKey }),
    });
  }
}
