import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './support/app.js';

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
  const child = spawn(process.execPath, [MAIN], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise<Run>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`dist/main.js did not finish: ${stdout}${stderr}`));
    }, 20_000);
    if (untilReady) {
      const poll = setInterval(() => {
        if (!stdout.includes('MCP endpoint')) return;
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
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

describe('node dist/main.js', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-main-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    [{}, 'AUTH_ISSUER', 'is required'],
    [{ AUTH_ISSUER: 'casdoor.example.com' }, 'AUTH_ISSUER', 'must be an http(s) URL'],
    [{ AUTH_ISSUER: 'https://casdoor.example.com', PORT: 'eighty' }, 'PORT', 'whole number'],
    [
      { AUTH_ISSUER: 'https://casdoor.example.com', AUTH_ALGORITHMS: 'HS256' },
      'AUTH_ALGORITHMS',
      'HS256',
    ],
    [
      { AUTH_ISSUER: 'https://casdoor.example.com', DATABASE_URL: 'mysql://x' },
      'DATABASE_URL',
      'sqlite:',
    ],
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
});
