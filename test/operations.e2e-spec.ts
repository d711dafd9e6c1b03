// Operations over real HTTP: rate limits (per principal, per IP without a valid token, never on
// the probes or the metadata) and the JSON request log of the production entrypoint.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { freePort, startTestApp, type TestApp } from './support/app.js';
import { CASDOOR_CLAIMS, TestIssuer } from './support/issuer.js';
import { callTool, initialize, postMcp, postMcpFrom } from './support/mcp-http.js';
import { startNode, untilHealthy } from './support/node-process.js';
import { expectRateLimited } from './support/rate-limit.js';

const PER_PRINCIPAL = 5;
const PER_IP = 3;

describe('rate limits', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  const tokenOf = (sub: string) =>
    issuer.token({ audience: sut.mcpUrl, scope: 'db:query', claims: { sub } });

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp({
      AUTH_ISSUER: issuer.url,
      RATE_LIMIT_PER_MINUTE: String(PER_PRINCIPAL),
      RATE_LIMIT_ANONYMOUS_PER_MINUTE: String(PER_IP),
    });
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
  });

  it('answers 429 with Retry-After and a JSON body past the limit, per principal, and audits it', async () => {
    const alice = tokenOf('alice-0000');
    const statuses: number[] = [];
    for (let i = 0; i < PER_PRINCIPAL; i++)
      statuses.push((await postMcp(sut.mcpUrl, initialize(), { token: alice })).status);

    const refused = await postMcp(sut.mcpUrl, initialize(), {
      token: alice,
      headers: { 'X-Request-Id': 'ops-limited-1' },
    });
    const bob = await postMcp(sut.mcpUrl, initialize(), { token: tokenOf('bob-0000') });

    expect(statuses).toEqual(Array<number>(PER_PRINCIPAL).fill(200));
    const retryAfter = expectRateLimited(refused);
    expect(JSON.parse(refused.body)).toEqual({
      error: 'rate_limited',
      message: `Too many requests for this principal; retry after ${retryAfter} s.`,
      retry_after: retryAfter,
    });
    expect(bob.status).toBe(200);

    const db = new Database(sut.auditDatabasePath, { readonly: true });
    try {
      const row = db
        .prepare('SELECT subject, outcome FROM audit_log WHERE requestId = ?')
        .get('ops-limited-1');
      expect(row).toEqual({ subject: 'alice-0000', outcome: 'refused_rate_limit' });
    } finally {
      db.close();
    }
  });

  it('limits requests without a valid token per IP address, refusals included', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < PER_IP; i++)
      statuses.push((await postMcpFrom(sut.mcpUrl, '127.0.0.1')).status);

    const noToken = await postMcpFrom(sut.mcpUrl, '127.0.0.1');
    const badToken = await postMcp(sut.mcpUrl, initialize(), { token: 'not.a.token' });
    const otherAddress = await postMcpFrom(sut.mcpUrl, '127.0.0.2');
    const authenticated = await postMcp(sut.mcpUrl, initialize(), {
      token: tokenOf('carol-0000'),
    });

    expect(statuses).toEqual(Array<number>(PER_IP).fill(401));
    expect(noToken.status).toBe(429);
    expect(JSON.parse(noToken.body)).toMatchObject({ error: 'rate_limited' });
    expect(badToken.status).toBe(429);
    expect(Number(badToken.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(otherAddress.status).toBe(401);
    // Signed-in callers are counted per principal, not against their address.
    expect(authenticated.status).toBe(200);
  });

  it('never limits the health probes or the protected resource metadata', async () => {
    const urls = ['/healthz', '/readyz', '/.well-known/oauth-protected-resource/mcp'];
    const statuses: number[] = [];
    for (let i = 0; i < 4 * PER_IP; i++)
      for (const path of urls) statuses.push((await fetch(`${sut.baseUrl}${path}`)).status);

    expect(statuses.filter((status) => status !== 200)).toEqual([]);
  });
});

