import {
  DiscoveryService,
  MetadataScanner,
  ModulesContainer,
  NestFactory,
  Reflector,
} from '@nestjs/core';
import { AppModule } from '../app.module.js';
import type { Settings } from '../config/settings.js';
import { declaredTools } from '../mcp/tool-registry.js';

/** A tool of the deployment and the scopes a token needs to call it. */
export interface CatalogTool {
  name: string;
  requiredScopes: readonly string[];
}

/**
 * The tools these settings serve (REPORTS_EXAMPLE adds some), found as ToolRegistry finds them,
 * in the module graph the server builds, but in Nest's preview mode: nothing is created, so no
 * database is opened and nothing is started.
 */
export async function toolCatalog(settings: Settings): Promise<CatalogTool[]> {
  const context = await NestFactory.createApplicationContext(
    AppModule.forRoot({ settings, logLevel: 'silent' }),
    { preview: true, logger: false, abortOnError: false },
  );
  try {
    const providers = new DiscoveryService(context.get(ModulesContainer)).getProviders();
    return declaredTools(providers, new MetadataScanner(), new Reflector()).map((tool) => ({
      name: tool.options.name,
      requiredScopes: tool.requiredScopes,
    }));
  } finally {
    await context.close();
  }
}
