import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Logger as NestPinoLogger, PinoLogger } from 'nestjs-pino';
import { AppModule, type AppOptions } from './app.module.js';
import { AuditService } from './audit/audit.service.js';
import { readSettings, type Settings } from './config/settings.js';
import { bodyErrorHandler } from './http/body-errors.js';
import { installMcpFastPath } from './http/mcp-fast-path.js';
import { requestLogger } from './logging/request-log.js';
import { httpMetrics } from './metrics/http-metrics.js';
import { Metrics } from './metrics/metrics.service.js';

export interface StartOptions {
  /** `false`: log nothing, whatever LOG_LEVEL says (for tests). */
  logger?: false;
  /** The settings, read from the environment when not given. */
  settings?: Settings;
  /** Modules to serve beside ScopeDB's own (extensions of a program that embeds it). */
  modules?: AppOptions['modules'];
}

/**
 * Creates and starts the app with the settings given, or else read (once) from the environment;
 * used by main.ts, the sandbox and the e2e tests.
 */
export async function startApp(options: StartOptions = {}): Promise<NestExpressApplication> {
  const settings = options.settings ?? readSettings(process.env);
  const app = await NestFactory.create<NestExpressApplication>(
    AppModule.forRoot({
      settings,
      logLevel: options.logger === false ? 'silent' : undefined,
      modules: options.modules,
    }),
    // Buffered until pino takes over, so that even start-up messages are JSON lines. A failed
    // start (e.g. an unreachable audit database) is thrown to the caller, not a process.exit.
    { bodyParser: false, bufferLogs: true, abortOnError: false },
  );
  app.useLogger(app.get(NestPinoLogger));
  app.disable('x-powered-by');
  const mcpPath = settings.mcp.path;
  // First, so that what the body parser refuses is logged and counted too.
  const logRequest = requestLogger(() => PinoLogger.root);
  const countRequest = httpMetrics(app.get(Metrics), mcpPath);
  const observe = (request: IncomingMessage, response: ServerResponse) => {
    logRequest(request, response);
    countRequest(request, response);
  };
  app.use((request: IncomingMessage, response: ServerResponse, next: () => void) => {
    observe(request, response);
    next();
  });
  app.useBodyParser('json', { limit: settings.server.maxBodyBytes });
  // Right after the parser: init() registers Nest's own error handler, which would answer first.
  const refuseBody = bodyErrorHandler(app.get(AuditService), mcpPath);
  app.use(refuseBody);
  // The layers so far (Nest's hooks, the three above) are those the MCP fast path replaces.
  const replacedLayers = (app.getHttpAdapter().getInstance() as { router: { stack: unknown[] } })
    .router.stack.length;
  await app.init();
  if (settings.mcp.fastPath) {
    const off = installMcpFastPath(app, {
      mcpPath,
      maxBodyBytes: settings.server.maxBodyBytes,
      observe,
      replacedLayers,
      refuseBody,
    });
    if (off) Logger.warn(`MCP fast path off: ${off}; Express serves every request`, 'ScopeDB');
  }
  await app.listen(settings.server.port, settings.server.host);
  Logger.log(
    `MCP endpoint ${settings.mcp.resourceUrl} (listening on ${await app.getUrl()}), issuer ${settings.auth.issuer}`,
    'ScopeDB',
  );
  return app;
}
