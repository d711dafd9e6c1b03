import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { DEMO_SIZES } from '../sandbox/demo-database.js';
import { freePort } from './support/app.js';
import { challengeParams, initialize, postMcp } from './support/mcp-http.js';
import { type NodeProcess, startNode } from './support/node-process.js';

const SANDBOX = resolve('dist-sandbox/sandbox/main.js');
const MAIN = resolve('dist/main.js');

/** Resolves once stdout contains `text`; rejects if the process exits first. */
function waitFor(running: NodeProcess, text: string): Promise<void> {
  return new Promise((done, fail) => {
    const check = () => {
      if (running.output().stdout.includes(text)) {
        running.child.stdout!.off('data', check);
        done();
      }
    };
    running.child.stdout!.on('data', check);
    void running.exited.then(({ code }) => {
      const { stdout, stderr } = running.output();
      if (!stdout.includes(text)) fail(new Error(`exited with ${code}: ${stdout}${stderr}`));
    });
    check();
  });
}

describe('npm run dev (dist-sandbox/sandbox/main.js)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-sandbox-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses to start with NODE_ENV=production, with a message saying why', async () => {
    const sut = startNode(SANDBOX, { NODE_ENV: 'production' }, dir);

    expect((await sut.exited).code).toBe(1);
    expect(sut.output().stderr).toContain('NODE_ENV is production');
    expect(sut.output().stderr).toContain('node dist/main.js');
    expect(sut.output().stdout).toBe('');
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });

  it('seeds the demo database, serves a Casdoor-shaped issuer and ScopeDB, and says what to do next', async () => {
    const [port, issuerPort] = [await freePort(), await freePort()];
    const issuer = `http://localhost:${issuerPort}`;
    const mcpUrl = `http://localhost:${port}/mcp`;
    const sut = startNode(
      SANDBOX,
      { PORT: String(port), SANDBOX_ISSUER_PORT: String(issuerPort) },
      dir,
    );
    try {
      await waitFor(sut, 'Stop with Ctrl+C');
      const { stdout } = sut.output();
      expect(stdout).toContain(`MCP endpoint (Streamable HTTP)   ${mcpUrl}`);
      expect(stdout).toContain(issuer);
      expect(stdout).toContain('alice / alice-demo');
      expect(stdout).toContain('bob / bob-demo');
      expect(stdout).toContain('npx @modelcontextprotocol/inspector');
      expect(stdout).toContain('"args": [\n            "-y",\n            "mcp-remote"');

      const discovery = (await (
        await fetch(`${issuer}/.well-known/openid-configuration`)
      ).json()) as Record<string, unknown>;
      expect(discovery).toMatchObject({
        issuer,
        authorization_endpoint: `${issuer}/login/oauth/authorize`,
        token_endpoint: `${issuer}/api/login/oauth/access_token`,
        registration_endpoint: `${issuer}/api/oauth/register`,
        jwks_uri: `${issuer}/.well-known/jwks`,
        code_challenge_methods_supported: ['S256'],
      });
      const asMetadata = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
      expect(await asMetadata.json()).toEqual(discovery);

      const unauthenticated = await postMcp(mcpUrl, initialize());
      expect(unauthenticated.status).toBe(401);
      const metadataUrl = challengeParams(
        unauthenticated.headers.get('www-authenticate'),
      ).resource_metadata;
      expect(await (await fetch(metadataUrl)).json()).toMatchObject({
        resource: mcpUrl,
        authorization_servers: [issuer],
      });

      const db = new Database(join(dir, 'data/demo.sqlite'), { readonly: true });
      try {
        expect(db.prepare('SELECT count(*) AS n FROM customers').get()).toEqual({
          n: DEMO_SIZES.customers,
        });
      } finally {
        db.close();
      }
    } finally {
      sut.child.kill('SIGTERM');
    }
    expect((await sut.exited).code).toBe(0);
  });
});

describe('the production entrypoint (node dist/main.js)', () => {
  it('contains no sandbox code: nothing in dist/ imports oidc-provider or the sandbox', () => {
    const files = readdirSync('dist', { recursive: true, encoding: 'utf8' }).filter((file) =>
      file.endsWith('.js'),
    );

    expect(files).toContain('main.js');
    for (const file of files) {
      const text = readFileSync(join('dist', file), 'utf8');
      expect({ file, oidcProvider: text.includes('oidc-provider') }).toEqual({
        file,
        oidcProvider: false,
      });
      expect({ file, sandbox: /from ['"][./]*sandbox\//.test(text) }).toEqual({
        file,
        sandbox: false,
      });
    }
  });

  it('serves none of the issuer routes, whatever the settings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopedb-main-'));
    const port = await freePort();
    const base = `http://localhost:${port}`;
    const sut = startNode(
      MAIN,
      { AUTH_ISSUER: base, PORT: String(port), NODE_ENV: 'development' },
      dir,
    );
    try {
      await waitFor(sut, 'MCP endpoint');
      for (const path of [
        '/.well-known/openid-configuration',
        '/.well-known/oauth-authorization-server',
        '/.well-known/jwks',
        '/login/oauth/authorize?client_id=x&response_type=code',
        '/interaction/x',
      ])
        expect({ path, status: (await fetch(`${base}${path}`)).status }).toEqual({
          path,
          status: 404,
        });
      for (const path of ['/api/oauth/register', '/api/login/oauth/access_token'])
        expect({
          path,
          status: (await fetch(`${base}${path}`, { method: 'POST', body: '{}' })).status,
        }).toEqual({ path, status: 404 });
    } finally {
      sut.child.kill('SIGTERM');
      await sut.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
