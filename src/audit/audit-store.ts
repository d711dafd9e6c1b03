import type Database from 'better-sqlite3';
import type { DataSource, QueryResult } from 'typeorm';
import { AUDIT_TABLE } from '../database/internal-tables.js';
import type { AuditDatabase } from './audit-database.js';
import type { AuditRecord, CompletedOutcome } from './audit-record.entity.js';
import { AUDIT_LOG_COLUMNS } from './migrations/1765000000000-audit-log.js';

/** A record as written: every column but the generated id; SQLite stores booleans as 0/1. */
export type AuditRow = Omit<AuditRecord, 'id' | 'subjectUnverified'> & {
  subjectUnverified: number;
};

/** A pending record's outcome. */
export interface Completion {
  id: number;
  outcome: CompletedOutcome;
  reason: string | null;
  rowCount: number | null;
  durationMs: number | null;
  /**
   * The whole record with this outcome, inserted as a record of its own when the intent is no
   * longer pending (another replica marked it interrupted first): an outcome is never dropped.
   */
  fallback: AuditRow;
}

/** What one group commit writes. */
export interface AuditBatch {
  inserts: AuditRow[];
  completions: Completion[];
}

/**
 * The statements of the audit trail, for each kind of store. SQLite runs synchronously on the
 * main thread (one transaction per batch); PostgreSQL asynchronously (one statement per kind).
 */
export interface AuditStore {
  /** Commits the batch; the ids of the inserted records, in order. */
  write(batch: AuditBatch): number[] | Promise<number[]>;
  /** Inserts a record in a transaction that is rolled back; throws if the store refuses it. */
  probe(): void | Promise<void>;
  /** Marks `pending` records older than `before` interrupted, except the ids in `open`. */
  markInterrupted(before: string, open: number[], reason: string): number | Promise<number>;
}

/** The columns of release 0.1.0's audit log, `id` aside (the upgrade from it copies these). */
export const COLUMNS_0_1_0 = Object.keys(AUDIT_LOG_COLUMNS) as (keyof typeof AUDIT_LOG_COLUMNS)[];

/** The columns a record is written with: 0.1.0's and those added since. */
export const COLUMNS: readonly (keyof AuditRow)[] = [...COLUMNS_0_1_0, 'tableName'];

/** Rows per statement in PostgreSQL: 21 parameters a row stays far below its 65535. */
const POSTGRES_BATCH_ROWS = 1000;

/**
 * The probe's record: id 0, which no sequence hands out, so that the rollback leaves no gap in
 * PostgreSQL's ids (a sequence does not roll back).
 */
const PROBE_ID = 0;

export function auditStoreOf(database: AuditDatabase): AuditStore {
  const sqlite = database.sqliteConnection;
  return sqlite ? new SqliteAuditStore(sqlite) : new PostgresAuditStore(database.dataSource);
}

class SqliteAuditStore implements AuditStore {
  private statements:
    | {
        insert: Database.Statement<AuditRow>;
        complete: Database.Statement<Omit<Completion, 'fallback'>>;
        probe: Database.Statement<[number, string]>;
        interrupt: Database.Statement<[string, string, string]>;
      }
    | undefined;

  constructor(private readonly db: Database.Database) {}

  write(batch: AuditBatch): number[] {
    const { insert, complete } = this.prepared();
    return this.db.transaction(() => {
      const ids = batch.inserts.map((row) => Number(insert.run(row).lastInsertRowid));
      for (const { fallback, ...completion } of batch.completions)
        if (complete.run(completion).changes === 0) insert.run(fallback);
      return ids;
    })();
  }

  probe(): void {
    const { probe } = this.prepared();
    // Never waits for a lock: the main thread must not stall on a probe.
    const busyTimeout = this.db.pragma('busy_timeout', { simple: true }) as number;
    this.db.pragma('busy_timeout = 0');
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        probe.run(PROBE_ID, new Date().toISOString());
      } finally {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
      }
    } finally {
      this.db.pragma(`busy_timeout = ${Math.trunc(busyTimeout)}`);
    }
  }

  markInterrupted(before: string, open: number[], reason: string): number {
    return this.prepared().interrupt.run(reason, before, JSON.stringify(open)).changes;
  }

  private prepared() {
    this.statements ??= {
      insert: this.db.prepare<AuditRow>(
        `INSERT INTO ${AUDIT_TABLE} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})`,
      ),
      complete: this.db.prepare(
        `UPDATE ${AUDIT_TABLE} SET outcome = @outcome, reason = @reason, rowCount = @rowCount, ` +
          `durationMs = @durationMs WHERE id = @id AND outcome = 'pending'`,
      ),
      probe: this.db.prepare(
        `INSERT INTO ${AUDIT_TABLE} (id, time, outcome) VALUES (?, ?, 'probe')`,
      ),
      interrupt: this.db.prepare(
        `UPDATE ${AUDIT_TABLE} SET outcome = 'interrupted', reason = ? WHERE outcome = 'pending' ` +
          `AND time < ? AND id NOT IN (SELECT value FROM json_each(?))`,
      ),
    };
    return this.statements;
  }
}

