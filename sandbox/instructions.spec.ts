import { DEMO_USERS } from './accounts.js';
import { type InstructionFacts, instructions } from './instructions.js';

const MCP_URL = 'http://localhost:3999/mcp';
const FACTS: InstructionFacts = {
  mcpUrl: MCP_URL,
  issuerUrl: 'http://localhost:3998',
  databasePath: 'data/demo.sqlite',
  seeded: true,
  baselineScopes: ['db:query'],
  scopes: [
    { name: 'db:query', module: 'database', title: 'Read', description: 'Read', tools: ['query'] },
    {
      name: 'db:modify',
      module: 'database',
      title: 'Write',
      description: 'Write',
      tools: ['execute'],
    },
  ],
  reportsExample: false,
  users: DEMO_USERS,
};

/** The lines of the banner from the one starting with `heading` to the next blank line. */
function paragraph(banner: string, heading: string): string {
  const start = banner.indexOf(`\n  ${heading}`);
  if (start < 0) throw new Error(`no paragraph "${heading}" in:\n${banner}`);
  const end = banner.indexOf('\n\n', start + 1);
  return banner.slice(start + 1, end < 0 ? undefined : end);
}

describe(instructions.name, () => {
  const sut = instructions(FACTS);

  it('gives the Inspector 2.x steps: its command, where it opens, the manual server entry and the URL', () => {
    const steps = paragraph(sut, 'MCP Inspector 2.x');

    expect(steps).toContain('Node.js 22.19');
    expect(steps).toContain('npx @modelcontextprotocol/inspector\n');
    expect(steps).toContain('http://127.0.0.1:6274');
    expect(steps).toContain('Add Servers > Add manually, transport streamable-http');
    expect(steps).toContain(`URL ${MCP_URL};`);
    expect(steps).toContain(`--cli ${MCP_URL} --method tools/list`);
  });

  it('gives the Inspector 1.x steps: its version, where it opens, the transport and the URL', () => {
    const steps = paragraph(sut, 'MCP Inspector 1.x');

    expect(steps).toContain('npx @modelcontextprotocol/inspector@1\n');
    expect(steps).toContain('http://localhost:6274');
    expect(steps).toContain(`Transport Type "Streamable HTTP", URL ${MCP_URL}`);
  });

  it('gives Claude Desktop a claude_desktop_config.json entry that runs mcp-remote on the URL', () => {
    const steps = paragraph(sut, 'Claude Desktop');
    const config = JSON.parse(steps.slice(steps.indexOf('{'))) as unknown;

    expect(config).toEqual({
      mcpServers: { scopedb: { command: 'npx', args: ['-y', 'mcp-remote', MCP_URL] } },
    });
  });

  it('names the clients that step up and those that do not, and the workaround for the latter', () => {
    const advice = paragraph(sut, 'Scopes and stepping up');

    expect(advice).toContain('the 401 names (db:query)');
    expect(advice).toMatch(/Step up by themselves[^]*mcp-remote 0\.15[^]*MCP SDK 2\.x/);
    expect(advice).toMatch(/Do not:\s+Inspector 2\.x[^]*Inspector 1\.x[^]*MCP SDK 1\.x/);
    expect(advice).toContain('AUTH_BASELINE_SCOPES="db:query db:modify" npm run dev');
  });
});
