import {
  Client,
  InsufficientScopeError,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';

/** The official client's view of a scope challenge, in both protocol eras. */
describe('step-up with the official MCP client', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp({ AUTH_ISSUER: issuer.url });
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
  });

  async function connect(scope: string, pinned: boolean): Promise<Client> {
    const client = new Client(
      { name: 'step-up-e2e', version: '1.0.0' },
      pinned ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
    );
    const token = issuer.token({ audience: sut.mcpUrl, scope });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(sut.mcpUrl), {
        requestInit: { headers: { Authorization: `Bearer ${token}` } },
      }),
    );
    return client;
  }

  it.each([
    ['2025-11-25 (initialize)', false],
    ['2026-07-28 (pinned)', true],
  ])(
    '%s: a missing scope surfaces as InsufficientScopeError with the union of scopes',
    async (_era, pinned) => {
      const client = await connect('db:query', pinned);
      try {
        const read = await client.callTool({
          name: 'query',
          arguments: { sql: 'SELECT 1 AS one' },
        });
        expect(read.structuredContent).toMatchObject({ rows: [[1]], row_count: 1 });

        const refused = await client
          .callTool({ name: 'execute', arguments: { sql: 'DELETE FROM audit_log' } })
          .then(
            () => undefined,
            (error: unknown) => error,
          );

        expect(refused).toBeInstanceOf(InsufficientScopeError);
        const challenge = refused as InsufficientScopeError;
        expect(challenge.requiredScope).toBe('db:query db:modify');
        expect(challenge.errorDescription).toContain('db:modify');
        expect(challenge.resourceMetadataUrl?.href).toBe(
          `${sut.baseUrl}/.well-known/oauth-protected-resource/mcp`,
        );
      } finally {
        await client.close();
      }
    },
  );

  it.each([false, true])(
    'pinned=%s: after stepping up to db:modify the same call succeeds',
    async (pinned) => {
      const admin = await connect('db:admin', pinned);
      const client = await connect('db:query db:modify', pinned);
      try {
        const migration = await admin.callTool({
          name: 'apply_migration',
          arguments: {
            name: 'notes',
            sql: 'CREATE TABLE IF NOT EXISTS notes (body TEXT NOT NULL)',
          },
        });
        expect(migration.isError).toBeFalsy();

        const result = await client.callTool({
          name: 'execute',
          arguments: { sql: 'INSERT INTO notes (body) VALUES (?)', params: ['stepped up'] },
        });
        expect(result.isError).toBeFalsy();
        expect(result.structuredContent).toMatchObject({ affected_rows: 1 });
      } finally {
        await client.close();
        await admin.close();
      }
    },
  );
});
