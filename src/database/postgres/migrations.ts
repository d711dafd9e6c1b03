import { createHash } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type pg from 'pg';
import { ToolError } from '../../mcp/tool-context.js';
import type { LedgerStatus, MigrationRequest, MigrationResult } from '../engine.js';
import { SqlError } from '../sql-values.js';
import { pgError } from './errors.js';
import type { FairPool } from './fair-pool.js';
import type { Attempt, LedgerStore } from './ledger-store.js';
import { beginStatements, type Deadline, releaseLease } from './session.js';
import { firstWord, splitStatements, TRANSACTION_CONTROL } from './statements.js';

/** pg_advisory_xact_lock key: one migration at a time across every replica on this database. */
const MIGRATION_LOCK_KEY = 7_265_044_003;

const checksumOf = (sql: string) => createHash('sha256').update(sql).digest('hex');

/** The statements of a migration script; refuses an empty one and transaction control. */
export function migrationStatements(sql: string): string[] {
  const statements = splitStatements(sql);
  if (statements.length === 0)
    throw new SqlError('The migration has no SQL statement.', 'EMPTY_MIGRATION');
  for (const statement of statements) {
    const word = firstWord(statement);
    if (TRANSACTION_CONTROL.has(word))
      throw new SqlError(
        `${word} is not allowed in a migration: apply_migration runs the whole script as one transaction, and commits it itself.`,
        'TRANSACTION_CONTROL',
      );
  }
  return statements;
}

/**
 * apply_migration on PostgreSQL: the whole script in one transaction (PostgreSQL's DDL is
 * transactional), serialised across replicas by an advisory lock taken inside it. Before the DDL
 * runs, the ledger row is committed `pending` with the transaction's id; after COMMIT it is settled.
 * A row left pending (a crash between the two) is settled from PostgreSQL's own record of that
 * transaction (pg_xact_status): committed = applied, aborted = failed.
 */
export class PostgresMigrations {
  private readonly logger = new Logger(PostgresMigrations.name);

  constructor(
    private readonly pool: FairPool,
    private readonly ledger: LedgerStore,
    private readonly deadline: Deadline,
  ) {}

  /** At start-up: settles what a stopped server left pending. */
  async reconcile(): Promise<void> {
    const pending = await this.ledger.pending();
    if (pending.length === 0) return;
    const client = await this.pool.pool.connect();
    try {
      for (const row of pending) {
        const status = await this.settleByTransaction(
          client,
          row,
          'interrupted: the server stopped',
        );
        if (status === 'applied')
          this.logger.log(`Migration ${row.name} had been applied; the ledger says so now`);
        if (status === 'failed')
          this.logger.warn(`Migration ${row.name} was interrupted before it was applied`);
      }
    } finally {
      client.release();
    }
  }

  async apply(request: MigrationRequest): Promise<MigrationResult> {
    const { name, sql, dryRun } = request;
    const checksum = checksumOf(sql);
    const statements = migrationStatements(sql);
    const result = (applied: boolean): MigrationResult => ({
      name,
      applied,
      dry_run: dryRun,
      statements: statements.length,
      checksum,
    });

    const lease = await this.pool.acquire(request.principal.subject);
    const { client } = lease;
    let reusable = false;
    let id: number | undefined;
    try {
      await beginStatements(client, 'READ WRITE', this.deadline);
      await client.query({
        text: 'SELECT pg_advisory_xact_lock($1)',
        values: [MIGRATION_LOCK_KEY],
      });
      // Under the lock: what another replica left or did is settled and visible now.
      const existing = await this.liveSettled(client, name);
      if (existing) {
        await client.query('ROLLBACK');
        reusable = true;
        if (existing.checksum !== checksum)
          throw new ToolError(
            `A migration named ${name} was already ${existing.status === 'applied' ? 'applied' : 'attempted'} with different SQL; choose a new name.`,
            'MIGRATION_CONFLICT',
          );
        if (existing.status === 'diverged')
          throw new ToolError(
            `Migration ${name} was interrupted and its outcome is unknown; check the schema, then apply what is missing under a new name.`,
            'MIGRATION_DIVERGED',
          );
        return result(false);
      }
      if (!dryRun) {
        const { rows } = await client.query<{ xid: string }>({
          text: 'SELECT pg_current_xact_id()::text AS xid',
          queryMode: 'extended',
        } as pg.QueryConfig);
        id = await this.ledger.open({
          name,
          checksum,
          sql,
          appliedBy: request.principal.subject,
          clientId: request.principal.clientId ?? null,
          transactionId: rows[0].xid,
        });
      }
      for (const statement of statements) {
        await client.query({ text: statement, queryMode: 'extended' } as pg.QueryConfig);
        if (client.getTransactionStatus() !== 'T')
          throw new SqlError(
            'A statement ended the migration transaction; the migration was rolled back.',
            'TRANSACTION_CONTROL',
          );
      }
      await client.query(dryRun ? 'ROLLBACK' : 'COMMIT');
      reusable = true;
      if (id !== undefined) await this.ledger.settle(id, 'applied', null);
      return result(!dryRun);
    } catch (error) {
      const failure =
        error instanceof ToolError || error instanceof SqlError
          ? error
          : pgError(error, this.deadline);
      if (client.getTransactionStatus() !== 'I')
        await client.query('ROLLBACK').then(
          () => (reusable = true),
          () => (reusable = false),
        );
      if (id !== undefined) await this.settleAfterFailure(id, name, failure.message, client);
      throw failure;
    } finally {
      await releaseLease(lease, reusable);
    }
  }

  /** The live row of a name, once a pending one has been settled from its transaction's fate. */
  private async liveSettled(client: pg.PoolClient, name: string): Promise<Attempt | undefined> {
    const row = await this.ledger.live(name);
    if (row?.status !== 'pending') return row;
    await this.settleByTransaction(client, row, 'its outcome could not be recorded');
    return this.ledger.live(name);
  }

  /** A failed apply: its transaction rolled back unless COMMIT's answer was lost; PostgreSQL knows. */
  private async settleAfterFailure(
    id: number,
    name: string,
    message: string,
    client: pg.PoolClient,
  ): Promise<void> {
    const row = (await this.ledger.pending()).find((attempt) => attempt.id === id);
    if (!row) return;
    try {
      if (client.getTransactionStatus() === 'I')
        await this.settleByTransaction(client, row, message);
      else await this.ledger.settle(id, 'failed', message);
    } catch {
      // The connection is gone: the next apply or start-up settles it from pg_xact_status.
      this.logger.warn(`Migration ${name} stays pending until its transaction's outcome is read`);
    }
  }

  private async settleByTransaction(
    client: pg.ClientBase,
    row: Attempt,
    cause: string,
  ): Promise<LedgerStatus> {
    const fate =
      row.transactionId === null
        ? null
        : (
            await client.query<{ status: string | null }>(
              'SELECT pg_xact_status($1::text::xid8) AS status',
              [row.transactionId],
            )
          ).rows[0].status;
    if (fate === 'in progress') return 'pending';
    const status: Exclude<LedgerStatus, 'pending'> =
      fate === 'committed' ? 'applied' : fate === 'aborted' ? 'failed' : 'diverged';
    await this.ledger.settle(
      row.id,
      status,
      status === 'applied'
        ? null
        : status === 'failed'
          ? `not applied (${cause})`
          : `the outcome of its transaction is no longer known to PostgreSQL (${cause})`,
    );
    if (status === 'diverged')
      this.logger.error(
        `Migration ${row.name} did not settle: its transaction's outcome is unknown (${cause}); check the schema`,
      );
    return status;
  }
}
