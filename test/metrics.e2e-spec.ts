// Prometheus metrics over real HTTP: served on a listener of their own (loopback by default, never
// the MCP port), with counters that move by exactly what real calls, refusals, deadlines, audit
// outages and JWKS outages did.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MetricsServer } from '../src/metrics/metrics.server.js';
import { freePort, startTestApp, type TestApp } from './support/app.js';
import { lockSqlite, untilReadiness } from './support/audit-outage.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, initialize, postMcp, postMcpFrom } from './support/mcp-http.js';
import { movement, scrape, type Scrape } from './support/metrics.js';
import { startNode, startServer } from './support/node-process.js';
import { startPostgresApp, type PostgresApp } from './support/postgres-app.js';
import { type ToolClient, toolClient } from './support/tool-client.js';

const PER_PRINCIPAL = 20;
const PER_IP = 10;
/** Never ends on its own: only the deadline stops it. */
const RUNAWAY =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c';

let issuer: TestIssuer;
beforeAll(async () => {
  issuer = await TestIssuer.start();
});
afterAll(() => issuer.close());

describe('Prometheus metrics', () => {
  let sut: TestApp;
  let metricsPort: number;
  let metricsUrl: string;
  let client: ToolClient;
  const tokenOf = (sub: string, scope = 'db:query', kid?: string) =>
    issuer.token({ audience: sut.mcpUrl, scope, kid, claims: { sub } });
  /** Runs `act`; how much each series moved meanwhile. */
  const moved = async (act: () => Promise<void>) => {
    const before = await scrape(metricsUrl);
    await act();
    return movement(before, await scrape(metricsUrl));
  };

  beforeAll(async () => {
    metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
    sut = await startTestApp({
      AUTH_ISSUER: issuer.url,
      METRICS_PORT: String(metricsPort),
      RATE_LIMIT_PER_MINUTE: String(PER_PRINCIPAL),
      RATE_LIMIT_ANONYMOUS_PER_MINUTE: String(PER_IP),
      DATABASE_BUSY_TIMEOUT_MS: '200',
    });
    client = toolClient(sut.mcpUrl, tokenOf('metrics-user'));
  });
  afterAll(() => sut.close());

  describe('where they are served', () => {
    let metrics: Scrape;
    beforeAll(async () => {
      metrics = await scrape(metricsUrl);
    });

    it('serves the exposition format at /metrics, with the process metrics', async () => {
      const response = await fetch(`${metricsUrl}/metrics`);

      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      for (const name of [
        'scopedb_http_requests_total',
        'scopedb_tool_calls_total',
        'scopedb_audit_queue_depth',
        'scopedb_audit_writable',
        'scopedb_jwks_fetches_total',
        'process_cpu_user_seconds_total',
        'nodejs_eventloop_lag_seconds',
      ])
        expect([name, metrics.declared.has(name)]).toEqual([name, true]);
      expect(metrics.value('scopedb_audit_writable')).toBe(1);
      // Every registered tool's series are there from the start, at 0, so that rate() sees them.
      expect(
        metrics.has('scopedb_tool_calls_total', { tool: 'apply_migration', outcome: 'tool_error' }),
      ).toBe(true);
    });

    it('listens on 127.0.0.1 only by default', async () => {
      const refused = await fetch(`http://127.0.0.2:${metricsPort}/metrics`).then(
        () => 'answered',
        (error: TypeError) => (error.cause as NodeJS.ErrnoException).code,
      );

      expect(refused).toBe('ECONNREFUSED');
      expect(sut.app.get(MetricsServer).address).toMatchObject({
        address: '127.0.0.1',
        port: metricsPort,
      });
    });

    it('serves nothing else there', async () => {
      const other = await fetch(`${metricsUrl}/mcp`);
      const post = await fetch(`${metricsUrl}/metrics`, { method: 'POST' });

      expect(other.status).toBe(404);
      expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
    });

    it('is never served on the MCP port, with or without a token', async () => {
      const anonymous = await fetch(`${sut.baseUrl}/metrics`);
      const withToken = await fetch(`${sut.baseUrl}/metrics`, {
        headers: { Authorization: `Bearer ${tokenOf('metrics-user')}` },
      });

      expect(anonymous.status).toBe(404);
      expect(withToken.status).toBe(404);
      expect(await anonymous.text()).not.toContain('scopedb_');
      expect(await withToken.text()).not.toContain('scopedb_');
    });
  });

  it('counts tool calls by tool and outcome, refusals and requests, by exactly what was done', async () => {
    let unknownTool = 0;
    const delta = await moved(async () => {
      await client.ok('query', { sql: 'SELECT 1 AS one' });
      await client.refused('query', { sql: 'SELECT * FROM no_such_table' });
      const refusedScope = await postMcp(sut.mcpUrl, callTool('execute', { sql: 'SELECT 1' }), {
        token: tokenOf('metrics-user'),
      });
      const noToken = await postMcp(sut.mcpUrl, initialize());
      const malformed = await postMcp(sut.mcpUrl, '{"jsonrpc":', {
        token: tokenOf('metrics-user'),
      });
      unknownTool = (
        await postMcp(sut.mcpUrl, callTool('no_such_tool'), { token: tokenOf('metrics-user') })
      ).status;
      expect([refusedScope.status, noToken.status, malformed.status]).toEqual([403, 401, 400]);
    });
    const after = await scrape(metricsUrl);

    expect({
      querySuccess: delta('scopedb_tool_calls_total', { tool: 'query', outcome: 'success' }),
      queryError: delta('scopedb_tool_calls_total', { tool: 'query', outcome: 'tool_error' }),
      executeRefused: delta('scopedb_tool_calls_total', {
        tool: 'execute',
        outcome: 'refused_scope',
      }),
      queryTimed: delta('scopedb_tool_call_duration_seconds_count', { tool: 'query' }),
      noToken: delta('scopedb_refusals_total', { reason: 'no_token' }),
      scope: delta('scopedb_refusals_total', { reason: 'scope' }),
      invalidRequest: delta('scopedb_refusals_total', { reason: 'invalid_request' }),
      mcp200: delta('scopedb_http_requests_total', { route: 'mcp', method: 'POST', code: '200' }),
      mcp400: delta('scopedb_http_requests_total', { route: 'mcp', method: 'POST', code: '400' }),
      mcp401: delta('scopedb_http_requests_total', { route: 'mcp', method: 'POST', code: '401' }),
      mcp403: delta('scopedb_http_requests_total', { route: 'mcp', method: 'POST', code: '403' }),
      mcpTimed: delta('scopedb_http_request_duration_seconds_count', { route: 'mcp' }),
    }).toEqual({
      querySuccess: 1,
      queryError: 1,
      executeRefused: 1,
      queryTimed: 2,
      noToken: 1,
      scope: 1,
      invalidRequest: 1,
      // The two query calls and the unknown tool's JSON-RPC error.
      mcp200: 3,
      mcp400: 1,
      mcp401: 1,
      mcp403: 1,
      mcpTimed: 6,
    });
    expect(unknownTool).toBe(200);
    expect(after.text).not.toContain('no_such_tool');
  });

  it('counts requests to the metadata and the probes under their own routes', async () => {
    const delta = await moved(async () => {
      await fetch(`${sut.baseUrl}/.well-known/oauth-protected-resource/mcp`);
      await fetch(`${sut.baseUrl}/healthz`);
      await fetch(`${sut.baseUrl}/no/such/path`);
    });

    expect([
      delta('scopedb_http_requests_total', { route: 'well_known', method: 'GET', code: '200' }),
      delta('scopedb_http_requests_total', { route: 'health', method: 'GET', code: '200' }),
      delta('scopedb_http_requests_total', { route: 'other', method: 'GET', code: '404' }),
    ]).toEqual([1, 1, 1]);
  });

  it('counts a query killed at its deadline as a worker restart', async () => {
    const delta = await moved(async () => {
      expect(await client.refused('query', { sql: RUNAWAY, timeout_ms: 200 })).toContain('TIMEOUT');
    });

    expect([
      delta('scopedb_sql_worker_restarts_total', { pool: 'read', reason: 'deadline' }),
      delta('scopedb_tool_calls_total', { tool: 'query', outcome: 'tool_error' }),
    ]).toEqual([1, 1]);
  });

  it('counts rate-limit refusals by the budget they spent', async () => {
    const burst = tokenOf('metrics-burst');
    const statuses: number[] = [];
    const delta = await moved(async () => {
      for (let i = 0; i <= PER_PRINCIPAL; i++)
        statuses.push((await postMcp(sut.mcpUrl, initialize(), { token: burst })).status);
      for (let i = 0; i <= PER_IP; i++)
        statuses.push((await postMcpFrom(sut.mcpUrl, '127.0.0.3')).status);
    });

    expect(statuses).toEqual([
      ...Array<number>(PER_PRINCIPAL).fill(200),
      429,
      ...Array<number>(PER_IP).fill(401),
      429,
    ]);
    expect({
      principal: delta('scopedb_rate_limit_refusals_total', { limit: 'principal' }),
      ip: delta('scopedb_rate_limit_refusals_total', { limit: 'ip' }),
      audited: delta('scopedb_refusals_total', { reason: 'rate_limit' }),
      noToken: delta('scopedb_refusals_total', { reason: 'no_token' }),
      answered429: delta('scopedb_http_requests_total', {
        route: 'mcp',
        method: 'POST',
        code: '429',
      }),
    }).toEqual({ principal: 1, ip: 1, audited: 2, noToken: PER_IP, answered429: 2 });
  });

  it('counts audit records that could not be written, and shows the outage while it lasts', async () => {
    let during: Scrape | undefined;
    const delta = await moved(async () => {
      const lock = lockSqlite(sut.auditDatabasePath);
      try {
        const refused = await postMcp(sut.mcpUrl, callTool('query', { sql: 'SELECT 1' }), {
          token: tokenOf('metrics-user'),
        });
        expect(refused.status).toBe(503);
        during = await scrape(metricsUrl);
      } finally {
        lock.release();
      }
      await untilReadiness(sut.baseUrl, 200);
    });
    const after = await scrape(metricsUrl);

    expect({
      failures: delta('scopedb_audit_write_failures_total'),
      succeeded: delta('scopedb_tool_calls_total', { tool: 'query', outcome: 'success' }),
      answered503: delta('scopedb_http_requests_total', {
        route: 'mcp',
        method: 'POST',
        code: '503',
      }),
      writableDuring: during?.value('scopedb_audit_writable'),
      writableAfter: after.value('scopedb_audit_writable'),
      queued: after.value('scopedb_audit_queue_depth'),
    }).toEqual({
      failures: 1,
      succeeded: 0,
      answered503: 1,
      writableDuring: 0,
      writableAfter: 1,
      queued: 0,
    });
  });

  it('counts JWKS fetches and their failures while the issuer is down', async () => {
    issuer.addKey('metrics-rotated');
    const rotated = tokenOf('metrics-user', 'db:query', 'metrics-rotated');
    const statuses: number[] = [];
    const down = await moved(async () => {
      issuer.jwksDown = true;
      try {
        statuses.push((await postMcp(sut.mcpUrl, initialize(), { token: rotated })).status);
      } finally {
        issuer.jwksDown = false;
      }
    });
    const back = await moved(async () => {
      statuses.push((await postMcp(sut.mcpUrl, initialize(), { token: rotated })).status);
    });

    expect(statuses).toEqual([401, 200]);
    expect([
      down('scopedb_jwks_fetches_total'),
      down('scopedb_jwks_fetch_failures_total'),
      down('scopedb_refusals_total', { reason: 'invalid_token' }),
      back('scopedb_jwks_fetches_total'),
      back('scopedb_jwks_fetch_failures_total'),
    ]).toEqual([1, 1, 1, 1, 0]);
  });
});

