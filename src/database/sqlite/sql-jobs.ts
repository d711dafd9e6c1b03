import type Database from 'better-sqlite3';
import { listTables } from './catalog.js';
import type { Row, SqlParams } from '../sql-values.js';
import { applyMigration, planMigration } from './migrations.js';
import type { Filter, ReadResult } from '../engine.js';
import { boundedAt, explainQuery, runQuery } from './reads.js';
import type { ResultLimits, SizeLimits } from '../result-rows.js';
import { deleteRows, execute, insertRows, updateRows } from './writes.js';

/**
 * The work a tool hands to a SQL worker process: plain JSON data both ways (the IPC channel is
 * JSON). Every job that returns rows carries the limits they must fit (writes: the settings' size
 * limits; each write tool has its own row cap).
 */
export type SqlJob =
  | { kind: 'query'; sql: string; params?: SqlParams; limits: ResultLimits }
  /** A query, and whether the main process may run the same text inline from now on (JudgedRead). */
  | { kind: 'judgedQuery'; sql: string; params?: SqlParams; limits: ResultLimits }
  | { kind: 'explain'; sql: string; params?: SqlParams }
  | { kind: 'listTables'; pattern?: string; includeViews: boolean }
  | {
      kind: 'execute';
      sql: string;
      params?: SqlParams;
      expectedMaxRows?: number;
      dryRun: boolean;
      limits: SizeLimits;
    }
  | { kind: 'insertRows'; table: string; rows: Row[]; returning: boolean; limits: SizeLimits }
  | {
      kind: 'updateRows';
      table: string;
      set: Row;
      where: Filter[];
      expectedMaxRows: number;
      dryRun: boolean;
      limits: SizeLimits;
    }
  | {
      kind: 'deleteRows';
      table: string;
      where: Filter[];
      expectedMaxRows: number;
      dryRun: boolean;
      limits: SizeLimits;
    }
  /** Runs a migration and rolls it back: its statement count and the schema before and after. */
  | { kind: 'planMigration'; sql: string }
  /** Applies a planned migration if the schema is still `before` and it leaves `after`. */
  | { kind: 'applyMigration'; sql: string; before: string; after: string };

/** A judgedQuery's answer: the rows, and the schema version at which its program is bounded. */
export interface JudgedRead {
  result: ReadResult;
  boundedAt: number | null;
}

export type SqlJobKind = SqlJob['kind'];
export const READ_JOBS: ReadonlySet<SqlJobKind> = new Set([
  'query',
  'judgedQuery',
  'explain',
  'listTables',
]);

export function runJob(db: Database.Database, job: SqlJob): unknown {
  switch (job.kind) {
    case 'query':
      return runQuery(db, job.sql, job.params, job.limits);
    case 'judgedQuery':
      return {
        result: runQuery(db, job.sql, job.params, job.limits),
        boundedAt: boundedAt(db, job.sql, job.params),
      } satisfies JudgedRead;
    case 'explain':
      return explainQuery(db, job.sql, job.params);
    case 'listTables':
      return listTables(db, job.pattern, job.includeViews);
    case 'execute':
      return execute(db, job.sql, job.params, job);
    case 'insertRows':
      return insertRows(db, job.table, job.rows, job);
    case 'updateRows':
      return updateRows(db, job.table, job.set, job.where, job);
    case 'deleteRows':
      return deleteRows(db, job.table, job.where, job);
    case 'planMigration':
      return planMigration(db, job.sql);
    case 'applyMigration':
      return applyMigration(db, job);
  }
}
