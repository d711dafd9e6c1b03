import { ConsoleLogger, Logger, type LoggerService } from '@nestjs/common';

export interface LogLine {
  level: 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';
  message: string;
  context: string | undefined;
  /** The request a line names (`{ requestId, msg }` lines, as pino merges them). */
  requestId?: string;
}

/** What Nest's `Logger` writes, kept in memory instead of printed (until `restore`). */
export function recordNestLogs(): { lines: LogLine[]; restore(): void } {
  const lines: LogLine[] = [];
  const keep =
    (level: LogLine['level']) =>
    (message: unknown, ...params: unknown[]): void => {
      // A Logger's context comes last.
      const context = params.at(-1);
      const fields =
        typeof message === 'object' && message !== null && 'msg' in message
          ? (message as { msg: unknown; requestId?: string })
          : undefined;
      lines.push({
        level,
        message: String(fields ? fields.msg : message),
        context: typeof context === 'string' ? context : undefined,
        ...(fields?.requestId !== undefined && { requestId: fields.requestId }),
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
