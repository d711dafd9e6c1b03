import {
  Client,
  type ClientOptions,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import { startTestApp, type TestApp } from './support/app.js';
import { readAuditRows } from './support/audit-rows.js';
import { TestIssuer } from './support/issuer.js';
import {
  callTool,
  initialize,
  LEGACY_PROTOCOL,
  postMcp,
  preflight,
  rpc,
} from './support/mcp-http.js';
import { match } from './support/matchers.js';

const REQUIRED_SCOPES_META = 'scopedb.dev/required_scopes';
const ALLOWED_ORIGIN = 'http://app.example';
const FOREIGN_ORIGIN = 'http://evil.example';
const MAX_BODY_BYTES = 16_384;

const READ = { readOnly: true, destructive: false, idempotent: true } as const;
const EXPECTED_TOOLS = {
  list_tables: { scopes: ['db:query'], ...READ },
  describe_table: { scopes: ['db:query'], ...READ },
  query: { scopes: ['db:query'], ...READ },
  explain_query: { scopes: ['db:query'], ...READ },
  list_migrations: { scopes: ['db:query'], ...READ },
  insert_rows: { scopes: ['db:modify'], readOnly: false, destructive: false, idempotent: false },
  update_rows: { scopes: ['db:modify'], readOnly: false, destructive: true, idempotent: false },
  delete_rows: { scopes: ['db:modify'], readOnly: false, destructive: true, idempotent: false },
  execute: { scopes: ['db:modify'], readOnly: false, destructive: true, idempotent: false },
  apply_migration: { scopes: ['db:admin'], readOnly: false, destructive: true, idempotent: true },
  get_audit_log: { scopes: ['db:admin'], ...READ },
} as const;
const QUERY_TOOLS = Object.entries(EXPECTED_TOOLS)
  .filter(([, tool]) => tool.scopes.every((scope) => scope === 'db:query'))
  .map(([name]) => name)
  .sort();

interface ListedTool {
  name: string;
  inputSchema?: { type?: string };
  outputSchema?: { type?: string };
  annotations?: {
    readOnlyHint?: boolean;
    destructiveHint?: boolean;
    idempotentHint?: boolean;
    openWorldHint?: boolean;
  };
  _meta?: Record<string, unknown>;
}

const PINNED: ClientOptions = { versionNegotiation: { mode: { pin: '2026-07-28' } } };

async function connectClient(
  url: string,
  token: string,
  options?: ClientOptions,
  headers: Record<string, string> = {},
): Promise<Client> {
  const client = new Client({ name: 'scopedb-e2e', version: '1.0.0' }, options);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { ...headers, Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return client;
}

describe('MCP endpoint', () => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(async () => {
    await issuer.close();
  });

  describe('POST /mcp', () => {
    let sut: TestApp;
    let queryToken: string;

    beforeAll(async () => {
      sut = await startTestApp({
        AUTH_ISSUER: issuer.url,
        MCP_ALLOWED_ORIGINS: ALLOWED_ORIGIN,
        MCP_MAX_BODY_BYTES: String(MAX_BODY_BYTES),
      });
      queryToken = issuer.token({ audience: sut.mcpUrl, scope: 'db:query' });
    });
    afterAll(async () => {
      await sut.close();
    });

    describe('with the official client', () => {
      it.each([
        ['2025-era (initialize)', undefined, LEGACY_PROTOCOL],
        ['pinned to 2026-07-28', PINNED, '2026-07-28'],
      ])('%s connects, lists the tools and calls query', async (_era, options, protocol) => {
        const requestId = `official-client-${protocol}`;
        const client = await connectClient(sut.mcpUrl, queryToken, options, {
          'X-Request-Id': requestId,
        });
        try {
          expect(client.getNegotiatedProtocolVersion()).toBe(protocol);
          expect(client.getServerVersion()?.name).toBe('scopedb-mcp');

          const { tools } = await client.listTools();
          expect(tools.map((tool) => tool.name).sort()).toEqual(Object.keys(EXPECTED_TOOLS).sort());

          const result = await client.callTool({
            name: 'query',
            arguments: { sql: 'SELECT ? AS answer, ? AS era', params: [42, protocol] },
          });
          expect(result.isError).toBeFalsy();
          expect(result.structuredContent).toEqual({
            columns: [
              { name: 'answer', type: null },
              { name: 'era', type: null },
            ],
            rows: [[42, protocol]],
            row_count: 1,
            truncated: false,
            truncation_reason: null,
            elapsed_ms: match.any(Number),
          });
          // The audit record names the protocol the call was made with.
          expect(
            readAuditRows(sut.auditDatabasePath, requestId).map(({ tool, protocolVersion }) => ({
              tool,
              protocolVersion,
            })),
          ).toEqual([{ tool: 'query', protocolVersion: protocol }]);
        } finally {
          await client.close();
        }
      });
    });

    describe('tools/list', () => {
      it('lists every tool with its required scopes, schemas and annotations to a db:query token', async () => {
        const response = await postMcp(sut.mcpUrl, rpc('tools/list'), { token: queryToken });

        expect(response.status).toBe(200);
        const tools = response.message?.result?.tools as ListedTool[];
        expect(tools.map((tool) => tool.name).sort()).toEqual(Object.keys(EXPECTED_TOOLS).sort());
        for (const tool of tools) {
          const expected = EXPECTED_TOOLS[tool.name as keyof typeof EXPECTED_TOOLS];
          expect({ name: tool.name, scopes: tool._meta?.[REQUIRED_SCOPES_META] }).toEqual({
            name: tool.name,
            scopes: expected.scopes,
          });
          expect(tool.inputSchema?.type).toBe('object');
          expect(tool.outputSchema?.type).toBe('object');
          expect({ name: tool.name, ...tool.annotations }).toMatchObject({
            name: tool.name,
            readOnlyHint: expected.readOnly,
            destructiveHint: expected.destructive,
            idempotentHint: expected.idempotent,
            openWorldHint: false,
          });
        }
      });
    });

    describe('methods other than POST', () => {
      it.each(['GET', 'DELETE'])('%s answers 405 with Allow: POST', async (method) => {
        const response = await fetch(sut.mcpUrl, {
          method,
          headers: {
            Authorization: `Bearer ${queryToken}`,
            Accept: 'text/event-stream, application/json',
          },
        });

        expect(response.status).toBe(405);
        expect(response.headers.get('allow')).toBe('POST');
      });
    });

    describe('Origin (DNS-rebinding defence)', () => {
      it('refuses a foreign Origin with 403 even with a valid token, and audits it', async () => {
        const requestId = `origin-${Date.now()}`;
        const response = await postMcp(sut.mcpUrl, initialize(), {
          token: queryToken,
          headers: { Origin: FOREIGN_ORIGIN, 'X-Request-Id': requestId },
        });

        expect(response.status).toBe(403);
        expect(response.headers.get('access-control-allow-origin')).toBeNull();
        expect(readAuditRows(sut.auditDatabasePath, requestId)).toEqual([
          match.objectContaining({
            outcome: 'refused_origin',
            reason: match.stringContaining(FOREIGN_ORIGIN),
          }),
        ]);
      });

      it('lets a request without Origin through', async () => {
        const response = await postMcp(sut.mcpUrl, initialize(), { token: queryToken });

        expect(response.status).toBe(200);
        expect(response.message?.result?.protocolVersion).toBe(LEGACY_PROTOCOL);
      });

      it('lets the PUBLIC_URL origin (same origin) through', async () => {
        const response = await postMcp(sut.mcpUrl, initialize(), {
          token: queryToken,
          headers: { Origin: sut.baseUrl },
        });

        expect(response.status).toBe(200);
        expect(response.message?.result?.protocolVersion).toBe(LEGACY_PROTOCOL);
      });

      it('lets an origin of MCP_ALLOWED_ORIGINS through and echoes it in Access-Control-Allow-Origin', async () => {
        const response = await postMcp(sut.mcpUrl, initialize(), {
          token: queryToken,
          headers: { Origin: ALLOWED_ORIGIN },
        });

        expect(response.status).toBe(200);
        expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
        expect(response.headers.get('vary')).toContain('Origin');
      });

      it('answers a CORS preflight from an allowed origin with 204 and the CORS headers', async () => {
        const response = await preflight(sut.mcpUrl, ALLOWED_ORIGIN);

        expect(response.status).toBe(204);
        expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
        expect(response.headers.get('access-control-allow-methods')).toContain('POST');
        const allowedHeaders =
          response.headers.get('access-control-allow-headers')?.toLowerCase() ?? '';
        for (const header of ['authorization', 'content-type', 'mcp-protocol-version'])
          expect(allowedHeaders).toContain(header);
      });

      it('refuses a CORS preflight from a foreign origin', async () => {
        const response = await fetch(sut.mcpUrl, {
          method: 'OPTIONS',
          headers: { Origin: FOREIGN_ORIGIN, 'Access-Control-Request-Method': 'POST' },
        });

        expect(response.status).toBe(403);
        expect(response.headers.get('access-control-allow-origin')).toBeNull();
      });
    });

    describe('request bodies', () => {
      it('answers malformed JSON with a JSON-RPC parse error', async () => {
        const response = await postMcp(sut.mcpUrl, '{"jsonrpc": "2.0", "id": 1, "method": ', {
          token: queryToken,
        });

        expect(response.status).toBe(400);
        expect(response.headers.get('content-type')).toContain('application/json');
        expect(response.message).toEqual({
          jsonrpc: '2.0',
          id: null,
          error: match.objectContaining({ code: -32700 }),
        });
      });

      it('answers a body larger than MCP_MAX_BODY_BYTES with 413', async () => {
        const big = callTool('query', { sql: `SELECT '${'x'.repeat(MAX_BODY_BYTES)}'` });
        const response = await postMcp(sut.mcpUrl, big, { token: queryToken });

        expect(response.status).toBe(413);
        expect(response.message).toEqual({
          jsonrpc: '2.0',
          id: null,
          error: match.objectContaining({ code: -32600 }),
        });
      });

      it('accepts a body just under MCP_MAX_BODY_BYTES', async () => {
        const body = callTool('query', {
          sql: `SELECT length('${'x'.repeat(MAX_BODY_BYTES - 200)}') AS n`,
        });
        const response = await postMcp(sut.mcpUrl, body, { token: queryToken });

        expect(response.status).toBe(200);
        expect(response.message?.result?.structuredContent).toMatchObject({
          rows: [[MAX_BODY_BYTES - 200]],
        });
      });
    });
  });

  describe('with MCP_HIDE_UNAUTHORIZED_TOOLS=true', () => {
    let sut: TestApp;

    beforeAll(async () => {
      sut = await startTestApp({ AUTH_ISSUER: issuer.url, MCP_HIDE_UNAUTHORIZED_TOOLS: 'true' });
    });
    afterAll(async () => {
      await sut.close();
    });

    it('lists only the db:query tools to a db:query token', async () => {
      const token = issuer.token({ audience: sut.mcpUrl, scope: 'db:query' });

      const response = await postMcp(sut.mcpUrl, rpc('tools/list'), { token });

      expect(response.status).toBe(200);
      const tools = response.message?.result?.tools as ListedTool[];
      expect(QUERY_TOOLS).toEqual([
        'describe_table',
        'explain_query',
        'list_migrations',
        'list_tables',
        'query',
      ]);
      expect(tools.map((tool) => tool.name).sort()).toEqual(QUERY_TOOLS);
    });

    it('lists every tool to a token with every scope', async () => {
      const token = issuer.token({ audience: sut.mcpUrl, scope: 'db:query db:modify db:admin' });

      const response = await postMcp(sut.mcpUrl, rpc('tools/list'), { token });

      const tools = response.message?.result?.tools as ListedTool[];
      expect(tools.map((tool) => tool.name).sort()).toEqual(Object.keys(EXPECTED_TOOLS).sort());
    });
  });

  describe('with MCP_PATH=/custom/mcp', () => {
    let sut: TestApp;

    beforeAll(async () => {
      sut = await startTestApp({ AUTH_ISSUER: issuer.url, MCP_PATH: '/custom/mcp' });
    });
    afterAll(async () => {
      await sut.close();
    });

    it('serves MCP at the custom path', async () => {
      expect(sut.mcpUrl).toBe(`${sut.baseUrl}/custom/mcp`);
      const token = issuer.token({ audience: sut.mcpUrl, scope: 'db:query' });

      const response = await postMcp(sut.mcpUrl, callTool('query', { sql: 'SELECT 1 AS one' }), {
        token,
      });

      expect(response.status).toBe(200);
      expect(response.message?.result?.structuredContent).toMatchObject({ rows: [[1]] });
    });

    it('no longer serves /mcp', async () => {
      const token = issuer.token({ audience: sut.mcpUrl, scope: 'db:query' });

      const response = await postMcp(`${sut.baseUrl}/mcp`, initialize(), { token });

      expect(response.status).toBe(404);
    });

    it('serves the protected resource metadata at the path-suffixed well-known URL', async () => {
      const response = await fetch(
        `${sut.baseUrl}/.well-known/oauth-protected-resource/custom/mcp`,
      );

      expect(response.status).toBe(200);
      await expect(response.json()).resolves.toMatchObject({
        resource: sut.mcpUrl,
        authorization_servers: [issuer.url],
      });
    });

    it('points the 401 challenge at the path-suffixed metadata', async () => {
      const response = await postMcp(sut.mcpUrl, initialize());

      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain(
        `resource_metadata="${sut.baseUrl}/.well-known/oauth-protected-resource/custom/mcp"`,
      );
    });
  });
});
