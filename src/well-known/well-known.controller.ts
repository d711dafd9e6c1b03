// OAuth 2.0 Protected Resource Metadata (RFC 9728): the document MCP clients read after a 401
// to find the authorization server (Casdoor) and the scopes this resource knows.
import {
  Controller,
  Get,
  Header,
  HttpCode,
  Inject,
  NotFoundException,
  Options,
  Param,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Public } from '../auth/public.decorator.js';
import { SkipRateLimit } from '../rate-limit/skip-rate-limit.decorator.js';
import { authConfig, mcpConfig } from '../config/configuration.js';
import { ToolRegistry } from '../mcp/tool-registry.js';

export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  bearer_methods_supported: ['header'];
  resource_name: string;
}

// Browser-based MCP clients fetch the metadata cross-origin.
const CORS = 'Access-Control-Allow-Origin';

// Not rate limited: a cheap, static document every client must reach to find the issuer.
@SkipRateLimit()
@Public()
@Controller('.well-known/oauth-protected-resource')
export class WellKnownController {
  private readonly resourcePath: string;

  constructor(
    @Inject(authConfig.KEY) private readonly auth: ConfigType<typeof authConfig>,
    @Inject(mcpConfig.KEY) private readonly mcp: ConfigType<typeof mcpConfig>,
    private readonly registry: ToolRegistry,
  ) {
    this.resourcePath = new URL(mcp.resourceUrl).pathname.replace(/^\/$/, '');
  }

  // Built per request from the registry, which is complete only once every module has started.
  private get metadata(): ProtectedResourceMetadata {
    return {
      resource: this.mcp.resourceUrl,
      authorization_servers: [this.auth.issuer],
      scopes_supported: this.registry.scopesSupported(),
      bearer_methods_supported: ['header'],
      resource_name: this.mcp.resourceName,
    };
  }

  @Get()
  @Header(CORS, '*')
  @Header('Cache-Control', 'public, max-age=3600')
  root(): ProtectedResourceMetadata {
    return this.metadata;
  }

  @Get('*suffix')
  @Header(CORS, '*')
  @Header('Cache-Control', 'public, max-age=3600')
  suffixed(@Param('suffix') suffix: string | string[]): ProtectedResourceMetadata {
    const path = `/${Array.isArray(suffix) ? suffix.join('/') : suffix}`;
    if (path !== this.resourcePath)
      throw new NotFoundException(`No protected resource is served at ${path}`);
    return this.metadata;
  }

  @Options(['', '*suffix'])
  @HttpCode(204)
  @Header(CORS, '*')
  @Header('Access-Control-Allow-Methods', 'GET, OPTIONS')
  @Header('Access-Control-Allow-Headers', '*')
  @Header('Access-Control-Max-Age', '86400')
  preflight(): void {}
}
