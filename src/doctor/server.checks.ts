// The server as an MCP client meets it: a request without a token to the MCP URL, the 401's
// resource_metadata, the metadata it points at (RFC 9728); then, with a token, the server's verdict.
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/server';
import type { Settings } from '../config/settings.js';
import { protectedResourceMetadataUrl } from '../well-known/protected-resource-metadata.js';
import { type Answer, objectOf, request } from './http.js';
import { type Report, shown } from './report.js';
import { isLoopback } from './settings.checks.js';
import type { CatalogTool } from './tool-catalog.js';
import type { Verdict } from './verdict.js';

/** A 503 from the server: it cannot record the request in its audit log (it fails closed). */
const AUDIT_UNAVAILABLE: [detail: string, fix: string] = [
  'answered 503: the server cannot write its audit log (or a proxy in front is unavailable)',
  'see the server\'s log (README, "Fail closed")',
];

const OTHER_SETTINGS =
  'the running server was started with other settings than the doctor read: run the doctor with the same environment (the same variables, the same ./.env), or restart the server after changing them';

/** A POST an MCP client could send (tools/list needs a token and no scope). */
function post(url: string, timeoutMs: number, token?: string) {
  return request(url, timeoutMs, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': LATEST_PROTOCOL_VERSION,
      ...(token !== undefined && { Authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
}

/** The MCP endpoint at the listen address, as seen from this machine (undefined for PORT=0). */
function localMcpUrl({ server, mcp }: Settings): string | undefined {
  if (server.port === 0) return undefined;
  const host =
    server.host === '0.0.0.0'
      ? '127.0.0.1'
      : server.host === '::'
        ? '[::1]'
        : server.host.includes(':')
          ? `[${server.host}]`
          : server.host;
  return `http://${host}:${server.port}${mcp.path}`;
}

/** The parameters of a `Bearer k="v", ...` challenge. */
function challengeParams(header: string | null): Record<string, string> | undefined {
  if (!header || !/^Bearer\s/i.test(header)) return undefined;
  const params: Record<string, string> = {};
  for (const [, name, value] of header.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
    params[name] = value.replace(/\\(.)/g, '$1');
  return params;
}

/**
 * The challenge and metadata a client reads, from RESOURCE_URL; when that cannot be reached,
 * whether the server answers at its listen address. Returns the MCP URL that answered.
 */
export async function checkServer(
  report: Report,
  settings: Settings,
  tools: readonly CatalogTool[],
): Promise<string | undefined> {
  const timeoutMs = settings.auth.jwksTimeoutMs;
  const resourceUrl = settings.mcp.resourceUrl;
  let url = resourceUrl;
  let answer = await post(url, timeoutMs);
  if ('unreachable' in answer) {
    const local = localMcpUrl(settings);
    const localAnswer =
      local === undefined || local === resourceUrl ? undefined : await post(local, timeoutMs);
    if (local === undefined || !localAnswer || 'unreachable' in localAnswer) {
      const also =
        localAnswer && 'unreachable' in localAnswer
          ? ` nor at ${local} (${localAnswer.unreachable})`
          : '';
      report.fail(
        'server',
        `nothing answers at ${resourceUrl} (${answer.unreachable})${also}`,
        'start the server with these settings (npm start), then run npm run doctor again',
      );
      return undefined;
    }
    report.fail(
      'server',
      `${resourceUrl} cannot be reached (${answer.unreachable}), but the server answers at ${local}`,
      `set PUBLIC_URL to the origin clients reach this server at (behind a proxy, the proxy's${isLoopback(new URL(local).hostname) ? '' : `, or ${new URL(local).origin}`}) and make it forward ${settings.mcp.path} to ${new URL(local).host}`,
    );
    [url, answer] = [local, localAnswer];
  }
  const metadataUrl = checkChallenge(report, url, answer, resourceUrl);
  if (metadataUrl) await checkMetadata(report, settings, metadataUrl, tools);
  else report.skip('metadata', 'no resource_metadata to read');
  return url;
}

function checkChallenge(
  report: Report,
  url: string,
  answer: Answer,
  resourceUrl: string,
): string | undefined {
  if (answer.status === 503) {
    report.fail('challenge', `POST ${url} ${AUDIT_UNAVAILABLE[0]}`, AUDIT_UNAVAILABLE[1]);
    return undefined;
  }
  const header = answer.headers.get('www-authenticate');
  const metadataUrl = challengeParams(header)?.resource_metadata;
  if (answer.status !== 401 || metadataUrl === undefined) {
    report.fail(
      'challenge',
      `POST ${url} without a token answered HTTP ${answer.status}${header ? `, WWW-Authenticate: ${header}` : ' without a Bearer challenge'}: that is not ScopeDB's MCP endpoint`,
      'RESOURCE_URL must be the MCP endpoint clients connect to (PUBLIC_URL + MCP_PATH): check MCP_PATH, PUBLIC_URL and the routes of any proxy in front',
    );
    return undefined;
  }
  const expected = protectedResourceMetadataUrl(resourceUrl);
  if (metadataUrl !== expected)
    report.fail(
      'challenge',
      `POST ${url} without a token: 401 with resource_metadata ${metadataUrl}, where these settings would send ${expected}`,
      OTHER_SETTINGS,
    );
  else
    report.ok(
      'challenge',
      `POST ${url} without a token: 401 with resource_metadata ${metadataUrl}`,
    );
  return metadataUrl;
}

async function checkMetadata(
  report: Report,
  { auth, mcp }: Settings,
  url: string,
  tools: readonly CatalogTool[],
): Promise<void> {
  const answer = await request(url, auth.jwksTimeoutMs);
  const doc = 'unreachable' in answer ? undefined : objectOf(answer);
  if ('unreachable' in answer || answer.status !== 200 || !doc)
    return report.fail(
      'metadata',
      `${url}: ${'unreachable' in answer ? answer.unreachable : `HTTP ${answer.status}${doc ? '' : ' without a JSON document'}`}`,
      'clients read it to find Casdoor: set PUBLIC_URL to the public origin, and let any proxy in front pass /.well-known/oauth-protected-resource* to the server',
    );
  const problems: string[] = [];
  if (doc.resource !== mcp.resourceUrl)
    problems.push(`its resource is ${shown(doc.resource)}, RESOURCE_URL is ${mcp.resourceUrl}`);
  const servers = doc.authorization_servers;
  if (!Array.isArray(servers) || !servers.includes(auth.issuer))
    problems.push(
      `its authorization_servers ${shown(servers)} do not name AUTH_ISSUER ${auth.issuer}`,
    );
  if (problems.length > 0)
    return report.fail('metadata', `${url}: ${problems.join('; ')}`, OTHER_SETTINGS);
  report.ok(
    'metadata',
    `${url}: resource ${mcp.resourceUrl}, authorization_servers ${shown(servers)}`,
  );
  const served = Array.isArray(doc.scopes_supported)
    ? [...(doc.scopes_supported as unknown[])].sort()
    : [];
  const built = [...new Set(tools.flatMap((tool) => tool.requiredScopes))].sort();
  if (served.join(' ') !== built.join(' '))
    report.warn(
      'metadata',
      `the server requires the scopes ${served.join(' ') || 'none'}, the tools of this build and these settings ${built.join(' ')}`,
      'the server runs another build, or other settings (REPORTS_EXAMPLE): rebuild and restart it, or run the doctor with its settings',
    );
}

/** The running server's answer to the token, against the doctor's reading of these settings. */
export async function checkServerVerdict(
  report: Report,
  url: string,
  timeoutMs: number,
  token: string,
  expected: Verdict,
): Promise<void> {
  const answer = await post(url, timeoutMs, token);
  if ('unreachable' in answer)
    return report.fail(
      'server verdict',
      `${url}: ${answer.unreachable}`,
      'check that the server still runs',
    );
  if (answer.status === 429)
    return report.warn(
      'server verdict',
      `${url} answered 429: the rate limit of this address is spent`,
      'run the doctor again in a minute',
    );
  if (answer.status === 503)
    return report.fail('server verdict', `${url} ${AUDIT_UNAVAILABLE[0]}`, AUDIT_UNAVAILABLE[1]);
  const description = challengeParams(answer.headers.get('www-authenticate'))?.error_description;
  const actual: Verdict =
    answer.status === 401
      ? { accepted: false, description: description ?? `HTTP 401` }
      : { accepted: true };
  const said = (verdict: Verdict) =>
    verdict.accepted ? 'accepts it' : `refuses it ("${verdict.description}")`;
  const agree = actual.accepted
    ? expected.accepted
    : !expected.accepted && expected.description === actual.description;
  if (agree)
    return report.ok(
      'server verdict',
      `the server at ${url} ${said(actual)}, as these settings say`,
    );
  report.fail(
    'server verdict',
    `the server at ${url} ${said(actual)}; with these settings it ${said(expected)}`,
    OTHER_SETTINGS,
  );
}
