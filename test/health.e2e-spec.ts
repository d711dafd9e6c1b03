// Liveness and readiness probes over real HTTP: a real SQLite file, a real loopback issuer (its
// JWKS taken down, or black-holed), no token, and nothing written to the audit log.
import { createServer, type Server, type Socket } from 'node:net';
import { DataSource } from 'typeorm';
import { startTestApp, type TestApp } from './support/app.js';
import { countAuditRows } from './support/audit-rows.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, postMcp } from './support/mcp-http.js';
import { match } from './support/matchers.js';

const JWKS_TIMEOUT_MS = 400;
/** Scheduling slack on top of the JWKS timeout for a probe that must not wait longer. */
const SLACK_MS = 600;
const JWKS_UNAVAILABLE = "the issuer's signing keys could not be fetched";

interface Probe {
  status: number;
  body: Record<string, unknown>;
  cacheControl: string | null;
  elapsedMs: number;
}

async function probe(url: string, headers: Record<string, string> = {}): Promise<Probe> {
  const started = performance.now();
  const response = await fetch(url, { headers });
  const body = (await response.json()) as Record<string, unknown>;
  return {
    status: response.status,
    body,
    cacheControl: response.headers.get('cache-control'),
    elapsedMs: performance.now() - started,
  };
}

/** A JWKS endpoint that accepts connections and never answers. */
async function blackHole(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks`,
    close: () => {
      sockets.forEach((socket) => socket.destroy());
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('health probes', () => {
  let issuer: TestIssuer;
  let sut: TestApp | undefined;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(() => issuer.close());
  beforeEach(() => {
    issuer.jwksDown = false;
  });
  afterEach(async () => {
    await sut?.close();
    sut = undefined;
  });

  /** A fresh app: no signing key fetched yet, nothing cached by the probes. */
  async function start(env: Record<string, string> = {}): Promise<TestApp> {
    sut = await startTestApp({
      AUTH_ISSUER: issuer.url,
      AUTH_JWKS_TIMEOUT_MS: String(JWKS_TIMEOUT_MS),
      ...env,
    });
    return sut;
  }

  describe('GET /healthz', () => {
    it('answers 200 with terminus status ok, without a token, uncached, unaudited', async () => {
      const app = await start();
      issuer.jwksDown = true;

      const response = await probe(`${app.baseUrl}/healthz`);

      expect(response).toMatchObject({
        status: 200,
        body: { status: 'ok', info: {}, error: {}, details: {} },
        cacheControl: match.stringContaining('no-store'),
      });
      expect(countAuditRows(app.auditDatabasePath)).toBe(0);
    });

    it('needs no Origin check: a foreign browser Origin is answered too', async () => {
      const app = await start();

      const response = await probe(`${app.baseUrl}/healthz`, { Origin: 'https://evil.example' });

      expect(response.status).toBe(200);
      expect(countAuditRows(app.auditDatabasePath)).toBe(0);
    });
  });

  describe('GET /readyz', () => {
    it('answers 200 when the database answers and the issuer serves its keys', async () => {
      const app = await start();

      const response = await probe(`${app.baseUrl}/readyz`, { Origin: 'https://evil.example' });

      expect(response).toMatchObject({
        status: 200,
        body: {
          status: 'ok',
          error: {},
          info: {
            database: { status: 'up', responseTime: match.any(Number) },
            jwks: { status: 'up', keys: 1, source: 'jwks', responseTime: match.any(Number) },
          },
        },
        cacheControl: match.stringContaining('no-store'),
      });
      expect(countAuditRows(app.auditDatabasePath)).toBe(0);
    });

    it('answers 503 naming jwks when the JWKS is down and no key was ever fetched', async () => {
      const app = await start();
      issuer.jwksDown = true;
      const jwksRequests = issuer.jwksRequests;

      const response = await probe(`${app.baseUrl}/readyz`);

      expect(response).toMatchObject({
        status: 503,
        body: {
          status: 'error',
          info: { database: { status: 'up' } },
          error: { jwks: { status: 'down', message: JWKS_UNAVAILABLE } },
        },
      });
      expect(Object.keys(response.body.error as object)).toEqual(['jwks']);
      expect(issuer.jwksRequests).toBeGreaterThan(jwksRequests);
      expect(response.elapsedMs).toBeLessThan(JWKS_TIMEOUT_MS + SLACK_MS);
      expect(countAuditRows(app.auditDatabasePath)).toBe(0);
    });

    it('answers 503 within AUTH_JWKS_TIMEOUT_MS when the JWKS never answers', async () => {
      const jwks = await blackHole();
      try {
        const app = await start({ AUTH_JWKS_URI: jwks.url });

        const response = await probe(`${app.baseUrl}/readyz`);

        expect(response).toMatchObject({
          status: 503,
          body: {
            status: 'error',
            error: {
              jwks: { status: 'down', message: `timeout of ${JWKS_TIMEOUT_MS}ms exceeded` },
            },
          },
        });
        expect(response.elapsedMs).toBeGreaterThanOrEqual(JWKS_TIMEOUT_MS - 50);
        expect(response.elapsedMs).toBeLessThan(JWKS_TIMEOUT_MS + SLACK_MS);
      } finally {
        await jwks.close();
      }
    });

    it('shares one JWKS probe among a burst of probes, so the public endpoint cannot flood the issuer', async () => {
      const app = await start();
      issuer.jwksDown = true;
      const jwksRequests = issuer.jwksRequests;

      const responses = await Promise.all(
        Array.from({ length: 20 }, () => probe(`${app.baseUrl}/readyz`)),
      );

      expect(responses.map((response) => response.status)).toEqual(Array(20).fill(503));
      expect(issuer.jwksRequests - jwksRequests).toBe(1);
    });

    it('stays ready while the JWKS is down once a signing key is loaded', async () => {
      const app = await start();
      const token = issuer.token({ audience: app.mcpUrl, scope: 'db:query' });
      const call = await postMcp(app.mcpUrl, callTool('list_tables'), { token });
      expect(call.status).toBe(200);
      issuer.jwksDown = true;

      const response = await probe(`${app.baseUrl}/readyz`);

      expect(response).toMatchObject({
        status: 200,
        body: { status: 'ok', info: { jwks: { status: 'up', keys: 1, source: 'cache' } } },
      });
    });

    it("answers 503 naming database once TypeORM's connection is closed", async () => {
      const app = await start();
      await app.app.get(DataSource).destroy();

      const response = await probe(`${app.baseUrl}/readyz`);

      expect(response).toMatchObject({
        status: 503,
        body: {
          status: 'error',
          info: { jwks: { status: 'up' } },
          error: { database: { status: 'down', message: match.any(String) } },
        },
      });
      expect(Object.keys(response.body.error as object)).toEqual(['database']);
    });
  });
});
