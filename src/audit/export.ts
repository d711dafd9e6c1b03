// `npm run audit:export -- --since <ISO 8601> [--until <ISO 8601>]`: the audit trail as JSON Lines
// on stdout, oldest first. Reads the audit database (AUDIT_DATABASE_URL, else the internal
// database) read-only; the server may be running.
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { DataSource } from 'typeorm';
import { type AuditSettings, ConfigurationError, readAuditSettings } from '../config/settings.js';
import { AUDIT_TABLE } from '../database/internal-tables.js';
import { messageOf } from '../mcp/tool-context.js';
import { auditDataSourceOptions, openFailure } from './audit-database.js';
import { AuditRecord } from './audit-record.entity.js';
import {
  isoDateTime,
  type StoredAuditRecord,
  storedTime,
  toAuditJson,
} from './audit-record.format.js';

/** Records read from PostgreSQL per round trip. */
const POSTGRES_PAGE_ROWS = 1000;

type TimeRange = { since: string; until: string | null };

const USAGE =
  'usage: npm run audit:export -- --since <ISO 8601 date-time> [--until <ISO 8601 date-time>]';

/** Exit codes: 1 when the export failed, 2 when it was asked for wrongly. */
class ExportError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

function timeRange(argv: string[]): TimeRange {
  let values: { since?: string; until?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { since: { type: 'string' }, until: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new ExportError(`${messageOf(error)}; ${USAGE}`, 2);
  }
  const time = (name: 'since' | 'until', raw: string) => {
    if (!isoDateTime.safeParse(raw).success)
      throw new ExportError(
        `--${name} must be an ISO 8601 date-time such as 2026-05-01T00:00:00Z, got "${raw}"; ${USAGE}`,
        2,
      );
    return storedTime(raw);
  };
  if (values.since === undefined) throw new ExportError(`--since is required; ${USAGE}`, 2);
  return {
    since: time('since', values.since),
    until: values.until === undefined ? null : time('until', values.until),
  };
}

async function write(line: string): Promise<void> {
  if (!process.stdout.write(line)) await once(process.stdout, 'drain');
}

async function exportFromSqlite(path: string, variable: string, range: TimeRange): Promise<void> {
  if (!existsSync(path)) throw new ExportError(`no database file at ${path} (from ${variable})`, 1);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    // Ordered by the time index (rowid breaks ties), so SQLite streams without sorting.
    const rows = db
      .prepare<[string, string | null, string | null], StoredAuditRecord>(
        `SELECT * FROM ${AUDIT_TABLE} WHERE time >= ? AND (? IS NULL OR time < ?) ORDER BY time, id`,
      )
      .iterate(range.since, range.until, range.until);
    for (const row of rows) await write(`${JSON.stringify(toAuditJson(row))}\n`);
  } finally {
    db.close();
  }
}

/** One read-only snapshot, read in pages after the last (time, id) seen: bounded memory. */
async function exportFromPostgres(settings: AuditSettings, range: TimeRange) {
  const source = new DataSource(auditDataSourceOptions(settings.database));
  try {
    await source.initialize();
  } catch (error) {
    throw new ExportError(openFailure(settings, error).message, 1);
  }
  const runner = source.createQueryRunner();
  try {
    await runner.startTransaction('REPEATABLE READ');
    await runner.query('SET TRANSACTION READ ONLY');
    let after: { time: string; id: number } | undefined;
    for (;;) {
      const page = source
        .createQueryBuilder(AuditRecord, 'record', runner)
        .where('record.time >= :since', { since: range.since })
        .orderBy('record.time', 'ASC')
        .addOrderBy('record.id', 'ASC')
        .limit(POSTGRES_PAGE_ROWS);
      if (range.until !== null) page.andWhere('record.time < :until', { until: range.until });
      if (after)
        page.andWhere(
          '(record.time > :afterTime OR (record.time = :afterTime AND record.id > :afterId))',
          {
            afterTime: after.time,
            afterId: after.id,
          },
        );
      const records = await page.getMany();
      for (const record of records) await write(`${JSON.stringify(toAuditJson(record))}\n`);
      if (records.length < POSTGRES_PAGE_ROWS) break;
      after = records[records.length - 1];
    }
    await runner.rollbackTransaction();
  } finally {
    await runner.release();
    await source.destroy();
  }
}

async function exportAuditLog(argv: string[]): Promise<void> {
  const range = timeRange(argv);
  if (existsSync('.env')) process.loadEnvFile('.env');
  let settings: AuditSettings;
  try {
    settings = readAuditSettings(process.env);
  } catch (error) {
    if (error instanceof ConfigurationError)
      throw new ExportError(`Configuration error: ${error.message}`, 1);
    throw error;
  }
  if (settings.database.type === 'sqlite')
    await exportFromSqlite(settings.database.path, settings.setting, range);
  else await exportFromPostgres(settings, range);
}

// A reader that stops early (`| head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') process.stderr.write(`audit:export: ${error.message}\n`);
  process.exit(error.code === 'EPIPE' ? 0 : 1);
});

try {
  await exportAuditLog(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`audit:export: ${messageOf(error)}\n`);
  process.exitCode = error instanceof ExportError ? error.exitCode : 1;
}
