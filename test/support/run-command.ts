import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** How a command ended, and all it wrote. */
export interface CommandRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` to its end with `env` as its whole environment, in an empty working directory of
 * its own (a developer's ./.env takes no part), `stdin` written to it and closed (else none).
 */
export function runCommand(
  command: string,
  args: string[],
  env: Record<string, string | undefined>,
  stdin?: string,
): Promise<CommandRun> {
  const cwd = mkdtempSync(join(tmpdir(), 'scopedb-command-'));
  const child = spawn(command, args, {
    env,
    cwd,
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (stdin !== undefined) child.stdin!.end(stdin);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      rmSync(cwd, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}
