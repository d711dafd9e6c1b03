import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { Logger as PinoLogger } from 'nestjs-pino';
import { AppModule } from './app.module.js';
import { AuditUnavailableError, sendAuditUnavailable } from './audit/audit-unavailable.js';
import { AuditService } from './audit/audit.service.js';
import { unverifiedClaims } from './auth/unverified-claims.js';
import { ensureRequestId } from './common/request-id.js';
import { requestInfoOf } from './common/request-info.js';
import { readSettings, type Settings } from './config/settings.js';
import { httpMetrics } from './metrics/http-metrics.js';
import { Metrics } from './metrics/metrics.service.js';

export interface StartOptions {
  /** `false`: log nothing, whatever LOG_LEVEL says (for tests). */
  logger?: false;
  /** The settings, read from the environment when not given. */
  settings?: Settings;
}

/**
 * JSON-RPC shaped answers for bodies the parser refuses (malformed JSON, too large). On the MCP
 * endpoint the refusal is audited (before authentication: with the token's unverified claims),
 * and answered 503 instead when its record cannot be written.
 */
function bodyErrorHandler(audit: AuditService, mcpPath: string) {
  return async (
    error: unknown,
    request: Request,
    response: Response,
    next: NextFunction,
  ): Promise<void> => {
    const status = (error as { status?: unknown } | null)?.status;
    const type = (error as { type?: unknown } | null)?.type;
    if (typeof status !== 'number' || typeof type !== 'string') return next(error);
    if (response.headersSent) return next(error);
    const tooLarge = type === 'entity.too.large';
    const message = tooLarge
      ? 'Request body too large'
      : 'Parse error: the request body is not valid JSON';
    if (request.path === mcpPath)
      try {
        // Nest's middleware, which names requests, has not run yet: the parser comes first.
        ensureRequestId(request, response);
        await audit.record({
          outcome: 'refused_invalid_request',
          claimed: unverifiedClaims(request.headers.authorization),
          reason: message,
          ...requestInfoOf(request),
        });
      } catch (failure) {
        if (!(failure instanceof AuditUnavailableError)) return next(failure);
        return sendAuditUnavailable(response, null);
      }
    response.status(tooLarge ? 413 : status).json({
      jsonrpc: '2.0',
      error: { code: tooLarge ? -32600 : -32700, message },
      id: null,
    });
  };
}

/**
 * Creates and starts the app with the settings given, or else read (once) from the environment;
 * used by main.ts, the sandbox and the e2e tests.
 */
export async function startApp(options: StartOptions = {}): Promise<NestExpressApplication> {
  const settings = options.settings ?? readSettings(process.env);
  const app = await NestFactory.create<NestExpressApplication>(
    AppModule.forRoot({ settings, logLevel: options.logger === false ? 'silent' : undefined }),
    // Buffered until pino takes over, so that even start-up messages are JSON lines. A failed
    // start (e.g. an unreachable audit database) is thrown to the caller, not a process.exit.
    { bodyParser: false, bufferLogs: true, abortOnError: false },
  );
  app.useLogger(app.get(PinoLogger));
  app.disable('x-powered-by');
  // First, so that what the body parser refuses is counted too.
  app.use(httpMetrics(app.get(Metrics), settings.mcp.path));
  app.useBodyParser('json', { limit: settings.server.maxBodyBytes });
  // Right after the parser: init() registers Nest's own error handler, which would answer first.
  app.use(bodyErrorHandler(app.get(AuditService), settings.mcp.path));
  await app.init();
  await app.listen(settings.server.port, settings.server.host);
  Logger.log(
    `MCP endpoint ${settings.mcp.resourceUrl} (listening on ${await app.getUrl()}), issuer ${settings.auth.issuer}`,
    'ScopeDB',
  );
  return app;
}
