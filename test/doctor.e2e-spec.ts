// `npm run doctor` (node dist/doctor/main.js) against a Casdoor-shaped issuer on loopback and the
// real server, listening: one case per misconfiguration, each answered with exit code 1, a FAIL
// line and its fix; a sound deployment and a sound token pass with exit code 0. The token is never
// printed.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { freePort, startTestApp, type TestApp } from './support/app.js';
import {
  checksOf,
  failuresOf,
  type ReportedCheck,
  runDoctor,
  runDoctorPiped,
  statusesOf,
} from './support/doctor.js';
import { TestIssuer } from './support/issuer.js';
import type { CommandRun } from './support/run-command.js';

const EVERY_SCOPE = 'db:query db:modify db:admin';
// Each case (60 s) runs the doctor (a Node process that loads the app's modules), some a server
// or an issuer (an RSA 4096 key) too: generous on a loaded machine.
const hourAgo = () => Math.floor(Date.now() / 1000) - 3600;

/** The settings of a server on `port` (HOST 127.0.0.1, PUBLIC_URL http://localhost:<port>). */
function settingsOf(issuer: TestIssuer, port: number, env: Record<string, string> = {}) {
  return {
    AUTH_ISSUER: issuer.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://localhost:${port}`,
    ...env,
  };
}

/** Runs the real server with `settings` around `run` (the doctor reads the same settings). */
async function withServer<T>(settings: Record<string, string>, run: () => Promise<T>): Promise<T> {
  const app = await startTestApp(settings);
  try {
    return await run();
  } finally {
    await app.close();
  }
}

/** Neither output holds the token, whatever happened. */
function expectTokenHidden(run: CommandRun, token: string): void {
  expect(run.stdout).not.toContain(token);
  expect(run.stderr).not.toContain(token);
  // Nor any of its parts: the signature alone would be a secret's worth.
  for (const part of token.split('.')) expect(run.stdout).not.toContain(part);
}