describe('request log of node dist/main.js', () => {
  let issuer: TestIssuer;
  let dir: string;
  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(() => issuer.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-logs-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one JSON line per request with id, status, duration and principal; never the token', async () => {
    const port = await freePort();
    const publicUrl = `http://localhost:${port}`;
    const token = issuer.token({ audience: `${publicUrl}/mcp`, scope: 'db:query' });
    const main = startNode(
      resolve('dist/main.js'),
      { AUTH_ISSUER: issuer.url, PORT: String(port), PUBLIC_URL: publicUrl, LOG_LEVEL: 'info' },
      dir,
    );
    try {
      await untilHealthy(main, publicUrl);

      const served = await postMcp(`${publicUrl}/mcp`, initialize(), {
        token,
        headers: { 'X-Request-Id': 'ops-log-1', Cookie: `session=${token}` },
      });
      const inQuery = await postMcp(`${publicUrl}/mcp?access_token=${token}`, initialize(), {
        headers: { 'X-Request-Id': 'ops-log-2' },
      });
      const invalid = await postMcp(`${publicUrl}/mcp`, initialize(), {
        token: `${token}x`,
        headers: { 'X-Request-Id': 'ops-log-3' },
      });
      expect([served.status, inQuery.status, invalid.status]).toEqual([200, 401, 401]);
    } finally {
      main.child.kill('SIGTERM');
    }
    expect((await main.exited).code).toBe(0);

    const { stdout, stderr } = main.output();
    const output = `${stdout}${stderr}`;
    const lines = output.trim().split('\n');
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const requestLine = records.find(
      (record) => record.requestId === 'ops-log-1' && record.res !== undefined,
    );
    expect(requestLine).toMatchObject({
      level: 30,
      req: { id: 'ops-log-1', method: 'POST', url: '/mcp' },
      res: { statusCode: 200 },
      principal: CASDOOR_CLAIMS.sub,
      responseTime: expect.any(Number) as unknown,
    });
    expect(records.some((record) => String(record.msg).startsWith('MCP endpoint'))).toBe(true);
    expect(output).toContain('/mcp?access_token=[Redacted]');
    expect(output).not.toContain(token.split('.')[2]);
    expect(output).not.toContain(token);
    // "Bearer " only in the refusal's advice ('as "Bearer <token>"'), never with a credential.
    expect(output).not.toMatch(/Bearer (?!<token>)/);
  });

  it('at LOG_LEVEL=warn, stays quiet about the first 401 of an OAuth flow and GET/DELETE /mcp; warns of bad tokens and missing scopes', async () => {
    const port = await freePort();
    const publicUrl = `http://localhost:${port}`;
    const mcpUrl = `${publicUrl}/mcp`;
    const main = startNode(
      resolve('dist/main.js'),
      { AUTH_ISSUER: issuer.url, PORT: String(port), PUBLIC_URL: publicUrl, LOG_LEVEL: 'warn' },
      dir,
    );
    const statuses: number[] = [];
    try {
      await untilHealthy(main, publicUrl);
      const token = issuer.token({ audience: mcpUrl, scope: 'db:query' });
      const sent = (id: string, init: RequestInit = {}) =>
        fetch(mcpUrl, { ...init, headers: { ...init.headers, 'X-Request-Id': id } });

      statuses.push(
        (await postMcp(mcpUrl, initialize(), { headers: { 'X-Request-Id': 'quiet-no-token' } }))
          .status,
        (await sent('quiet-get')).status,
        (await sent('quiet-delete', { method: 'DELETE' })).status,
        (
          await postMcp(`${mcpUrl}?access_token=${token}`, initialize(), {
            headers: { 'X-Request-Id': 'warn-query-token' },
          })
        ).status,
        (
          await postMcp(mcpUrl, initialize(), {
            token: `${token}x`,
            headers: { 'X-Request-Id': 'warn-invalid' },
          })
        ).status,
        (
          await postMcp(mcpUrl, callTool('apply_migration', { name: 'x', sql: 'SELECT 1' }), {
            token,
            headers: { 'X-Request-Id': 'warn-scope' },
          })
        ).status,
      );
    } finally {
      main.child.kill('SIGTERM');
    }
    expect((await main.exited).code).toBe(0);
    expect(statuses).toEqual([401, 405, 405, 401, 401, 403]);

    const { stdout } = main.output();
    const records = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { level: number; requestId?: string; context?: string });
    const linesOf = (id: string) =>
      records
        .filter((record) => record.requestId === id)
        .map((record) => ({ level: record.level, context: record.context ?? 'request' }));
    for (const id of ['quiet-no-token', 'quiet-get', 'quiet-delete'])
      expect(linesOf(id)).toEqual([]);
    const warned = [
      { level: 40, context: 'Refusal' },
      { level: 40, context: 'request' },
    ];
    expect(linesOf('warn-query-token')).toEqual(warned);
    expect(linesOf('warn-invalid')).toEqual(warned);
    expect(linesOf('warn-scope')).toEqual(warned);
  });
});
