import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { challengeParams, postMcp, rpc, callTool } from './support/mcp-http.js';
import { createScopedbPostgres, type ScopedbPostgres } from './support/postgres.js';
import { REVENUE_BY_MONTH_ALL, SALES_FIXTURE } from './support/sales-fixture.js';
import { readAuditRows } from './support/audit-rows.js';
import { toolClient } from './support/tool-client.js';

// The worked example extension (src/examples/reports) over HTTP with real tokens: what a team's
// own module gets from being a Nest module with @McpTool methods, and nothing more to write.

const REPORT_TOOLS = ['revenue_by_month', 'top_customers'];

describe('the reports example extension', () => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(() => issuer.close());

  describe('with REPORTS_EXAMPLE=true, on SQLite', () => {
    let sut: TestApp;
    beforeAll(async () => {
      sut = await startTestApp(
        { AUTH_ISSUER: issuer.url, REPORTS_EXAMPLE: 'true' },
        {
          prepareDatabase: (path) => {
            const db = new Database(path);
            try {
              for (const statement of SALES_FIXTURE) db.exec(statement);
            } finally {
              db.close();
            }
          },
        },
      );
    });
    afterAll(() => sut.close());
    const tokenFor = (scope: string) => issuer.token({ audience: sut.mcpUrl, scope });

    it('lists reports:read among the scopes_supported of the protected resource metadata', async () => {
      const response = await fetch(`${sut.baseUrl}/.well-known/oauth-protected-resource/mcp`);
      const metadata = (await response.json()) as { scopes_supported: string[] };
      expect(metadata.scopes_supported).toEqual([
        'db:admin',
        'db:modify',
        'db:query',
        'reports:read',
      ]);
    });

    it('lists its tools with their required scope', async () => {
      const response = await postMcp(sut.mcpUrl, rpc('tools/list'), {
        token: tokenFor('reports:read'),
      });
      const tools = (response.message?.result?.tools ?? []) as {
        name: string;
        annotations: { readOnlyHint: boolean };
        _meta: Record<string, unknown>;
      }[];
      expect(
        tools
          .filter((tool) => REPORT_TOOLS.includes(tool.name))
          .map((tool) => [
            tool.name,
            tool._meta['scopedb.dev/required_scopes'],
            tool.annotations.readOnlyHint,
          ]),
      ).toEqual([
        ['revenue_by_month', ['reports:read'], true],
        ['top_customers', ['reports:read'], true],
      ]);
    });

    it('answers a token holding reports:read, and only that scope', async () => {
      const client = toolClient(sut.mcpUrl, tokenFor('reports:read'));
      expect(await client.ok('revenue_by_month', {})).toEqual({
        months: REVENUE_BY_MONTH_ALL,
        truncated: false,
      });
      expect(await client.ok('top_customers', { limit: 1 })).toEqual({
        customers: [{ id: 1, name: 'Ada', country: 'FR', orders: 2, revenue_cents: 7000 }],
      });
    });

    it('challenges a token without reports:read with a 403 naming it (step-up)', async () => {
      const response = await postMcp(sut.mcpUrl, callTool('top_customers', {}), {
        token: tokenFor('db:query db:modify db:admin'),
      });
      expect(response.status).toBe(403);
      expect(challengeParams(response.headers.get('www-authenticate'))).toMatchObject({
        error: 'insufficient_scope',
        scope: 'db:query db:modify db:admin reports:read',
      });
    });

    it('records each call: who, the tool, the statement it ran, its rows; and the refusals', async () => {
      const client = toolClient(sut.mcpUrl, tokenFor('reports:read'));
      await client.ok('top_customers', { limit: 2 });
      await postMcp(sut.mcpUrl, callTool('revenue_by_month', { from: '2026-01-01' }), {
        token: tokenFor('db:query'),
      });
      const rows = readAuditRows(sut.auditDatabasePath)
        .filter((row) => row.tool !== null && REPORT_TOOLS.includes(row.tool))
        .slice(-2);
      expect(rows).toMatchObject([
        {
          outcome: 'success',
          tool: 'top_customers',
          requiredScopes: 'reports:read',
          grantedScopes: 'reports:read',
          sqlText: expect.stringContaining('LIMIT ?') as string,
          rowCount: 2,
        },
        {
          outcome: 'refused_scope',
          tool: 'revenue_by_month',
          requiredScopes: 'reports:read',
          grantedScopes: 'db:query',
          sqlText: null,
          rowCount: null,
        },
      ]);
    });
  });

  describe('with REPORTS_EXAMPLE=true, on PostgreSQL', () => {
    let postgres: ScopedbPostgres;
    let sut: TestApp;
    beforeAll(async () => {
      postgres = await createScopedbPostgres('scopedb_reports');
      sut = await startTestApp({
        AUTH_ISSUER: issuer.url,
        REPORTS_EXAMPLE: 'true',
        DATABASE_URL: postgres.urls.tools,
        DATABASE_READER_URL: postgres.urls.reader,
        INTERNAL_DATABASE_URL: postgres.urls.internal,
      });
      const admin = toolClient(
        sut.mcpUrl,
        issuer.token({ audience: sut.mcpUrl, scope: 'db:admin db:modify' }),
      );
      await admin.ok('apply_migration', {
        name: 'sales',
        sql: SALES_FIXTURE.slice(0, 3).join(';\n'),
      });
      for (const statement of SALES_FIXTURE.slice(3)) await admin.ok('execute', { sql: statement });
    });
    afterAll(async () => {
      await sut?.close();
      await postgres.drop();
    });

    it('gives the same reports, bigint sums as exact numbers', async () => {
      const client = toolClient(
        sut.mcpUrl,
        issuer.token({ audience: sut.mcpUrl, scope: 'reports:read' }),
      );
      expect(await client.ok('revenue_by_month', {})).toEqual({
        months: REVENUE_BY_MONTH_ALL,
        truncated: false,
      });
      expect(await client.ok('top_customers', { from: '2026-02-01', to: '2026-03-01' })).toEqual({
        customers: [
          { id: 2, name: 'Ben', country: 'DE', orders: 1, revenue_cents: 6000 },
          { id: 1, name: 'Ada', country: 'FR', orders: 1, revenue_cents: 5000 },
        ],
      });
      expect(await postgres.running()).toEqual([]);
    });
  });

  describe('with REPORTS_EXAMPLE unset (the default)', () => {
    let sut: TestApp;
    beforeAll(async () => {
      sut = await startTestApp({ AUTH_ISSUER: issuer.url });
    });
    afterAll(() => sut.close());

    it('serves neither its tools nor its scope', async () => {
      const metadata = (await (
        await fetch(`${sut.baseUrl}/.well-known/oauth-protected-resource/mcp`)
      ).json()) as { scopes_supported: string[] };
      expect(metadata.scopes_supported).not.toContain('reports:read');
      const response = await postMcp(sut.mcpUrl, callTool('top_customers', {}), {
        token: issuer.token({ audience: sut.mcpUrl, scope: 'reports:read' }),
      });
      expect(response.message?.error?.message).toMatch(/top_customers not found/);
    });
  });
});
