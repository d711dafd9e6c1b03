import { fileURLToPath } from 'node:url';
import { type CommandRun, runCommand } from './run-command.js';

export const DOCTOR_SCRIPT = fileURLToPath(new URL('../../dist/doctor/main.js', import.meta.url));

/** `node dist/doctor/main.js` as `npm run doctor` runs it, with these settings and nothing else. */
export function runDoctor(
  args: string[],
  settings: Record<string, string>,
  stdin?: string,
): Promise<CommandRun> {
  return runCommand(
    process.execPath,
    [DOCTOR_SCRIPT, ...args],
    { PATH: process.env.PATH, ...settings },
    stdin,
  );
}

/**
 * The doctor with `token` piped in by a shell (`printf %s "$TOKEN" | ...`), as a user would: run
 * by node, or by `npm run doctor` in this checkout.
 */
export function runDoctorPiped(
  token: string,
  settings: Record<string, string>,
  via: 'node' | 'npm' = 'node',
): Promise<CommandRun> {
  const doctor =
    via === 'npm'
      ? ['npm', '--prefix', process.cwd(), 'run', 'doctor']
      : [process.execPath, DOCTOR_SCRIPT];
  return runCommand('sh', ['-c', 'printf %s "$DOCTOR_TOKEN" | exec "$@"', 'sh', ...doctor], {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...settings,
    DOCTOR_TOKEN: token,
  });
}

/** One line of the doctor's report, and the fix printed under it. */
export interface ReportedCheck {
  status: 'ok' | 'FAIL' | 'warn' | 'skip';
  check: string;
  detail: string;
  fix?: string;
}

/** The doctor's report, line by line (the summary left out). */
export function checksOf(stdout: string): ReportedCheck[] {
  const checks: ReportedCheck[] = [];
  for (const line of stdout.split('\n')) {
    const fix = /^ {6}fix: (.*)$/.exec(line);
    if (fix) checks[checks.length - 1].fix = fix[1];
    const check = /^(ok|FAIL|warn|skip) +(.+?): (.*)$/.exec(line);
    if (check)
      checks.push({
        status: check[1] as ReportedCheck['status'],
        check: check[2],
        detail: check[3],
      });
  }
  return checks;
}

/** The statuses of the checks, `status check` each, in order. */
export function statusesOf(stdout: string): string[] {
  return checksOf(stdout).map(({ status, check }) => `${status} ${check}`);
}

/** The checks that failed, by name. */
export function failuresOf(checks: readonly ReportedCheck[]): string[] {
  return checks.filter(({ status }) => status === 'FAIL').map(({ check }) => check);
}
