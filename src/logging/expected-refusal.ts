import type { ServerResponse } from 'node:http';

const expected = new WeakSet<ServerResponse>();

/**
 * Marks a 4xx that every well-behaved client meets (the first 401 of an OAuth flow, the 405 of
 * `GET /mcp`): its request line is `info` like any answered request, not `warn`.
 */
export function markExpectedRefusal(response: ServerResponse): void {
  expected.add(response);
}

export function isExpectedRefusal(response: ServerResponse): boolean {
  return expected.has(response);
}
