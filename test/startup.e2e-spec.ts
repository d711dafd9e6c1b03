import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { freePort } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, postMcp } from './support/mcp-http.js';
import { startNode } from './support/node-process.js';

const MAIN = resolve('dist/main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the production entrypoint (`node dist/main.js`) in a scratch directory. */
function runMain(
  env: Record<string, string>,
  cwd: string,
  untilReady?: (url: string) => Promise<void>,
) {
  const main = startNode(MAIN, env, cwd);
  const { child } = main;
  return new Promise<Run>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      const { stdout, stderr } = main.output();
      fail(new Error(`dist/main.js did not finish: ${stdout}${stderr}`));
    }, 20_000);
    if (untilReady) {
      const poll = setInterval(() => {
        if (!main.output().stdout.includes('MCP endpoint')) return;
        clearInterval(poll);
        untilReady(env.PUBLIC_URL).then(
          () => child.kill('SIGTERM'),
          (error: unknown) => {
            child.kill('SIGKILL');
            fail(error instanceof Error ? error : new Error(String(error)));
          },
        );
      }, 50);
    }
    void main.exited.then(({ code }) => {
      clearTimeout(timer);
      done({ code, ...main.output() });
    });
  });
}

/** A valid issuer, so that the setting under test is the one refused. */
const ISSUER = { AUTH_ISSUER: 'https://casdoor.example.com' };

describe('node dist/main.js', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-main-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    [{}, 'AUTH_ISSUER', 'is required'],
    [{ AUTH_ISSUER: 'casdoor.example.com' }, 'AUTH_ISSUER', 'must be an http(s) URL'],
    [{ ...ISSUER, PORT: 'eighty' }, 'PORT', 'whole number'],
    [{ ...ISSUER, AUTH_ALGORITHMS: 'HS256' }, 'AUTH_ALGORITHMS', 'HS256'],
    [{ ...ISSUER, DATABASE_URL: 'mysql://x' }, 'DATABASE_URL', 'sqlite:'],
  ])(
    'stops with exit code 1 and one line naming the variable for %j',
    async (env, variable, problem) => {
      const sut = await runMain(env, dir);

      expect(sut.code).toBe(1);
      const lines = sut.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${variable}:`);
      expect(lines[0]).toContain(problem);
      expect(sut.stdout).toBe('');
    },
  );

  it('reads .env from the working directory, serves, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    writeFileSync(join(dir, '.env'), `AUTH_ISSUER=https://casdoor.example.com\nPORT=${port}\n`);
    let metadata: unknown;

    const sut = await runMain({ PUBLIC_URL: `http://localhost:${port}` }, dir, async (url) => {
      const response = await fetch(`${url}/.well-known/oauth-protected-resource/mcp`);
      metadata = await response.json();
    });

    expect(sut.code).toBe(0);
    expect(metadata).toEqual({
      resource: `http://localhost:${port}/mcp`,
      authorization_servers: ['https://casdoor.example.com'],
      scopes_supported: ['db:admin', 'db:modify', 'db:query'],
      bearer_methods_supported: ['header'],
      resource_name: 'ScopeDB MCP',
    });
  });

  describe('SIGTERM during a burst of tool calls', () => {
    const CLIENTS = 8;
    const MAX_CALLS_PER_CLIENT = 300;
    const CALLS_BEFORE_SIGTERM = 40;
    // Keeps a SQL worker busy for some milliseconds, so that calls are in flight at the signal.
    const SLOW_READ =
      'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT count(*) AS n FROM c';

    interface Outcome {
      requestId: string;
      /** The HTTP status, or the network error's code when no response came. */
      status: number | string;
      isError?: boolean;
      sentBeforeSigterm: boolean;
      answeredAfterSigterm: boolean;
    }

    let issuer: TestIssuer;
    beforeAll(async () => {
      issuer = await TestIssuer.start();
    });
    afterAll(() => issuer.close());

    it('answers the calls in flight, audits each answered call once, never 5xx, and exits 0', async () => {
      const port = await freePort();
      const publicUrl = `http://localhost:${port}`;
      const token = issuer.token({ audience: `${publicUrl}/mcp`, scope: 'db:query' });
      const outcomes: Outcome[] = [];
      let sigtermAt = Infinity;
      let answered = 0;
      let enoughAnswered: () => void = () => undefined;
      const enough = new Promise<void>((resolve) => (enoughAnswered = resolve));

      /** Calls one after another until the server is gone (or the bound): one keep-alive client. */
      async function client(index: number): Promise<void> {
        for (let call = 0; call < MAX_CALLS_PER_CLIENT; call++) {
          const requestId = `burst-${index}-${call}`;
          const sentBeforeSigterm = performance.now() < sigtermAt;
          try {
            const response = await postMcp(
              `${publicUrl}/mcp`,
              callTool('query', { sql: SLOW_READ }),
              { token, headers: { 'X-Request-Id': requestId } },
            );
            const result = response.message?.result as { isError?: boolean } | undefined;
            outcomes.push({
              requestId,
              status: response.status,
              isError: result?.isError ?? false,
              sentBeforeSigterm,
              answeredAfterSigterm: performance.now() >= sigtermAt,
            });
            if (++answered === CALLS_BEFORE_SIGTERM) enoughAnswered();
          } catch (error) {
            const cause = (error as { cause?: { code?: string } }).cause;
            outcomes.push({
              requestId,
              status: cause?.code ?? (error as Error).name,
              sentBeforeSigterm,
              answeredAfterSigterm: true,
            });
            return;
          }
        }
      }

      let burst: Promise<void[]> | undefined;
      const sut = await runMain(
        { AUTH_ISSUER: issuer.url, PORT: String(port), PUBLIC_URL: publicUrl },
        dir,
        async () => {
          burst = Promise.all(Array.from({ length: CLIENTS }, (_, index) => client(index)));
          await enough;
          sigtermAt = performance.now();
        },
      );
      await burst;

      expect({ code: sut.code, stderr: sut.stderr }).toEqual({ code: 0, stderr: '' });
      const ok = outcomes.filter((outcome) => outcome.status === 200);
      expect(ok.length).toBeGreaterThanOrEqual(CALLS_BEFORE_SIGTERM);
      // Calls sent before the signal and answered after it: the drain did wait for them.
      expect(
        ok.filter((o) => o.sentBeforeSigterm && o.answeredAfterSigterm).length,
      ).toBeGreaterThan(0);
      expect(
        outcomes.filter((outcome) => typeof outcome.status === 'number' && outcome.status !== 200),
      ).toEqual([]);
      // Each answered call ran to completion: the SQL workers were still there for it.
      expect(ok.filter((outcome) => outcome.isError)).toEqual([]);
      // Every client stopped on a refused or closed connection, not on the bound.
      expect(outcomes.length).toBeLessThan(CLIENTS * MAX_CALLS_PER_CLIENT);

      const db = new Database(join(dir, 'data', 'scopedb-internal.sqlite'), { readonly: true });
      try {
        const rowsOf = db.prepare<[string], { n: number }>(
          'SELECT count(*) AS n FROM audit_log WHERE requestId = ?',
        );
        const audited = new Map(ok.map((o) => [o.requestId, rowsOf.get(o.requestId)!.n]));
        expect([...audited].filter(([, rows]) => rows !== 1)).toEqual([]);
      } finally {
        db.close();
      }
    });
  });
});
