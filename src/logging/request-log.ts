import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger as Pino } from 'pino';
import type { AuthenticatedRequest } from '../auth/principal.js';
import { ensureRequestId } from '../common/request-id.js';
import { isExpectedRefusal } from './expected-refusal.js';

type Level = 'info' | 'warn' | 'error';

/**
 * The level of a request's line: 5xx `error` (but 503, refused while the audit log cannot be
 * written: `warn`, the outage itself is logged once by AuditService), 4xx `warn` unless it is an
 * expected refusal (a challenge without any token, `GET /mcp`), else `info`.
 */
export function requestLineLevel(response: ServerResponse, error?: unknown): Level {
  if (error || (response.statusCode >= 500 && response.statusCode !== 503)) return 'error';
  if (response.statusCode >= 400 && !isExpectedRefusal(response)) return 'warn';
  return 'info';
}

/**
 * One line per request, written when its response is finished (or the client went away), in the
 * shape pino-http gives it: `requestId`, `req`, `res`, `responseTime`, and `principal` once the
 * guard has set it. Built for every route (the MCP fast path and Express alike) without a logger
 * object or an async context per request: nothing is allocated for the line at a level that drops
 * it, and lines logged during a request that concern it (refusals, tool failures) name its
 * `requestId` themselves.
 */
export function requestLogger(root: () => Pino | undefined) {
  return (request: IncomingMessage, response: ServerResponse): void => {
    const requestId = ensureRequestId(request, response);
    // pino-http's `req` serializer (on the root logger) reads the id from here.
    (request as { id?: string }).id = requestId;
    const started = Date.now();
    response.once('close', () => {
      const logger = root();
      if (!logger) return;
      const finished = response.writableFinished;
      const error = finished ? undefined : new Error('request aborted');
      const level = requestLineLevel(response, error);
      if (!logger.isLevelEnabled(level)) return;
      const principal = (request as AuthenticatedRequest).user?.subject;
      const failed =
        error ??
        (response.statusCode >= 500
          ? new Error(`failed with status code ${response.statusCode}`)
          : undefined);
      logger[level](
        {
          requestId,
          req: request,
          res: response,
          ...(failed && { err: failed }),
          responseTime: Date.now() - started,
          ...(principal !== undefined && { principal }),
        },
        failed ? (finished ? 'request errored' : 'request aborted') : 'request completed',
      );
    });
  };
}
