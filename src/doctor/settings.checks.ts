import {
  ConfigurationError,
  type Environment,
  readSettings,
  type Settings,
} from '../config/settings.js';
import type { Report } from './report.js';

const LOOPBACK = /^(localhost|127(\.\d+){3}|\[::1\]|::1)$/i;

/** Whether a host name or address stays on this machine. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/**
 * The settings as the server reads them (the same function, so the same error for a bad one),
 * and the combinations that start a server clients cannot use.
 */
export function checkSettings(report: Report, env: Environment): Settings | undefined {
  let settings: Settings;
  try {
    settings = readSettings(env);
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
    report.fail(
      'settings',
      `Configuration error: ${error.message}`,
      `correct ${error.variable}; the server refuses to start with it (README, "Configuration")`,
    );
    return undefined;
  }
  const { server, auth, mcp } = settings;
  report.ok(
    'settings',
    `AUTH_ISSUER=${auth.issuer} RESOURCE_URL=${mcp.resourceUrl} AUTH_ALGORITHMS=${auth.algorithms.join(',')}` +
      (auth.jwksUri ? ` AUTH_JWKS_URI=${auth.jwksUri}` : ''),
  );
  const publicHost = new URL(server.publicUrl).hostname;
  if (isLoopback(publicHost) && !isLoopback(server.host))
    report.warn(
      'PUBLIC_URL',
      `is ${server.publicUrl} while HOST=${server.host} accepts connections from other machines: they would be told to connect to ${mcp.resourceUrl}`,
      "set PUBLIC_URL to the origin clients reach the server at (behind a proxy, the proxy's, e.g. https://db-mcp.example.com)",
    );
  const served = `${server.publicUrl}${mcp.path}`;
  if (mcp.resourceUrl !== served)
    report.warn(
      'RESOURCE_URL',
      `is ${mcp.resourceUrl} but the endpoint is served at ${served} (PUBLIC_URL + MCP_PATH): a client that connects there asks for a token for ${served}, which is refused`,
      'unset RESOURCE_URL, unless a proxy serves the endpoint at RESOURCE_URL',
    );
  return settings;
}
