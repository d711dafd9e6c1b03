import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { Inject, Injectable, Logger } from '@nestjs/common';
import Database from 'better-sqlite3';
import { AuditDatabase } from '../audit/audit-database.js';
import { COLUMNS_0_1_0 } from '../audit/audit-store.js';
import { databaseConfig } from '../config/configuration.js';
import type { SqliteDatabaseSettings } from '../config/settings.js';
import { AUDIT_TABLE, INTERNAL_TABLES, LEDGER_TABLE } from '../database/internal-tables.js';
import { quoteIdentifier } from '../database/sqlite/catalog.js';
import { InternalDatabase } from './internal-database.js';
import { type LegacyLedgerRow, MigrationLedger } from './migration-ledger.js';

/** Bookkeeping key: how far the upgrade from release 0.1.0 got (see LegacyUpgrade). */
export const UPGRADE_STATE_KEY = 'upgrade_from_0.1.0';
type UpgradeState = { step: 'none' } | { step: 'copied' | 'done'; marker: string };

/** The audit columns of release 0.1.0 but `id`: moved records get new ids where they go. */
const LEGACY_AUDIT_COLUMNS = COLUMNS_0_1_0;
type AuditColumn = (typeof LEGACY_AUDIT_COLUMNS)[number];
type AuditRow = Partial<Record<AuditColumn, string | number | null>>;

/** Records read from the application database, and written to PostgreSQL, per round. */
const BATCH_ROWS = 1000;
/** pg_advisory_xact_lock key: two servers upgrading the same files copy once. */
const UPGRADE_LOCK_KEY = 7_265_044_002;

const quote = (name: string) => `"${name}"`;

/** Which of release 0.1.0's tables the application database still has. */
function legacyTables(app: Database.Database): string[] {
  const present = new Set(
    app
      .prepare<string[], string>(
        `SELECT name FROM sqlite_schema WHERE type = 'table' AND name IN (${INTERNAL_TABLES.map(() => '?').join(', ')})`,
      )
      .pluck()
      .all(...INTERNAL_TABLES),
  );
  return INTERNAL_TABLES.filter((table) => present.has(table));
}

interface Dependent {
  type: string;
  name: string;
  sql: string;
}

/**
 * Triggers and views on other tables whose SQL names one of the legacy tables (release 0.1.0 let
 * no migration make one; only a hand edit could): they break once the tables go, so they go too,
 * their definitions kept in the upgrade's record.
 */
function dependents(app: Database.Database, tables: string[]): Dependent[] {
  if (tables.length === 0) return [];
  const names = tables.join('|');
  const mentions = new RegExp(
    `(^|[^A-Za-z0-9_$\u0080-\uffff])["\`[]?(${names})["\`\\]]?($|[^A-Za-z0-9_$\u0080-\uffff])`,
    'i',
  );
  return app
    .prepare<[], Dependent & { tbl_name: string }>(
      "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE type IN ('trigger', 'view') AND sql IS NOT NULL ORDER BY type, name",
    )
    .all()
    .filter((entry) => !tables.includes(entry.tbl_name) && mentions.test(entry.sql))
    .map(({ type, name, sql }) => ({ type, name, sql }));
}

/** A digest of everything in those tables: the same files give the same marker. */
function legacyMarker(app: Database.Database, tables: string[]): string {
  const digest = createHash('sha256');
  for (const table of tables) {
    digest.update(`${table}\n`);
    for (const row of app
      .prepare(`SELECT * FROM ${quote(table)} ORDER BY rowid`)
      .raw()
      .iterate())
      digest.update(`${JSON.stringify(row)}\n`);
  }
  return `upgrade-0.1.0:${digest.digest('hex').slice(0, 50)}`;
}

interface IdRange {
  count: number;
  first: number | null;
  last: number | null;
}

/**
 * Moves what release 0.1.0 kept in the application database (the audit log, the migrations
 * ledger, TypeORM's table) out of it, once, losing nothing. Crash-safe across the files:
 *
 * 1. the ledger rows go to the internal database, each name once (a repeat adds nothing);
 * 2. the audit records go to the audit database in one transaction with a record of the upgrade
 *    (outcome `upgrade`) whose request id is a digest of the legacy tables' content: a repeat
 *    that finds that record copies nothing;
 * 3. the internal database notes `copied`; the legacy tables are dropped, with any trigger or
 *    view elsewhere that names them (kept in the upgrade's record); it notes `done`.
 *
 * A restart after any step redoes only what is missing. Once the note exists, tables of those
 * names in the application database are never read again: whoever made them, they are not ours.
 */
