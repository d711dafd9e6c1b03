import type { IncomingMessage, ServerResponse } from 'node:http';

// CORS for browser-based clients (MCP Inspector in Direct mode). oidc-provider answers it on
// discovery, JWKS, token, userinfo and introspection; registration is ours. No endpoint here
// reads cookies, so none allows credentials.

/** As oidc-provider's own CORS answers: browsers may cache a preflight for an hour. */
const PREFLIGHT_MAX_AGE_S = 3600;

/**
 * Dynamic client registration from any origin: a browser-based client registers before the
 * issuer knows anything about it, and registration hands out nothing a cross-origin page could
 * not get by registering itself. Answers a preflight (true: answered); otherwise adds the headers
 * the actual response needs and leaves the answer to the caller.
 */
export function registrationCors(request: IncomingMessage, response: ServerResponse): boolean {
  const origin = request.headers.origin;
  response.setHeader('Vary', 'Origin');
  response.setHeader('Access-Control-Allow-Origin', origin ?? '*');
  if (request.method !== 'OPTIONS') return false;
  response.setHeader('Allow', 'POST');
  if (request.headers['access-control-request-method'] !== undefined) {
    response.setHeader('Access-Control-Allow-Methods', 'POST');
    const headers = request.headers['access-control-request-headers'];
    if (headers) response.setHeader('Access-Control-Allow-Headers', headers);
    response.setHeader('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_S));
  }
  response.writeHead(204).end();
  return true;
}

/**
 * oidc-provider's `clientBasedCORS` (token, userinfo, introspection): a client is called from
 * the page its redirect_uri is on, as Keycloak's default web origins are, so a page elsewhere
 * cannot read the answers meant for it.
 */
export function isClientOrigin(origin: string, redirectUris: readonly string[]): boolean {
  return origin !== 'null' && redirectUris.some((uri) => URL.parse(uri)?.origin === origin);
}
