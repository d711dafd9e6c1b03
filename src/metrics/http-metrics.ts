import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpRoute, Metrics } from './metrics.service.js';

const WELL_KNOWN = '/.well-known/';
const HEALTH = new Set(['/healthz', '/readyz']);

/** The route label of a path: the MCP endpoint, the metadata, the probes, or anything else. */
export function routeOf(path: string, mcpPath: string): HttpRoute {
  if (path === mcpPath) return 'mcp';
  if (path.startsWith(WELL_KNOWN)) return 'well_known';
  if (HEALTH.has(path)) return 'health';
  return 'other';
}

/**
 * Counts every answered request on the MCP port and how long it took, refusals of the body parser
 * included (it is mounted before it). One listener per request; the counting runs after the
 * answer is sent.
 */
export function httpMetrics(metrics: Metrics, mcpPath: string) {
  return (request: IncomingMessage, response: ServerResponse): void => {
    const started = performance.now();
    response.once('finish', () =>
      metrics.httpRequestFinished(
        routeOf(pathOf(request.url ?? '/'), mcpPath),
        request.method ?? 'GET',
        response.statusCode,
        (performance.now() - started) / 1000,
      ),
    );
  };
}

/** The path of a request target, without its query. */
function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
