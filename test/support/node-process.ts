import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { freePort } from './app.js';

/** A child process whose output is kept. */
export interface NodeProcess {
  child: ChildProcess;
  /** What it has written so far. */
  output(): { stdout: string; stderr: string };
  /** How it ended: its exit code, or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs `command` with `args` in `cwd` with PATH and `env` as its whole environment; `detached`
 * makes it the leader of a process group of its own, as a shell does with a job.
 */
export function startCommand(
  command: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
  detached = false,
): NodeProcess {
  const child = spawn(command, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.on('exit', (code, signal) => done({ code, signal })),
  );
  return { child, output: () => ({ stdout, stderr }), exited };
}

/** Runs `node <entry>` in `cwd` with PATH and `env` as its whole environment. */
export function startNode(entry: string, env: Record<string, string>, cwd: string): NodeProcess {
  return startCommand(process.execPath, [entry], env, cwd);
}

/** Waits until `${url}/healthz` answers 200; fails with the output if the process ends first. */
export async function untilHealthy(node: NodeProcess, url: string): Promise<void> {
  for (let tries = 0; ; tries++) {
    const up = await fetch(`${url}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (up) return;
    if (tries > 400 || node.child.exitCode !== null || node.child.signalCode !== null) {
      const { stdout, stderr } = node.output();
      throw new Error(`the server did not start: ${stdout}${stderr}`);
    }
    await new Promise((wait) => setTimeout(wait, 50));
  }
}

/** `node dist/main.js`, serving. */
export interface ServerProcess extends NodeProcess {
  /** http://localhost:<port> */
  url: string;
  mcpUrl: string;
}

/**
 * Starts the production entrypoint in `cwd` on a free port, issuer `issuerUrl`, with `env` over
 * quiet defaults (no logs, rate limits out of the way), and waits until it serves.
 */
export async function startServer(
  cwd: string,
  issuerUrl: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const port = await freePort();
  const url = `http://localhost:${port}`;
  const node = startNode(
    resolve('dist/main.js'),
    {
      AUTH_ISSUER: issuerUrl,
      PORT: String(port),
      PUBLIC_URL: url,
      LOG_LEVEL: 'silent',
      RATE_LIMIT_PER_MINUTE: '1000000',
      RATE_LIMIT_ANONYMOUS_PER_MINUTE: '1000000',
      ...env,
    },
    cwd,
  );
  await untilHealthy(node, url);
  return { ...node, url, mcpUrl: `${url}/mcp` };
}

/** `node dist/main.js` serving on a free port, as the specs that stop and restart it see it. */
export interface MainServer {
  child: ChildProcess;
  url: string;
  /** The signal that ended it, if one did. */
  exited: Promise<NodeJS.Signals | null>;
  output(): { stdout: string; stderr: string };
}

/**
 * Starts the production entrypoint in `dir` (DATABASE_URL defaults to data/scopedb.sqlite there)
 * and waits until it serves; `env` adds to or overrides the settings.
 */
export async function startMain(
  dir: string,
  issuer: { url: string },
  env: Record<string, string> = {},
): Promise<MainServer> {
  const server = await startServer(dir, issuer.url, { QUERY_WORKERS: '2', ...env });
  return {
    child: server.child,
    url: server.url,
    exited: server.exited.then(({ signal }) => signal),
    output: () => server.output(),
  };
}

/** SIGTERM, then the exit; fails unless it exits 0. */
export async function stopMain(server: MainServer): Promise<void> {
  server.child.kill('SIGTERM');
  await server.exited;
  if (server.child.exitCode !== 0)
    throw new Error(`the server exited with ${server.child.exitCode}: ${server.output().stderr}`);
}