describe('npm run doctor', () => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await TestIssuer.start();
  }, 60_000);
  afterAll(() => issuer.close());

  describe('on a sound deployment', () => {
    let app: TestApp;
    let settings: Record<string, string>;
    let resource: string;
    beforeAll(async () => {
      const port = await freePort();
      settings = settingsOf(issuer, port);
      app = await startTestApp(settings);
      resource = app.mcpUrl;
    }, 60_000);
    afterAll(() => app.close());

    const token = (scope = EVERY_SCOPE, claims: Record<string, unknown> = {}) =>
      issuer.token({ audience: resource, scope, claims });

    /** The running server refuses the token as the doctor says it would. */
    const serverRefusesToo = (description: string): ReportedCheck => ({
      status: 'ok',
      check: 'server verdict',
      detail: `the server at ${resource} refuses it ("${description}"), as these settings say`,
    });

    /** The checks of a token the doctor fails (exit code 1), never printing it. */
    async function failedChecks(jwt: string): Promise<ReportedCheck[]> {
      const run = await runDoctor(['--token', jwt], settings);
      expect(run.code).toBe(1);
      expectTokenHidden(run, jwt);
      return checksOf(run.stdout);
    }

    it('passes every check without a token and exits 0', async () => {
      const run = await runDoctor([], settings);

      expect(run.code).toBe(0);
      expect(statusesOf(run.stdout)).toEqual([
        'ok settings',
        'ok discovery',
        'ok issuer',
        'ok JWKS',
        'ok algorithms',
        'ok challenge',
        'ok metadata',
      ]);
      expect(checksOf(run.stdout)).toContainEqual({
        status: 'ok',
        check: 'JWKS',
        detail: `${issuer.url}/.well-known/jwks (discovery's jwks_uri): cert-built-in (RS256)`,
      });
      expect(checksOf(run.stdout)).toContainEqual({
        status: 'ok',
        check: 'challenge',
        detail: `POST ${resource} without a token: 401 with resource_metadata ${app.baseUrl}/.well-known/oauth-protected-resource/mcp`,
      });
      expect(run.stdout).toMatch(/\nAll checks passed\.\n$/);
    }, 60_000);

    it('passes a sound token given with --token, lists the tools it may call, never prints it', async () => {
      const jwt = token();
      const run = await runDoctor(['--token', jwt], settings);

      expect(run.code).toBe(0);
      const checks = checksOf(run.stdout);
      expect(checks.filter((check) => check.status !== 'ok')).toEqual([]);
      const summary = checks.find((check) => check.check === 'token')!.detail;
      expect(summary).toContain('alg "RS256", kid "cert-built-in"');
      expect(summary).toContain(`iss "${issuer.url}"; aud ["${resource}"]`);
      expect(summary).toContain(`scope "${EVERY_SCOPE}"`);
      expect(checks).toContainEqual({
        status: 'ok',
        check: 'tools (db:query)',
        detail: 'list_tables, describe_table, query, explain_query, list_migrations',
      });
      expect(checks).toContainEqual({
        status: 'ok',
        check: 'tools (db:admin)',
        detail: 'get_audit_log, apply_migration',
      });
      expect(statusesOf(run.stdout).slice(-2)).toEqual(['ok verdict', 'ok server verdict']);
      expectTokenHidden(run, jwt);
    }, 60_000);

    it('reads the token piped on stdin, and with --token -', async () => {
      const jwt = token();
      for (const run of [
        await runDoctorPiped(jwt, settings),
        await runDoctor(['--token', '-'], settings, `${jwt}\n`),
      ]) {
        expect(run.code).toBe(0);
        expect(statusesOf(run.stdout)).toContain('ok verdict');
        expectTokenHidden(run, jwt);
      }
    }, 60_000);

    it('runs as npm run doctor, the report on stdout', async () => {
      const jwt = token();
      const run = await runDoctorPiped(jwt, settings, 'npm');

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('\n> exec sh scripts/doctor.sh\n');
      expect(checksOf(run.stdout).filter(({ status }) => status !== 'ok')).toEqual([]);
      expect(statusesOf(run.stdout).slice(-2)).toEqual(['ok verdict', 'ok server verdict']);
      expectTokenHidden(run, jwt);
    }, 60_000);

    it("refuses a token whose aud is the client's id: the client sent no resource=", async () => {
      const jwt = issuer.token({ audience: 'a1b2c3d4e5f6a7b8c9d0', scope: EVERY_SCOPE });
      const checks = await failedChecks(jwt);

      expect(checks).toContainEqual({
        status: 'FAIL',
        check: 'token audience',
        detail: `the token's audience (aud) does not include this resource: aud is ["a1b2c3d4e5f6a7b8c9d0"], RESOURCE_URL is ${resource}`,
        fix: expect.stringContaining(
          `the client did not send resource=${resource} (RFC 8707) when it got the token`,
        ) as string,
      });
      expect(checks).toContainEqual(
        serverRefusesToo("the token's audience (aud) does not include this resource"),
      );
    }, 60_000);

    it('refuses an expired token, naming the clock tolerance', async () => {
      const exp = hourAgo();
      const jwt = token(EVERY_SCOPE, { iat: exp - 600, nbf: exp - 600, exp });
      const checks = await failedChecks(jwt);

      expect(checks).toContainEqual({
        status: 'FAIL',
        check: 'token lifetime',
        detail: `the token expired at ${new Date(exp * 1000).toISOString()}`,
        fix: expect.stringContaining('raise AUTH_CLOCK_TOLERANCE_S (now 30)') as string,
      });
      expect(failuresOf(checks)).toEqual(['token lifetime', 'verdict']);
    }, 60_000);

    it('refuses a token of another issuer', async () => {
      const jwt = token(EVERY_SCOPE, { iss: 'https://casdoor.example.com' });

      expect(await failedChecks(jwt)).toContainEqual({
        status: 'FAIL',
        check: 'token issuer',
        detail: `the token was issued by another issuer than AUTH_ISSUER: iss is "https://casdoor.example.com", AUTH_ISSUER is "${issuer.url}"`,
        fix: expect.stringContaining(
          'if https://casdoor.example.com is your Casdoor, set AUTH_ISSUER=https://casdoor.example.com',
        ) as string,
      });
    }, 60_000);

    it('refuses a refresh token, whose signature, aud and iss are sound', async () => {
      const jwt = token(EVERY_SCOPE, { tokenType: 'refresh-token' });
      const checks = await failedChecks(jwt);

      expect(checks).toContainEqual({
        status: 'FAIL',
        check: 'token type',
        detail: 'a refresh token cannot be used as an access token',
        fix: "send the access_token of Casdoor's token response, not its refresh_token",
      });
      expect(checks).toContainEqual(
        serverRefusesToo('a refresh token cannot be used as an access token'),
      );
    }, 60_000);

    it('lists the tools a valid token lacks the scopes for', async () => {
      const jwt = token('db:query');
      const checks = await failedChecks(jwt);

      expect(checks.filter(({ status }) => status === 'FAIL')).toEqual([
        {
          status: 'FAIL',
          check: 'tools (db:admin)',
          detail: 'the token lacks db:admin: it cannot call get_audit_log, apply_migration',
          fix: expect.stringContaining('the user must grant db:admin') as string,
        },
        {
          status: 'FAIL',
          check: 'tools (db:modify)',
          detail:
            'the token lacks db:modify: it cannot call insert_rows, update_rows, delete_rows, execute',
          fix: expect.stringContaining('the user must grant db:modify') as string,
        },
      ]);
      expect(checks.map(({ status, check }) => `${status} ${check}`)).toEqual(
        expect.arrayContaining(['ok tools (db:query)', 'ok verdict', 'ok server verdict']),
      );
    }, 60_000);

    it('gives every reason a token is refused, not only the first', async () => {
      const exp = hourAgo();
      const jwt = issuer.token({
        audience: 'a1b2c3d4e5f6a7b8c9d0',
        scope: EVERY_SCOPE,
        claims: { iat: exp - 600, nbf: exp - 600, exp, tokenType: 'refresh-token' },
      });
      const checks = await failedChecks(jwt);

      expect(failuresOf(checks)).toEqual([
        'token audience',
        'token lifetime',
        'token type',
        'verdict',
      ]);
      // The server answers with the first reason jsonwebtoken finds; so does the verdict.
      expect(checks).toContainEqual({
        status: 'FAIL',
        check: 'verdict',
        detail: `with these settings, the server answers 401 invalid_token: "the token expired at ${new Date(exp * 1000).toISOString()}"`,
        fix: 'apply the token fixes above',
      });
    }, 60_000);

    it('refuses a token signed by a key the JWKS does not publish', async () => {
      issuer.addUnpublishedKey('retired');
      const jwt = issuer.token({ audience: resource, scope: EVERY_SCOPE, kid: 'retired' });

      expect(await failedChecks(jwt)).toContainEqual({
        status: 'FAIL',
        check: 'token signature',
        detail: "the token's signing key (kid) is not in the issuer's JWKS",
        fix: `no key "retired" is published at ${issuer.url}/.well-known/jwks: the token comes from another Casdoor, or AUTH_ISSUER / AUTH_JWKS_URI name another instance`,
      });
    }, 60_000);

    it('refuses what is not a JWT', async () => {
      const checks = await failedChecks('not-a-token');

      expect(checks.filter(({ status }) => status !== 'ok').map(({ check }) => check)).toEqual([
        'token',
        'verdict',
      ]);
    }, 60_000);

    it('passes an AUTH_JWKS_URI that is another address of the same keys', async () => {
      const sameKeys = `${issuer.url.replace('127.0.0.1', 'localhost')}/.well-known/jwks`;
      const run = await runDoctor([], { ...settings, AUTH_JWKS_URI: sameKeys });

      expect(run.code).toBe(0);
      expect(checksOf(run.stdout)).toContainEqual({
        status: 'ok',
        check: 'JWKS URI',
        detail: `AUTH_JWKS_URI serves the keys discovery's jwks_uri (${issuer.url}/.well-known/jwks) publishes`,
      });
    }, 60_000);

    it('fails when the running server has other settings than the doctor reads', async () => {
      const other = await TestIssuer.start();
      try {
        const run = await runDoctor([], { ...settings, AUTH_ISSUER: other.url });

        expect(run.code).toBe(1);
        expect(checksOf(run.stdout)).toContainEqual({
          status: 'FAIL',
          check: 'metadata',
          detail: `${app.baseUrl}/.well-known/oauth-protected-resource/mcp: its authorization_servers ["${issuer.url}"] do not name AUTH_ISSUER ${other.url}`,
          fix: expect.stringContaining(
            'the running server was started with other settings than the doctor read',
          ) as string,
        });
      } finally {
        await other.close();
      }
    }, 60_000);
  });

  describe('finds each misconfiguration', () => {
    it('bad settings: the error the server prints', async () => {
      const settings = { AUTH_ISSUER: issuer.url, AUTH_ALGORITHMS: 'HS256' };
      const server = spawnSync(process.execPath, [resolve('dist/main.js')], {
        env: { PATH: process.env.PATH, ...settings },
        cwd: resolve('test'),
        encoding: 'utf8',
      });
      const run = await runDoctor([], settings);

      expect(run.code).toBe(1);
      expect(server.stderr).toMatch(/^Configuration error: AUTH_ALGORITHMS: /);
      expect(checksOf(run.stdout)).toEqual([
        {
          status: 'FAIL',
          check: 'settings',
          detail: server.stderr.trim(),
          fix: 'correct AUTH_ALGORITHMS; the server refuses to start with it (README, "Configuration")',
        },
      ]);
    }, 60_000);

    /**
     * The checks of a deployment with `env` over sound settings on `port`, the server running with
     * them unless told otherwise, and a token for it; the doctor fails it and never prints the token.
     */
    async function failedDeployment(
      port: number,
      env: Record<string, string>,
      server: 'running' | 'stopped' = 'running',
    ): Promise<ReportedCheck[]> {
      const settings = settingsOf(issuer, port, env);
      const jwt = issuer.token({ audience: `${settings.PUBLIC_URL}/mcp`, scope: EVERY_SCOPE });
      const doctor = () => runDoctor(['--token', jwt], settings);
      const run = server === 'running' ? await withServer(settings, doctor) : await doctor();
      expect(run.code).toBe(1);
      expectTokenHidden(run, jwt);
      return checksOf(run.stdout);
    }

    it('AUTH_ISSUER with a trailing slash Casdoor does not write', async () => {
      const checks = await failedDeployment(await freePort(), { AUTH_ISSUER: `${issuer.url}/` });

      const fix = `set AUTH_ISSUER=${issuer.url}, exactly as Casdoor writes its issuer (a trailing slash makes another string)`;
      expect(checks).toContainEqual({
        status: 'FAIL',
        check: 'issuer',
        detail: `discovery's issuer is "${issuer.url}", AUTH_ISSUER is "${issuer.url}/": every token (iss "${issuer.url}") would be refused`,
        fix,
      });
      expect(checks).toContainEqual(
        expect.objectContaining({ status: 'FAIL', check: 'token issuer', fix }),
      );
      expect(failuresOf(checks)).toEqual(['issuer', 'token issuer', 'verdict']);
    }, 60_000);

    it('a discovery document that cannot be reached', async () => {
      const nowhere = `http://127.0.0.1:${await freePort()}`;
      const checks = await failedDeployment(await freePort(), { AUTH_ISSUER: nowhere });

      expect(checks.slice(0, 7).map(({ status, check }) => `${status} ${check}`)).toEqual([
        'ok settings',
        'FAIL discovery',
        'skip issuer',
        'FAIL JWKS',
        'skip algorithms',
        'ok challenge',
        'ok metadata',
      ]);
      expect(checks[1]).toEqual({
        status: 'FAIL',
        check: 'discovery',
        detail: expect.stringMatching(
          new RegExp(`^${nowhere}/\\.well-known/openid-configuration: .*ECONNREFUSED`),
        ) as string,
        fix: expect.stringContaining("set AUTH_ISSUER to your Casdoor's URL") as string,
      });
    }, 60_000);

    it('an AUTH_JWKS_URI that serves other keys than discovery names', async () => {
      const other = await TestIssuer.start();
      try {
        const checks = await failedDeployment(await freePort(), {
          AUTH_JWKS_URI: `${other.url}/.well-known/jwks`,
        });

        expect(checks).toContainEqual({
          status: 'FAIL',
          check: 'JWKS URI',
          detail: `AUTH_JWKS_URI serves other keys (cert-built-in (RS256)) than Casdoor publishes at its jwks_uri ${issuer.url}/.well-known/jwks (cert-built-in (RS256)): Casdoor's tokens would not verify`,
          fix: `unset AUTH_JWKS_URI (the server then reads jwks_uri from discovery), or set it to ${issuer.url}/.well-known/jwks or another address of the same Casdoor`,
        });
        expect(checks).toContainEqual(
          expect.objectContaining({
            status: 'FAIL',
            check: 'token signature',
            detail: "the token's signature does not verify",
          }),
        );
        expect(failuresOf(checks)).toEqual(['JWKS URI', 'token signature', 'verdict']);
      } finally {
        await other.close();
      }
    }, 60_000);

    it('AUTH_ALGORITHMS without the algorithm of the keys', async () => {
      const checks = await failedDeployment(await freePort(), { AUTH_ALGORITHMS: 'ES256' });

      expect(checks).toContainEqual({
        status: 'FAIL',
        check: 'algorithms',
        detail:
          "AUTH_ALGORITHMS=ES256 accepts none of the JWKS's keys (cert-built-in (RS256)): every token would be refused",
        fix: "add RS256 to AUTH_ALGORITHMS (the algorithm of your Casdoor application's certificate)",
      });
      expect(checks).toContainEqual({
        status: 'FAIL',
        check: 'token algorithm',
        detail: "the token's signing algorithm is not accepted (accepted: ES256)",
        fix: "add RS256 to AUTH_ALGORITHMS: the Casdoor application's certificate signs with it",
      });
      expect(failuresOf(checks)).toEqual(['algorithms', 'token algorithm', 'verdict']);
    }, 60_000);

    it('a server that is not running', async () => {
      const port = await freePort();
      const checks = await failedDeployment(port, {}, 'stopped');

      expect(checks).toContainEqual({
        status: 'FAIL',
        check: 'server',
        detail: expect.stringMatching(
          new RegExp(
            `^nothing answers at http://localhost:${port}/mcp \\(.*ECONNREFUSED.*\\) nor at http://127\\.0\\.0\\.1:${port}/mcp`,
          ),
        ) as string,
        fix: 'start the server with these settings (npm start), then run npm run doctor again',
      });
      expect(failuresOf(checks)).toEqual(['server']);
      expect(checks.at(-1)).toEqual({
        status: 'skip',
        check: 'server verdict',
        detail: 'the server cannot be reached',
      });
    }, 60_000);

    it('a PUBLIC_URL at which the server cannot be reached', async () => {
      const port = await freePort();
      const elsewhere = `http://localhost:${await freePort()}`;
      const checks = await failedDeployment(port, { PUBLIC_URL: elsewhere });

      expect(checks).toContainEqual({
        status: 'FAIL',
        check: 'server',
        detail: expect.stringMatching(
          new RegExp(
            `^${elsewhere}/mcp cannot be reached \\(.*\\), but the server answers at http://127\\.0\\.0\\.1:${port}/mcp$`,
          ),
        ) as string,
        fix: `set PUBLIC_URL to the origin clients reach this server at (behind a proxy, the proxy's) and make it forward /mcp to 127.0.0.1:${port}`,
      });
      // The challenge sends clients to the metadata under PUBLIC_URL, which cannot be reached either.
      expect(failuresOf(checks)).toEqual(['server', 'metadata']);
      expect(checks.at(-1)).toEqual({
        status: 'ok',
        check: 'server verdict',
        detail: `the server at http://127.0.0.1:${port}/mcp accepts it, as these settings say`,
      });
    }, 60_000);
  });
});
