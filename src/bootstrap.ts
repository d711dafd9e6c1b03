import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { Logger as PinoLogger } from 'nestjs-pino';
import { AppModule } from './app.module.js';
import { readSettings } from './config/settings.js';

export interface StartOptions {
  /** `false`: log nothing, whatever LOG_LEVEL says (for tests). */
  logger?: false;
}

/** JSON-RPC shaped answers for bodies the parser refuses (malformed JSON, too large). */
function bodyErrorHandler(
  error: unknown,
  _request: Request,
  response: Response,
  next: NextFunction,
): void {
  const status = (error as { status?: unknown } | null)?.status;
  const type = (error as { type?: unknown } | null)?.type;
  if (typeof status !== 'number' || typeof type !== 'string') return next(error);
  if (response.headersSent) return next(error);
  const tooLarge = type === 'entity.too.large';
  response.status(tooLarge ? 413 : status).json({
    jsonrpc: '2.0',
    error: {
      code: tooLarge ? -32600 : -32700,
      message: tooLarge
        ? 'Request body too large'
        : 'Parse error: the request body is not valid JSON',
    },
    id: null,
  });
}

/** Creates and starts the app from the environment; used by main.ts and by the e2e tests. */
export async function startApp(options: StartOptions = {}): Promise<NestExpressApplication> {
  const settings = readSettings(process.env);
  const app = await NestFactory.create<NestExpressApplication>(
    AppModule.forRoot({ logLevel: options.logger === false ? 'silent' : undefined }),
    // Buffered until pino takes over, so that even start-up messages are JSON lines. A failed
    // start (e.g. an unreachable audit database) is thrown to the caller, not a process.exit.
    { bodyParser: false, bufferLogs: true, abortOnError: false },
  );
  app.useLogger(app.get(PinoLogger));
  app.disable('x-powered-by');
  app.useBodyParser('json', { limit: settings.server.maxBodyBytes });
  // Right after the parser: init() registers Nest's own error handler, which would answer first.
  app.use(bodyErrorHandler);
  await app.init();
  await app.listen(settings.server.port, settings.server.host);
  Logger.log(
    `MCP endpoint ${settings.mcp.resourceUrl} (listening on ${await app.getUrl()}), issuer ${settings.auth.issuer}`,
    'ScopeDB',
  );
  return app;
}
