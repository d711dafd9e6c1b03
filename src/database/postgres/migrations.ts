import { createHash } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type pg from 'pg';
import { messageOf } from '../../mcp/tool-context.js';
import type { LedgerStatus, MigrationRequest, MigrationResult } from '../engine.js';
import { logSettled, migrationResult, refuseReapply } from '../migration-rules.js';
import { SqlError } from '../sql-values.js';
import type { FairPool } from './fair-pool.js';
import type { Attempt, LedgerStore } from './ledger-store.js';
import type { Deadline } from './deadline.js';
import { writeTransaction } from './session.js';
import { runStatement } from './statement.js';
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
        logSettled(this.logger, row.name, status);
      }
    } finally {
      client.release();
    }
  }

  async apply(request: MigrationRequest): Promise<MigrationResult> {
    const { name, sql, dryRun } = request;
    const checksum = checksumOf(sql);
    const statements = migrationStatements(sql);
    const result = migrationResult(request, checksum);
    const lease = await this.pool.acquire(request.principal.subject);
    const { client } = lease;
    let opened: { id: number; transactionId: string } | undefined;
    let existing: Attempt | undefined;
    try {
      existing = await writeTransaction(
        client,
        this.deadline,
        async () => {
          await client.query({
            text: 'SELECT pg_catalog.pg_advisory_xact_lock($1)',
            values: [MIGRATION_LOCK_KEY],
          });
          // Under the lock: what another replica left or did is settled and visible now.
          const found = await this.liveSettled(client, name);
          if (found) return found;
          if (!dryRun) {
            const { rows } = await client.query<{ xid: string }>({
              text: 'SELECT pg_catalog.pg_current_xact_id()::pg_catalog.text AS xid',
              values: [],
            });
            const transactionId = rows[0].xid;
            opened = {
              transactionId,
              id: await this.ledger.open({
                name,
                checksum,
                sql,
                appliedBy: request.principal.subject,
                clientId: request.principal.clientId ?? null,
                transactionId,
              }),
            };
          }
          for (const statement of statements)
            await runStatement(client, statement, [], {
              drain: true,
              limit: 1,
              onRow: () => false,
            });
          return undefined;
        },
        { commit: !dryRun },
      );
    } catch (error) {
      const fate = opened
        ? await this.settleAfterFailure(opened.id, name, opened.transactionId, error)
        : undefined;
      // The answer to COMMIT was lost (its deadline, the connection): PostgreSQL's record tells.
      if (fate === 'applied') return result(true, statements.length);
      if (fate === 'failed' && error instanceof SqlError && error.code === 'TIMEOUT')
        throw new SqlError(
          `${error.message.replace(/ whether it was committed is unknown\. Check before retrying\.$/, '')} PostgreSQL rolled the migration back: nothing was applied.`,
          'TIMEOUT',
        );
      throw error;
    } finally {
      lease.done();
    }
    if (existing) {
      refuseReapply(request, checksum, existing, 'its outcome is unknown');
      return result(false, statements.length);
    }
    if (opened) await this.ledger.settle(opened.id, 'applied', null);
    return result(!dryRun, statements.length);
  }

  /** The live row of a name, once a pending one has been settled from its transaction's fate. */
  private async liveSettled(client: pg.PoolClient, name: string): Promise<Attempt | undefined> {
    const row = await this.ledger.live(name);
    if (row?.status !== 'pending') return row;
    await this.settleByTransaction(client, row, 'its outcome could not be recorded');
    return this.ledger.live(name);
  }

  /**
   * A failed apply: rolled back, unless it failed while COMMIT was under way (a deadline, a lost
   * connection); PostgreSQL's record of the transaction tells, read on a connection of its own.
   */
  private async settleAfterFailure(
    id: number,
    name: string,
    transactionId: string,
    error: unknown,
  ): Promise<LedgerStatus | undefined> {
    try {
      const client = await this.pool.pool.connect();
      try {
        return await this.settleByTransaction(
          client,
          { id, name, checksum: '', status: 'pending', transactionId },
          messageOf(error),
        );
      } finally {
        client.release();
      }
    } catch (failure) {
      // Left pending: the next apply of any migration, or the next start, settles it.
      this.logger.warn(
        `Migration ${name} stays pending until its outcome can be read: ${messageOf(failure)}`,
      );
      return undefined;
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
              'SELECT pg_catalog.pg_xact_status($1::pg_catalog.text::pg_catalog.xid8) AS status',
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
