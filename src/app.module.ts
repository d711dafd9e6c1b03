import { type DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR, RouterModule } from '@nestjs/core';
import { AuditInterceptor } from './audit/audit.interceptor.js';
import { AuditModule } from './audit/audit.module.js';
import { AuthModule } from './auth/auth.module.js';
import { JwtAuthGuard } from './auth/jwt-auth.guard.js';
import { OAuthChallengeFilter } from './auth/oauth-challenge.filter.js';
import { ScopesGuard } from './auth/scopes.guard.js';
import { configNamespaces } from './config/configuration.js';
import { type LogLevelName, readSettings, type Settings } from './config/settings.js';
import { DatabaseModule } from './database/database.module.js';
import { ReportsModule } from './examples/reports/reports.module.js';
import { HealthModule } from './health/health.module.js';
import { LoggingModule } from './logging/logging.module.js';
import { McpModule } from './mcp/mcp.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { RateLimitFilter } from './rate-limit/rate-limit.filter.js';
import { RateLimitGuard } from './rate-limit/rate-limit.guard.js';
import { RateLimitModule } from './rate-limit/rate-limit.module.js';
import { ToolsModule } from './tools/tools.module.js';
import { WellKnownModule } from './well-known/well-known.module.js';

/**
 * Every global enhancer, in order: authenticate (refusals charge the IP's rate limit), rate limit
 * per principal (per IP on public routes), then check scopes; audit; the challenge and 429 filters.
 */
const GLOBAL_ENHANCERS = [
  { provide: APP_GUARD, useExisting: JwtAuthGuard },
  { provide: APP_GUARD, useExisting: RateLimitGuard },
  { provide: APP_GUARD, useExisting: ScopesGuard },
  { provide: APP_INTERCEPTOR, useClass: AuditInterceptor },
  { provide: APP_FILTER, useExisting: OAuthChallengeFilter },
  { provide: APP_FILTER, useExisting: RateLimitFilter },
];

export interface AppOptions {
  /** Overrides LOG_LEVEL (the e2e tests run silent). */
  logLevel?: LogLevelName;
  /** The settings, read from the environment when not given. */
  settings?: Settings;
  /** Modules to serve beside ScopeDB's own (extensions of a program that embeds it). */
  modules?: ModuleImport[];
}

type ModuleImport = NonNullable<DynamicModule['imports']>[number];

@Module({})
export class AppModule {
  /** The app, its config namespaces all from one read of the settings. */
  static forRoot(options: AppOptions = {}): DynamicModule {
    const settings = options.settings ?? readSettings(process.env);
    const { mcp, database, internal } = settings;
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({
          isGlobal: true,
          ignoreEnvFile: true,
          load: configNamespaces(settings),
        }),
        MetricsModule,
        AuthModule,
        AuditModule,
        DatabaseModule.forRoot(database.type, internal.type),
        LoggingModule.forRoot(options.logLevel),
        HealthModule,
        McpModule,
        RateLimitModule,
        RouterModule.register([{ path: mcp.path, module: McpModule }]),
        ToolsModule,
        WellKnownModule,
        // The worked example extension (README, "Adding a tool"): one line to add a module.
        ...(mcp.reportsExample ? [ReportsModule] : []),
        ...(options.modules ?? []),
      ],
      providers: GLOBAL_ENHANCERS,
    };
  }
}