@Injectable()
export class LegacyUpgrade {
  private readonly logger = new Logger(LegacyUpgrade.name);

  constructor(
    private readonly internal: InternalDatabase,
    private readonly ledger: MigrationLedger,
    private readonly audit: AuditDatabase,
    // Provided in SQLite mode only (SqliteModule): release 0.1.0 served SQLite only.
    @Inject(databaseConfig.KEY) private readonly cfg: SqliteDatabaseSettings,
  ) {}

  async run(): Promise<void> {
    const raw = this.internal.state(UPGRADE_STATE_KEY);
    const state = raw === undefined ? undefined : (JSON.parse(raw) as UpgradeState);
    const app = new Database(this.cfg.path, { fileMustExist: true });
    try {
      app.pragma(`busy_timeout = ${this.cfg.busyTimeoutMs}`);
      const legacy = legacyTables(app);
      if (state?.step === 'none' || state?.step === 'done') {
        if (legacy.length > 0)
          this.logger.warn(
            `The application database has tables named ${legacy.join(', ')}; ScopeDB no longer keeps anything there and leaves them alone`,
          );
        return;
      }
      if (state === undefined && legacy.length === 0) {
        this.setState({ step: 'none' });
        return;
      }
      const marker = legacy.length > 0 ? legacyMarker(app, legacy) : undefined;
      if (state === undefined) {
        await this.copy(app, legacy, marker!);
        this.setState({ step: 'copied', marker: marker! });
      } else if (marker !== undefined && marker !== state.marker) {
        throw new Error(
          `the application database's tables ${legacy.join(', ')} changed after they were copied to the internal and audit databases (upgrade from 0.1.0); restore the application database the upgrade started from`,
        );
      }
      app.transaction(() => {
        for (const { type, name } of dependents(app, legacy))
          app.exec(`DROP ${type === 'view' ? 'VIEW' : 'TRIGGER'} ${quoteIdentifier(name)}`);
        legacy.forEach((table) => app.exec(`DROP TABLE ${quote(table)}`));
      })();
      this.setState({ step: 'done', marker: state?.marker ?? marker! });
    } finally {
      app.close();
    }
  }

  private setState(state: UpgradeState): void {
    this.internal.setState(UPGRADE_STATE_KEY, JSON.stringify(state));
  }

  private async copy(app: Database.Database, legacy: string[], marker: string): Promise<void> {
    const started = Date.now();
    const broken = dependents(app, legacy);
    const migrations = legacy.includes(LEDGER_TABLE)
      ? app
          .prepare<[], LegacyLedgerRow>(
            `SELECT name, checksum, sql, appliedAt, appliedBy, clientId FROM ${quote(LEDGER_TABLE)} ORDER BY appliedAt, name`,
          )
          .all()
      : [];
    this.ledger.importLegacy(migrations);

    const hasAudit = legacy.includes(AUDIT_TABLE);
    const present = hasAudit
      ? new Set(
          app
            .prepare<[string], string>('SELECT name FROM pragma_table_info(?)')
            .pluck()
            .all(AUDIT_TABLE),
        )
      : new Set<string>();
    const columns = LEGACY_AUDIT_COLUMNS.filter((column) => present.has(column));
    const source: IdRange = hasAudit
      ? app
          .prepare<[], IdRange>(
            `SELECT count(*) AS count, min(id) AS first, max(id) AS last FROM ${quote(AUDIT_TABLE)}`,
          )
          .get()!
      : { count: 0, first: null, last: null };
    const page = app.prepare<[number], AuditRow & { id: number }>(
      `SELECT id, ${columns.map(quote).join(', ')} FROM ${quote(AUDIT_TABLE)} WHERE id > ? ORDER BY id LIMIT ${BATCH_ROWS}`,
    );
    /** The legacy records in id order, a page at a time. */
    function* pages(): Generator<AuditRow[]> {
      if (!hasAudit) return;
      for (let after = Number.MIN_SAFE_INTEGER; ;) {
        const rows = page.all(after);
        if (rows.length === 0) return;
        after = rows[rows.length - 1].id;
        yield rows.map(({ id: _id, ...row }) => row);
      }
    }

    const record = (copied: IdRange): AuditRow => ({
      time: new Date().toISOString(),
      requestId: marker,
      subjectUnverified: 0,
      outcome: 'upgrade',
      reason:
        `Upgrade from release 0.1.0: moved ${source.count} audit records` +
        (source.count > 0
          ? ` (ids ${source.first}-${source.last} there, ${copied.first}-${copied.last} here)`
          : '') +
        ` and ${migrations.length} migrations (to the ledger of the internal database) out of the application database ${resolve(this.cfg.path)}, whose tables ${legacy.join(', ')} are then dropped` +
        (broken.length > 0
          ? `, with the ${broken.map(({ type, name }) => `${type} ${name}`).join(', ')} that referred to them (their SQL is in this record).`
          : '.'),
      sqlText: broken.length > 0 ? broken.map(({ sql }) => `${sql};`).join('\n') : null,
      rowCount: source.count,
      durationMs: Date.now() - started,
    });
    const copied = this.audit.sqliteConnection
      ? this.copyToSqlite(this.audit.sqliteConnection, columns, pages, record, marker)
      : await this.copyToPostgres(columns, pages, record, marker);
    this.logger.log(
      copied
        ? `Upgrade from 0.1.0: moved ${copied.count} audit records and ${migrations.length} migrations out of the application database`
        : 'Upgrade from 0.1.0: the audit records were moved before a restart; finishing',
    );
  }

