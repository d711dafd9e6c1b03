import { fileURLToPath } from 'node:url';
import { type CommandRun, runCommand } from './run-command.js';

const EXPORT_SCRIPT = fileURLToPath(new URL('../../dist/audit/export.js', import.meta.url));

/** Runs `node dist/audit/export.js` as `npm run audit:export` does. */
export function runExport(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<CommandRun> {
  const childEnv = { ...process.env, ...env };
  delete childEnv.AUTH_ISSUER; // the export needs only the database settings
  return runCommand(process.execPath, [EXPORT_SCRIPT, ...args], childEnv);
}
