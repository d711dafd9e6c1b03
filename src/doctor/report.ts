/** A value for a report line, as JSON (strings quoted, control characters escaped). */
export function shown(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

/** How a check came out: `skip` when what it needs failed earlier. */
export type Status = 'ok' | 'FAIL' | 'warn' | 'skip';

/**
 * The doctor's output, one line per check as it completes, each failure followed by its fix.
 * Secrets given to it (the token) are cut out of every line, whatever a check wrote.
 */
export class Report {
  private readonly counts: Record<Status, number> = { ok: 0, FAIL: 0, warn: 0, skip: 0 };
  private readonly secrets: string[] = [];

  constructor(private readonly write: (line: string) => void) {}

  /** Never printed: every occurrence is replaced by `<token>`. */
  hide(secret: string): void {
    if (secret !== '') this.secrets.push(secret);
  }

  ok(check: string, detail: string): void {
    this.line('ok', check, detail);
  }

  fail(check: string, detail: string, fix: string): void {
    this.line('FAIL', check, detail, fix);
  }

  warn(check: string, detail: string, fix?: string): void {
    this.line('warn', check, detail, fix);
  }

  skip(check: string, why: string): void {
    this.line('skip', check, why);
  }

  get failures(): number {
    return this.counts.FAIL;
  }

  /** The last line: how many checks failed or warned. */
  summary(): void {
    const { FAIL: failed, warn: warned } = this.counts;
    const warnings = warned === 0 ? '' : `, ${warned} warning${warned === 1 ? '' : 's'}`;
    this.write(
      failed === 0
        ? `\nAll checks passed${warnings}.`
        : `\n${failed} check${failed === 1 ? '' : 's'} failed${warnings}: apply the fixes above, then run npm run doctor again.`,
    );
  }

  private line(status: Status, check: string, detail: string, fix?: string): void {
    this.counts[status]++;
    this.write(this.redact(`${status.padEnd(4)}  ${check}: ${detail}`));
    if (fix !== undefined) this.write(this.redact(`      fix: ${fix}`));
  }

  /** The text with every hidden secret replaced by `<token>`. */
  redact(line: string): string {
    return this.secrets.reduce((text, secret) => text.split(secret).join('<token>'), line);
  }
}