  /** One transaction: the records and the upgrade's own, unless that one is there already. */
  private copyToSqlite(
    db: Database.Database,
    columns: AuditColumn[],
    pages: () => Generator<AuditRow[]>,
    record: (copied: IdRange) => AuditRow,
    marker: string,
  ): IdRange | undefined {
    const insert = (names: readonly string[]) =>
      db.prepare<[AuditRow]>(
        `INSERT INTO ${quote(AUDIT_TABLE)} (${names.map(quote).join(', ')}) VALUES (${names.map((name) => `@${name}`).join(', ')})`,
      );
    const insertMoved = insert(columns);
    return db.transaction(() => {
      const done = db
        .prepare(`SELECT 1 FROM ${quote(AUDIT_TABLE)} WHERE outcome = 'upgrade' AND requestId = ?`)
        .get(marker);
      if (done) return undefined;
      const copied: IdRange = { count: 0, first: null, last: null };
      for (const rows of pages())
        for (const row of rows) {
          const id = Number(insertMoved.run(row).lastInsertRowid);
          copied.first ??= id;
          copied.last = id;
          copied.count++;
        }
      const own = record(copied);
      insert(Object.keys(own)).run(own);
      return copied;
    })();
  }

  /** The same in one PostgreSQL transaction, the records in multi-row INSERTs. */
  private async copyToPostgres(
    columns: AuditColumn[],
    pages: () => Generator<AuditRow[]>,
    record: (copied: IdRange) => AuditRow,
    marker: string,
  ): Promise<IdRange | undefined> {
    const runner = this.audit.dataSource.createQueryRunner();
    const insert = async (names: readonly string[], rows: AuditRow[]): Promise<number[]> => {
      const values = rows.map(
        (_row, index) =>
          `(${names.map((_name, column) => `$${index * names.length + column + 1}`).join(', ')})`,
      );
      const params = rows.flatMap((row) =>
        names.map((name) => {
          const value = row[name as AuditColumn] ?? null;
          return name === 'subjectUnverified' ? Boolean(value) : value;
        }),
      );
      const inserted = (await runner.query(
        `INSERT INTO ${quote(AUDIT_TABLE)} (${names.map(quote).join(', ')}) VALUES ${values.join(', ')} RETURNING id`,
        params,
      )) as { id: number | string }[];
      return inserted.map(({ id }) => Number(id));
    };
    try {
      await runner.startTransaction();
      await runner.query('SELECT pg_advisory_xact_lock($1)', [UPGRADE_LOCK_KEY]);
      const done = (await runner.query(
        `SELECT 1 FROM ${quote(AUDIT_TABLE)} WHERE outcome = 'upgrade' AND "requestId" = $1`,
        [marker],
      )) as unknown[];
      if (done.length > 0) {
        await runner.rollbackTransaction();
        return undefined;
      }
      const copied: IdRange = { count: 0, first: null, last: null };
      for (const rows of pages()) {
        const ids = await insert(columns, rows);
        copied.first ??= Math.min(...ids);
        copied.last = Math.max(...ids);
        copied.count += ids.length;
      }
      const own = record(copied);
      await insert(Object.keys(own), [own]);
      await runner.commitTransaction();
      return copied;
    } catch (error) {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      throw error;
    } finally {
      await runner.release();
    }
  }
}
