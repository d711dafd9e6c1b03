import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const EXPORT_SCRIPT = fileURLToPath(new URL('../../dist/audit/export.js', import.meta.url));

/** Runs `node dist/audit/export.js` as `npm run audit:export` does. */
export function runExport(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const childEnv = { ...process.env, ...env };
  delete childEnv.AUTH_ISSUER; // the export needs only the database settings
  // Its own working directory: a developer's ./.env must not take part.
  const cwd = mkdtempSync(join(tmpdir(), 'scopedb-export-'));
  const child = spawn(process.execPath, [EXPORT_SCRIPT, ...args], { env: childEnv, cwd });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      rmSync(cwd, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}
