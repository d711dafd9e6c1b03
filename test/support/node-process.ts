import { type ChildProcess, spawn } from 'node:child_process';

/** A `node` child process whose output is kept. */
export interface NodeProcess {
  child: ChildProcess;
  /** What it has written so far. */
  output(): { stdout: string; stderr: string };
  /** How it ended: its exit code, or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `node <entry>` in `cwd` with PATH and `env` as its whole environment. */
export function startNode(entry: string, env: Record<string, string>, cwd: string): NodeProcess {
  const child = spawn(process.execPath, [entry], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
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
