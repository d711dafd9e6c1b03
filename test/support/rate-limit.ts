import type { McpResponse } from './mcp-http.js';

/**
 * Expects a 429 whose Retry-After (whole seconds, 1 to 60) is the `retry_after` of its JSON body;
 * the seconds.
 */
export function expectRateLimited(response: McpResponse): number {
  expect(response.status).toBe(429);
  const retryAfter = Number(response.headers.get('retry-after'));
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(JSON.parse(response.body)).toMatchObject({
    error: 'rate_limited',
    retry_after: retryAfter,
  });
  return retryAfter;
}