describe('the metrics listener of node dist/main.js', () => {
  // The working directory of every start below, one at a time: they share its data/.
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-metrics-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Starts node dist/main.js with these settings; how it ended, and what it wrote on stderr. */
  async function failedStart(env: Record<string, string>) {
    const main = startNode(
      resolve('dist/main.js'),
      { AUTH_ISSUER: issuer.url, PORT: String(await freePort()), LOG_LEVEL: 'silent', ...env },
      dir,
    );
    const { code } = await main.exited;
    return { code, stderr: main.output().stderr };
  }

  it('serves metrics while it runs, and closes the listener on SIGTERM', async () => {
    const metricsPort = await freePort();
    const server = await startServer(dir, issuer.url, { METRICS_PORT: String(metricsPort) });
    const metrics = await scrape(`http://127.0.0.1:${metricsPort}`);

    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    const afterExit = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(
      () => 'answered',
      (error: TypeError) => (error.cause as NodeJS.ErrnoException).code,
    );

    expect(metrics.declared.has('scopedb_http_requests_total')).toBe(true);
    expect(code).toBe(0);
    expect(afterExit).toBe('ECONNREFUSED');
  });

  it.each([
    ['abc', 'Configuration error: METRICS_PORT: must be a whole number, got "abc"\n'],
    ['70000', 'Configuration error: METRICS_PORT: must be between 1 and 65535, got 70000\n'],
  ])('refuses METRICS_PORT=%s at start-up', async (port, message) => {
    expect(await failedStart({ METRICS_PORT: port })).toEqual({ code: 1, stderr: message });
  });

  it('refuses to start when the metrics port cannot be bound', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as { port: number };
    try {
      expect(await failedStart({ METRICS_PORT: String(port) })).toEqual({
        code: 1,
        stderr: `Start-up failed: the metrics listener could not listen on 127.0.0.1:${port} (METRICS_HOST, METRICS_PORT): listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`,
      });
    } finally {
      taken.close();
    }
  });
});

describe('PostgreSQL deadlines in the metrics', () => {
  let app: PostgresApp;
  let metricsUrl: string;

  beforeAll(async () => {
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
    app = await startPostgresApp('scopedb_metrics', 'CREATE TABLE t (x int)', {
      METRICS_PORT: String(metricsPort),
    });
  });
  afterAll(() => app.close());

  it("counts calls stopped by the database's timeout, by ScopeDB's cancel, and backends it ended", async () => {
    const before = await scrape(metricsUrl);
    const sleep = await app.client.call('query', { sql: 'SELECT pg_sleep(600)', timeout_ms: 300 });
    const catcher = await app.client.call('query', {
      sql: 'DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(1); EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$',
      timeout_ms: 300,
    });
    const delta = movement(before, await scrape(metricsUrl));

    expect([sleep.isError, catcher.isError]).toEqual([true, true]);
    expect({
      database: delta('scopedb_postgres_deadline_stops_total', { by: 'database' }),
      backstop: delta('scopedb_postgres_deadline_stops_total', { by: 'backstop' }),
      terminated: delta('scopedb_postgres_backend_terminations_total', { reason: 'deadline' }),
    }).toEqual({ database: 1, backstop: 1, terminated: 1 });
  });
});
