import { Injectable } from '@nestjs/common';
import type { LedgerEntry, LedgerStatus } from '../database/engine.js';
import { InternalDatabase } from './internal-database.js';
import { LEDGER_TABLE } from './store-tables.js';

export interface LedgerRow {
  id: number;
  name: string;
  checksum: string;
  sql: string;
  /** When the row was written (the attempt began); for rows from release 0.1.0, when applied. */
  appliedAt: string;
  appliedBy: string;
  clientId: string | null;
  status: LedgerStatus;
  /** Fingerprints of the application schema before and after (null on rows from 0.1.0). */
  schemaBefore: string | null;
  schemaAfter: string | null;
  error: string | null;
  settledAt: string | null;
}

export type LedgerAttempt = Pick<
  LedgerRow,
  'name' | 'checksum' | 'sql' | 'appliedBy' | 'clientId' | 'schemaBefore' | 'schemaAfter'
>;

/** A migration of release 0.1.0's ledger, moved by the upgrade. */
export type LegacyLedgerRow = Pick<
  LedgerRow,
  'name' | 'checksum' | 'sql' | 'appliedAt' | 'appliedBy' | 'clientId'
>;

const TABLE = `"${LEDGER_TABLE}"`;

/**
 * The migrations ledger in the internal database: one row per attempt that reached the
 * application database, written `pending` before its DDL runs and settled once after.
 */
@Injectable()
export class MigrationLedger {
  constructor(private readonly internal: InternalDatabase) {}

  /** The row that holds the name (pending, applied or diverged); failed attempts do not. */
  live(name: string): LedgerRow | undefined {
    return this.internal.connection
      .prepare<[string], LedgerRow>(`SELECT * FROM ${TABLE} WHERE name = ? AND status <> 'failed'`)
      .get(name);
  }

  /** Records an attempt as pending (committed) and returns its id. */
  open(attempt: LedgerAttempt): number {
    const { lastInsertRowid } = this.internal.connection
      .prepare(
        `INSERT INTO ${TABLE} (name, checksum, sql, appliedAt, appliedBy, clientId, status, schemaBefore, schemaAfter) ` +
          "VALUES (@name, @checksum, @sql, @appliedAt, @appliedBy, @clientId, 'pending', @schemaBefore, @schemaAfter)",
      )
      .run({ ...attempt, appliedAt: new Date().toISOString() });
    return Number(lastInsertRowid);
  }

  /** Settles a pending row; the database refuses to settle one twice. */
  settle(id: number, status: Exclude<LedgerStatus, 'pending'>, error: string | null): void {
    this.internal.connection
      .prepare(`UPDATE ${TABLE} SET status = ?, error = ?, settledAt = ? WHERE id = ?`)
      .run(status, error, new Date().toISOString(), id);
  }

  pending(): LedgerRow[] {
    return this.internal.connection
      .prepare<[], LedgerRow>(`SELECT * FROM ${TABLE} WHERE status = 'pending' ORDER BY id`)
      .all();
  }

  /** The latest applied migration whose resulting schema is known. */
  lastApplied(): LedgerRow | undefined {
    return this.internal.connection
      .prepare<[], LedgerRow>(
        `SELECT * FROM ${TABLE} WHERE status = 'applied' AND schemaAfter IS NOT NULL ORDER BY id DESC LIMIT 1`,
      )
      .get();
  }

  /** Every row, oldest first. */
  list(): LedgerEntry[] {
    return this.internal.connection
      .prepare<[], LedgerEntry>(
        `SELECT name, checksum, appliedAt AS applied_at, appliedBy AS applied_by, clientId AS client_id, sql, status FROM ${TABLE} ORDER BY appliedAt, id`,
      )
      .all();
  }

  /** Adds the migrations of release 0.1.0 as applied, each once (again: nothing). */
  importLegacy(rows: LegacyLedgerRow[]): number {
    const db = this.internal.connection;
    const exists = db
      .prepare<[string], number>(`SELECT 1 FROM ${TABLE} WHERE name = ? AND status <> 'failed'`)
      .pluck();
    const insert = db.prepare(
      `INSERT INTO ${TABLE} (name, checksum, sql, appliedAt, appliedBy, clientId, status, settledAt) ` +
        "VALUES (@name, @checksum, @sql, @appliedAt, @appliedBy, @clientId, 'applied', @appliedAt)",
    );
    return db.transaction(() => {
      let added = 0;
      for (const row of rows)
        if (exists.get(row.name) === undefined) {
          insert.run(row);
          added++;
        }
      return added;
    })();
  }
}
