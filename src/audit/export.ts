// `npm run audit:export -- --since <ISO 8601> [--until <ISO 8601>]`: the audit trail as JSON Lines
// on stdout, oldest first. Reads the database file directly (read-only); the server may be running.
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { ConfigurationError, readDatabaseSettings } from '../config/settings.js';
import { AUDIT_TABLE } from '../database/internal-tables.js';
import { messageOf } from '../mcp/tool-context.js';
import {
  isoDateTime,
  type StoredAuditRecord,
  storedTime,
  toAuditJson,
} from './audit-record.format.js';

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

function timeRange(argv: string[]): { since: string; until: string | null } {
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

async function exportAuditLog(argv: string[]): Promise<void> {
  const range = timeRange(argv);
  if (existsSync('.env')) process.loadEnvFile('.env');
  let path: string;
  try {
    path = readDatabaseSettings(process.env).path;
  } catch (error) {
    if (error instanceof ConfigurationError)
      throw new ExportError(`Configuration error: ${error.message}`, 1);
    throw error;
  }
  if (!existsSync(path))
    throw new ExportError(`no database file at ${path} (from DATABASE_URL)`, 1);

  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    // Ordered by the time index (rowid breaks ties), so SQLite streams without sorting.
    const rows = db
      .prepare<[string, string | null, string | null], StoredAuditRecord>(
        `SELECT * FROM ${AUDIT_TABLE} WHERE time >= ? AND (? IS NULL OR time < ?) ORDER BY time, id`,
      )
      .iterate(range.since, range.until, range.until);
    for (const row of rows)
      if (!process.stdout.write(`${JSON.stringify(toAuditJson(row))}\n`))
        await once(process.stdout, 'drain');
  } finally {
    db.close();
  }
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