const quotedColumns = COLUMNS.map((c) => `"${c}"`).join(', ');

class PostgresAuditStore implements AuditStore {
  constructor(private readonly dataSource: DataSource) {}

  /** One multi-row INSERT (PostgreSQL returns its rows in VALUES order, as TypeORM relies on). */
  async write(batch: AuditBatch): Promise<number[]> {
    const ids: number[] = [];
    for (let start = 0; start < batch.inserts.length; start += POSTGRES_BATCH_ROWS) {
      const rows = batch.inserts.slice(start, start + POSTGRES_BATCH_ROWS);
      const { values, params } = valuesOf(rows.map((row) => COLUMNS.map((c) => valueOf(row, c))));
      const inserted = await this.query<{ id: number }>(
        `INSERT INTO ${AUDIT_TABLE} (${quotedColumns}) VALUES ${values} RETURNING id`,
        params,
      );
      ids.push(...inserted.map((row) => Number(row.id)));
    }
    for (let start = 0; start < batch.completions.length; start += POSTGRES_BATCH_ROWS)
      await this.complete(batch.completions.slice(start, start + POSTGRES_BATCH_ROWS));
    return ids;
  }

  async probe(): Promise<void> {
    const runner = this.dataSource.createQueryRunner();
    try {
      await runner.startTransaction();
      try {
        await runner.query(
          `INSERT INTO ${AUDIT_TABLE} (id, "time", outcome) VALUES ($1, $2, 'probe')`,
          [PROBE_ID, new Date().toISOString()],
        );
      } finally {
        await runner.rollbackTransaction();
      }
    } finally {
      await runner.release();
    }
  }

  async markInterrupted(before: string, open: number[], reason: string): Promise<number> {
    const changed = await this.query(
      `UPDATE ${AUDIT_TABLE} SET outcome = 'interrupted', reason = $1 WHERE outcome = 'pending' ` +
        `AND "time" < $2 AND NOT (id = ANY($3::integer[])) RETURNING id`,
      [reason, before, open],
    );
    return changed.length;
  }

  /** One UPDATE for the lot; intents no longer pending get their outcome as a record of its own. */
  private async complete(completions: Completion[]): Promise<void> {
    const { values, params } = valuesOf(
      completions.map((c) => [c.id, c.outcome, c.reason, c.rowCount, c.durationMs]),
      ['integer', 'varchar', 'text', 'integer', 'integer'],
    );
    const completed = await this.query<{ id: number }>(
      `UPDATE ${AUDIT_TABLE} AS a SET outcome = v.outcome, reason = v.reason, ` +
        `"rowCount" = v."rowCount", "durationMs" = v."durationMs" ` +
        `FROM (VALUES ${values}) AS v(id, outcome, reason, "rowCount", "durationMs") ` +
        `WHERE a.id = v.id AND a.outcome = 'pending' RETURNING a.id`,
      params,
    );
    const done = new Set(completed.map((row) => Number(row.id)));
    const orphans = completions.filter((c) => !done.has(c.id)).map((c) => c.fallback);
    if (orphans.length > 0) await this.write({ inserts: orphans, completions: [] });
  }

  private async query<T>(sql: string, params: unknown[]): Promise<T[]> {
    const runner = this.dataSource.createQueryRunner();
    try {
      const result: QueryResult<unknown> = await runner.query(sql, params, true);
      return result.records as T[];
    } finally {
      await runner.release();
    }
  }
}

function valueOf(row: AuditRow, column: keyof AuditRow): unknown {
  return column === 'subjectUnverified' ? row.subjectUnverified === 1 : row[column];
}

/** `($1, $2), ($3, $4)` and its parameters; `types` casts the first row's (VALUES infers the rest). */
function valuesOf(rows: unknown[][], types?: string[]): { values: string; params: unknown[] } {
  const params: unknown[] = [];
  const values = rows
    .map(
      (row, index) =>
        `(${row
          .map((value, column) => {
            params.push(value);
            const cast = index === 0 && types ? `::${types[column]}` : '';
            return `$${params.length}${cast}`;
          })
          .join(', ')})`,
    )
    .join(', ');
  return { values, params };
}
