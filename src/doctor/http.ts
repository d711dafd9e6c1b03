import { messageOf } from '../mcp/tool-context.js';

/** An HTTP answer, its body read (and parsed when it is JSON). */
export interface Answer {
  status: number;
  headers: Headers;
  json: unknown;
}

/** No HTTP answer at all, and why (refused, name not found, TLS, timeout). */
export interface Unreachable {
  unreachable: string;
}

/** Why a request got no answer, in the words of the system (`ECONNREFUSED`, `ENOTFOUND`, ...). */
function whyUnreachable(error: unknown, timeoutMs: number): string {
  if (error instanceof DOMException && error.name === 'TimeoutError')
    return `no answer within ${timeoutMs} ms`;
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string')
    return typeof cause.message === 'string' && cause.message.includes(cause.code)
      ? cause.message
      : `${cause.code}${typeof cause.message === 'string' ? ` (${cause.message})` : ''}`;
  return messageOf(cause ?? error);
}

/** One request, never redirected (an answer elsewhere is not this URL's answer). */
export async function request(
  url: string,
  timeoutMs: number,
  init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer | Unreachable> {
  try {
    const response = await fetch(url, {
      ...init,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, json };
  } catch (error) {
    return { unreachable: whyUnreachable(error, timeoutMs) };
  }
}

/** The body when it is a JSON object. */
export function objectOf(answer: Answer): Record<string, unknown> | undefined {
  const { json } = answer;
  return json !== null && typeof json === 'object' && !Array.isArray(json)
    ? (json as Record<string, unknown>)
    : undefined;
}
