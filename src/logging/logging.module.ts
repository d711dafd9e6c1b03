import { type DynamicModule, Module } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Request, Response } from 'express';
import { LoggerModule } from 'nestjs-pino';
import pino from 'pino';
import { logConfig } from '../config/configuration.js';
import type { LogLevelName } from '../config/settings.js';

/** Header and cookie values that carry credentials; pino replaces them before writing. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
];

/** A URL with the value of any `access_token` query parameter removed (RFC 6750 §2.3). */
export function withoutAccessToken(url: string): string {
  return url.replace(/([?&]access_token=)[^&#]*/gi, '$1[Redacted]');
}

interface SerializedRequest {
  id: unknown;
  method: string;
  url: string;
  headers: Record<string, unknown>;
  remoteAddress: string | undefined;
}

/** JSON logs through pino: Nest's Logger calls and the request lines (request-log.ts) in one stream. */
@Module({})
export class LoggingModule {
  /** `level` overrides LOG_LEVEL (the e2e tests run silent). */
  static forRoot(level?: LogLevelName): DynamicModule {
    return {
      module: LoggingModule,
      imports: [
        LoggerModule.forRootAsync<Request, Response>({
          inject: [logConfig.KEY],
          useFactory: (cfg: ConfigType<typeof logConfig>) => ({
            // No request middleware (no per-request child logger, no async context): each
            // request's line comes from requestLogger (request-log.ts), for every route.
            forRoutes: [],
            pinoHttp: [
              {
                level: level ?? cfg.level,
                redact: { paths: REDACTED_PATHS, censor: '[Redacted]' },
                serializers: {
                  // Query and params are left out: the URL carries them, with any token removed.
                  // Of the headers, only the user agent: the rest are noise or credentials.
                  req: (request: SerializedRequest) => ({
                    id: request.id,
                    method: request.method,
                    url: withoutAccessToken(request.url),
                    userAgent: request.headers['user-agent'],
                    remoteAddress: request.remoteAddress,
                  }),
                  // The status only: response headers (WWW-Authenticate, Set-Cookie) add noise, not facts.
                  res: (response: { statusCode: number }) => ({ statusCode: response.statusCode }),
                },
              },
              // Asynchronous writes to stdout: lines that come while a write is under way go out
              // together in the next one (one write a burst, not one a line). Pino writes what is
              // left synchronously when the process exits; a SIGKILL may lose the last lines, never
              // an audit record (the audit log is the record of decisions, not the log).
              pino.destination({ dest: 1, sync: false }),
            ],
          }),
        }),
      ],
    };
  }
}
