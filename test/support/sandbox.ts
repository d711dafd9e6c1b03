import type { Client } from '@modelcontextprotocol/client';
import { DEMO_SIZES, seedDemoDatabase } from '../../sandbox/demo-database.js';
import { type SandboxIssuer, startSandboxIssuer } from '../../sandbox/issuer.js';
import { ToolRegistry } from '../../src/mcp/tool-registry.js';
import { freePort, startTestApp, type TestApp } from './app.js';

export interface Sandbox {
  issuer: SandboxIssuer;
  app: TestApp;
  close(): Promise<void>;
}

/**
 * What `npm run dev` runs, in-process: the real app on the demo data (the worked example on,
 * unless `env` says REPORTS_EXAMPLE=false), then the sandbox issuer offering the app's scopes.
 */
export async function startSandbox(env: Record<string, string> = {}): Promise<Sandbox> {
  const issuerPort = await freePort();
  const app = await startTestApp(
    { AUTH_ISSUER: `http://localhost:${issuerPort}`, REPORTS_EXAMPLE: 'true', ...env },
    { prepareDatabase: (path) => seedDemoDatabase(path) },
  );
  const issuer = await startSandboxIssuer({
    port: issuerPort,
    resourceUrl: app.mcpUrl,
    scopes: app.app.get(ToolRegistry).scopes(),
  }).catch(async (error: unknown) => {
    await app.close();
    throw error;
  });
  return {
    issuer,
    app,
    close: async () => {
      await app.close();
      await issuer.close();
    },
  };
}

/** A signed-in client's first steps on the demo data: the tools are listed, query answers. */
export async function expectListsAndQueries(client: Client): Promise<void> {
  const { tools } = await client.listTools();
  expect(tools.map((tool) => tool.name)).toEqual(
    expect.arrayContaining(['query', 'execute', 'apply_migration']),
  );
  const read = await client.callTool({
    name: 'query',
    arguments: { sql: 'SELECT count(*) AS n FROM customers' },
  });
  expect(read.structuredContent).toMatchObject({ rows: [[DEMO_SIZES.customers]] });
}
