import { ConsoleLogger, Logger, type LoggerService } from '@nestjs/common';

export interface LogLine {
  level: 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';
  message: string;
  context: string | undefined;
}

/** What Nest's `Logger` writes, kept in memory instead of printed (until `restore`). */
export function recordNestLogs(): { lines: LogLine[]; restore(): void } {
  const lines: LogLine[] = [];
  const keep =
    (level: LogLine['level']) =>
    (message: unknown, ...params: unknown[]): void => {
      // A Logger's context comes last.
      const context = params.at(-1);
      lines.push({
        level,
        message: String(message),
        context: typeof context === 'string' ? context : undefined,
      });
    };
  const recorder: LoggerService = {
    log: keep('log'),
    error: keep('error'),
    warn: keep('warn'),
    debug: keep('debug'),
    verbose: keep('verbose'),
    fatal: keep('fatal'),
  };
  Logger.overrideLogger(recorder);
  return {
    lines,
    restore: () => {
      Logger.overrideLogger(new ConsoleLogger());
    },
  };
}
