import { type DynamicModule, Module } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Request, Response } from 'express';
import { LoggerModule } from 'nestjs-pino';
import pino from 'pino';
import type { AuthenticatedRequest } from '../auth/principal.js';
import { ensureRequestId } from '../common/request-id.js';
import { logConfig } from '../config/configuration.js';
import type { LogLevelName } from '../config/settings.js';
import { isExpectedRefusal } from './expected-refusal.js';

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

/** The request line, with the verified principal (`sub`) once the guard has set it. */
function withPrincipal(request: Request, line: object): object {
  const principal = (request as AuthenticatedRequest).user?.subject;
  return principal === undefined ? line : { ...line, principal };
}

interface SerializedRequest {
  id: unknown;
  method: string;
  url: string;
  headers: Record<string, unknown>;
  remoteAddress: string | undefined;
}

/** JSON logs through pino: one line per request, Nest's Logger calls routed to the same stream. */
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
            pinoHttp: [
              {
                level: level ?? cfg.level,
                redact: { paths: REDACTED_PATHS, censor: '[Redacted]' },
                genReqId: (request, response) => ensureRequestId(request, response),
                // Every line of a request carries `requestId`; only the last one the whole request.
                quietReqLogger: true,
                customAttributeKeys: { reqId: 'requestId' },
                // Added to the request's last line, by then the guard has set the principal. (Not
                // customProps: that makes pino-http create child loggers for every request.)
                customSuccessObject: (request, _response, line: object) =>
                  withPrincipal(request, line),
                customErrorObject: (request, _response, _error, line: object) =>
                  withPrincipal(request, line),
                // 503: refused while the audit log cannot be written, an outage logged once
                // (with its cause) by AuditService, not once per refused call. An expected
                // refusal (a challenge without any token, GET /mcp) is ordinary traffic.
                customLogLevel: (_request, response, error) =>
                  error || (response.statusCode >= 500 && response.statusCode !== 503)
                    ? 'error'
                    : response.statusCode >= 400 && !isExpectedRefusal(response)
                      ? 'warn'
                      : 'info',
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
