import type { ScopeInUse } from '../src/mcp/tool-registry.js';
import { type DemoUser, grantableScopes } from './accounts.js';

export interface InstructionFacts {
  mcpUrl: string;
  issuerUrl: string;
  databasePath: string;
  /** The database was created now (else kept from an earlier run). */
  seeded: boolean;
  baselineScopes: readonly string[];
  /** The scopes the issuer offers: every scope the server declares (ToolRegistry.scopes()). */
  scopes: readonly ScopeInUse[];
  /** REPORTS_EXAMPLE: the worked example extension is served. */
  reportsExample: boolean;
  users: readonly DemoUser[];
}

/** Rows of cells, each column padded to its widest cell, indented. */
function table(rows: readonly string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows
    .map((row) =>
      `    ${row.map((cell, column) => cell.padEnd(widths[column])).join('   ')}`.trimEnd(),
    )
    .join('\n');
}

/** What `npm run dev` prints once everything listens. */
export function instructions(facts: InstructionFacts): string {
  const offered = facts.scopes.map((scope) => scope.name);
  const users = table(
    facts.users.map((user) => [
      `${user.name} / ${user.password}`,
      `may grant ${grantableScopes(user, offered).join(' ')}`,
    ]),
  );
  const scopes = table(
    facts.scopes.map((scope) => [scope.name, scope.title, scope.tools.join(', ')]),
  );
  const example = facts.reportsExample
    ? 'The worked example extension (src/examples/reports) is on; REPORTS_EXAMPLE=false leaves it out.'
    : 'The worked example extension (src/examples/reports) is off; REPORTS_EXAMPLE=true serves it.';
  const claude = JSON.stringify(
    {
      mcpServers: {
        scopedb: { command: 'npx', args: ['-y', 'mcp-remote', facts.mcpUrl] },
      },
    },
    null,
    2,
  )
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
  const baseline = facts.baselineScopes.join(' ');
  return `
ScopeDB sandbox is running (development only, loopback only).

  MCP endpoint (Streamable HTTP)   ${facts.mcpUrl}
  Authorization server             ${facts.issuerUrl}  (Casdoor-shaped, for development)
  Demo database                    ${facts.databasePath}  (${facts.seeded ? 'created and seeded now' : 'kept from an earlier run; delete it to start over'})
                                   customers, products, orders, order_items, view order_totals

  Demo users (sign in when your MCP client opens the browser):
${users}

  Scopes offered at consent (every scope the server's tools require, and the tools requiring it):
${scopes}

  ${example}

  MCP Inspector 2.x (declares Node.js 22.19+; on older Node npm warns and it runs anyway):
    npx @modelcontextprotocol/inspector
    It opens http://127.0.0.1:6274. Add Servers > Add manually, transport streamable-http,
    URL ${facts.mcpUrl}; then turn on the switch on the server card. Sign in, tick the
    scopes to grant, and call the tools (try query: SELECT * FROM order_totals LIMIT 5).
    Its CLI: npx @modelcontextprotocol/inspector --cli ${facts.mcpUrl} --method tools/list

  MCP Inspector 1.x (deprecated):
    npx @modelcontextprotocol/inspector@1
    It opens http://localhost:6274. Transport Type "Streamable HTTP", URL ${facts.mcpUrl},
    Connection Type "Direct" or "Via Proxy", Connect. Sign in and tick the scopes to grant.

  Claude Desktop (claude_desktop_config.json; mcp-remote signs you in through the browser):
${claude}

  Your own client on MCP SDK 2.x (@modelcontextprotocol/client): README, "Connecting an MCP client".

  Scopes and stepping up: clients ask first for the scopes the 401 names (${baseline}); Inspector
  2.x asks for every scope offered. When a tool needs more, the server answers 403 naming them.
    Step up by themselves (the consent page opens again):  mcp-remote 0.15 (so Claude Desktop
      with the config above), clients on MCP SDK 2.x.
    Do not:  Inspector 2.x (tick at sign-in what you will need), Inspector 1.x and other clients
      on MCP SDK 1.x. For those, ask for more up front:
      AUTH_BASELINE_SCOPES="db:query db:modify" npm run dev

  Stop with Ctrl+C. LOG_LEVEL=info shows ScopeDB's request log.

`;
}
