import { Inject, Injectable, Logger } from '@nestjs/common';
import Database from 'better-sqlite3';
import { databaseConfig } from '../../config/configuration.js';
import type { SqliteDatabaseSettings } from '../../config/settings.js';
import { type LedgerRow, MigrationLedger } from '../../internal/migration-ledger.js';
import { messageOf, ToolError } from '../../mcp/tool-context.js';
import type { LedgerStatus, MigrationRequest, MigrationResult } from '../engine.js';
import { logSettled, migrationResult, refuseReapply } from '../migration-rules.js';
import { SqlExecutor } from './sql-executor.js';
import { SqliteDatabase } from './sqlite-database.js';
import {
  type MigrationOutcome,
  type MigrationPlan,
  migrationChecksum,
  migrationStatements,
  schemaFingerprint,
} from './migrations.js';

type Settling = Pick<LedgerRow, 'id' | 'name' | 'schemaBefore' | 'schemaAfter'>;

/**
 * apply_migration across two files: the DDL runs on the application database (a SQL worker), its
 * ledger row lives in the internal database. The row is committed `pending`, with the schema's
 * fingerprint before and after (from a rolled-back run), before the DDL is applied; the DDL
 * commits only from that before-state to that after-state; then the row is settled. A row left
 * pending (a crash, a worker killed at its deadline) is settled by comparing the schema with the
 * two fingerprints: after = applied, before = failed, neither = diverged (logged as an error).
 */
@Injectable()
export class SchemaMigrations {
  private readonly logger = new Logger(SchemaMigrations.name);
  /** One migration at a time in this process: each is planned on the schema the last one left. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sql: SqlExecutor,
    private readonly database: SqliteDatabase,
    private readonly ledger: MigrationLedger,
    // Provided in SQLite mode only (SqliteModule), where the settings are SQLite's.
    @Inject(databaseConfig.KEY) private readonly cfg: SqliteDatabaseSettings,
  ) {}

  apply(request: MigrationRequest): Promise<MigrationResult> {
    const result = this.turn.then(() => this.applyInTurn(request));
    this.turn = result.catch(() => undefined);
    return result;
  }

  /**
   * At start-up: settles what a stopped server left pending, and warns when the schema is not the
   * one the last applied migration left (it was changed outside apply_migration).
   */
  reconcile(): void {
    const pending = this.ledger.pending();
    if (pending.length > 0)
      this.withWriteLock((current) => this.settleInterrupted(pending, current));
    const last = this.ledger.lastApplied();
    if (last && this.fingerprint() !== last.schemaAfter)
      this.logger.warn(
        `The application database's schema differs from the one migration ${last.name} left: it was changed outside apply_migration`,
      );
  }

  private async applyInTurn(request: MigrationRequest): Promise<MigrationResult> {
    const { name, sql, dryRun } = request;
    const checksum = migrationChecksum(sql);
    const result = migrationResult(request, checksum);

    let existing = this.ledger.live(name);
    if (existing?.status === 'pending') {
      // Its settling failed (the internal database was not writable): settle it now.
      this.settleBySchema(existing, 'its outcome could not be recorded');
      existing = this.ledger.live(name);
    }
    if (existing) {
      refuseReapply(
        request,
        checksum,
        existing,
        'the schema then matched neither its state before nor after it',
      );
      return result(false, migrationStatements(sql).length);
    }

    const plan = await this.sql.run<MigrationPlan>(
      { kind: 'planMigration', sql },
      request.principal,
    );
    if (dryRun) return result(false, plan.statements);

    const row: Settling = {
      id: this.ledger.open({
        name,
        checksum,
        sql,
        appliedBy: request.principal.subject,
        clientId: request.principal.clientId ?? null,
        schemaBefore: plan.before,
        schemaAfter: plan.after,
      }),
      name,
      schemaBefore: plan.before,
      schemaAfter: plan.after,
    };
    let outcome: MigrationOutcome;
    try {
      outcome = await this.sql.run<MigrationOutcome>(
        { kind: 'applyMigration', sql, before: plan.before, after: plan.after },
        request.principal,
      );
    } catch (error) {
      // No answer from the worker (its deadline, a crash): the schema tells what happened.
      if (this.settleBySchema(row, messageOf(error)) === 'applied')
        return result(true, plan.statements);
      throw error;
    }
    if (!outcome.applied) {
      this.ledger.settle(row.id, 'failed', outcome.message);
      throw new ToolError(outcome.message, outcome.code);
    }
    this.ledger.settle(row.id, 'applied', null);
    return result(true, plan.statements);
  }

  private settleInterrupted(rows: LedgerRow[], current: string): void {
    for (const row of rows) {
      const status = this.settleBySchema(row, 'interrupted: the server stopped', current);
      logSettled(this.logger, row.name, status);
    }
  }

  /**
   * Runs `settle` with the schema read under the write lock: a SQL worker of a server that was
   * killed during a migration may still be running it, and has then committed or rolled back.
   */
  private withWriteLock(settle: (current: string) => void): void {
    const db = new Database(this.cfg.path, { fileMustExist: true });
    try {
      db.pragma(`busy_timeout = ${this.cfg.busyTimeoutMs}`);
      try {
        db.exec('BEGIN IMMEDIATE');
      } catch (error) {
        throw new Error(
          `the application database stayed locked for ${this.cfg.busyTimeoutMs} ms (DATABASE_BUSY_TIMEOUT_MS) while ScopeDB settled an interrupted migration: another process is writing it, such as a SQL worker of a server that was killed; start again once it is done`,
          { cause: error },
        );
      }
      try {
        settle(schemaFingerprint(db));
      } finally {
        db.exec('ROLLBACK');
      }
    } finally {
      db.close();
    }
  }

  private settleBySchema(
    row: Settling,
    cause: string,
    current = this.fingerprint(),
  ): Exclude<LedgerStatus, 'pending'> {
    if (current === row.schemaAfter) {
      this.ledger.settle(row.id, 'applied', null);
      return 'applied';
    }
    if (current === row.schemaBefore) {
      this.ledger.settle(row.id, 'failed', `not applied (${cause})`);
      return 'failed';
    }
    this.ledger.settle(
      row.id,
      'diverged',
      `the schema matched neither the state before nor the state after the migration (${cause})`,
    );
    this.logger.error(
      `Migration ${row.name} did not settle: the application database's schema matches neither the state before nor the state after it (${cause}); check the schema`,
    );
    return 'diverged';
  }

  private fingerprint(): string {
    return schemaFingerprint(this.database.readConnection);
  }
}
