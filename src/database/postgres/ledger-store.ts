import pg from 'pg';
import { STORE_SETUP_LOCK_KEY } from '../../audit/audit-database.js';
import type { PostgresInternalSettings } from '../../config/settings.js';
import type { MigrationLedger } from '../../internal/migration-ledger.js';
import { LEDGER_TABLE } from '../../internal/store-tables.js';
import type { LedgerEntry, LedgerStatus } from '../engine.js';
import { type StoreIdentity, storeIdentity } from './roles.js';

/** A ledger row as PostgreSQL's migrations need it: the transaction that applies it settles it. */
export interface Attempt {
  id: number;
  name: string;
  checksum: string;
  status: LedgerStatus;
  /** The id of the application database's transaction that runs the DDL (pg_current_xact_id). */
  transactionId: string | null;
}

export interface NewAttempt {
  name: string;
  checksum: string;
  sql: string;
  appliedBy: string;
  clientId: string | null;
  transactionId: string;
}

/**
 * Where the PostgreSQL engine keeps its migrations ledger: the internal SQLite file (one server),
 * or the internal PostgreSQL database's `scopedb` schema (replicas share it). Either way a store
 * the tools' roles cannot reach.
 */
export abstract class LedgerStore {
  /** The row that holds the name (pending, applied or diverged); failed attempts do not. */
  abstract live(name: string): Promise<Attempt | undefined>;
  /** Records an attempt as pending (committed) and returns its id. */
  abstract open(attempt: NewAttempt): Promise<number>;
  /** Settles a row that is still pending; false when another server settled it first. */
  abstract settle(
    id: number,
    status: Exclude<LedgerStatus, 'pending'>,
    error: string | null,
  ): Promise<boolean>;
  abstract pending(): Promise<Attempt[]>;
  /** Every row, oldest first. */
  abstract list(): Promise<LedgerEntry[]>;
  /** Where it is, when that is a PostgreSQL database (for the start-up reachability check). */
  abstract identity(): Promise<StoreIdentity | undefined>;
  abstract close(): Promise<void>;
}

/** The transaction id is kept in the SQLite ledger's schemaBefore column, marked as such. */
const XACT_PREFIX = 'pg-xact:';

/** The ledger in the internal SQLite file (INTERNAL_DATABASE_URL=sqlite:..., the default). */
export class SqliteLedgerStore extends LedgerStore {
  constructor(private readonly ledger: MigrationLedger) {
    super();
  }

  live(name: string): Promise<Attempt | undefined> {
    const row = this.ledger.live(name);
    return Promise.resolve(
      row && {
        id: row.id,
        name: row.name,
        checksum: row.checksum,
        status: row.status,
        transactionId: transactionOf(row.schemaBefore),
      },
    );
  }

  open(attempt: NewAttempt): Promise<number> {
    return Promise.resolve(
      this.ledger.open({
        ...attempt,
        schemaBefore: `${XACT_PREFIX}${attempt.transactionId}`,
        schemaAfter: null,
      }),
    );
  }

  settle(id: number, status: Exclude<LedgerStatus, 'pending'>, error: string | null) {
    // One server writes this file: nobody else settles its rows.
    this.ledger.settle(id, status, error);
    return Promise.resolve(true);
  }

  pending(): Promise<Attempt[]> {
    return Promise.resolve(
      this.ledger.pending().map((row) => ({
        id: row.id,
        name: row.name,
        checksum: row.checksum,
        status: row.status,
        transactionId: transactionOf(row.schemaBefore),
      })),
    );
  }

  list(): Promise<LedgerEntry[]> {
    return Promise.resolve(this.ledger.list());
  }

  identity(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function transactionOf(schemaBefore: string | null): string | null {
  return schemaBefore?.startsWith(XACT_PREFIX) ? schemaBefore.slice(XACT_PREFIX.length) : null;
}


/**
 * The ledger in the internal PostgreSQL database, schema `scopedb`, owned by the role of
 * INTERNAL_DATABASE_URL: rows are written pending and settled once; the database refuses any other
 * change and every delete (as in the SQLite file).
 */
export class PostgresLedgerStore extends LedgerStore {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly table: string,
  ) {
    super();
  }

  static async open(settings: PostgresInternalSettings): Promise<PostgresLedgerStore> {
    const pool = new pg.Pool({
      connectionString: settings.url,
      max: 2,
      connectionTimeoutMillis: 10_000,
      statement_timeout: 10_000,
      application_name: 'scopedb-internal',
      // Unqualified names (current_schema() in the reachability check) are ScopeDB's schema.
      options: `-c search_path=${settings.schema}`,
    });
    pool.on('error', () => undefined); // an idle connection's error: the next query reports it
    const client = await pool.connect().catch(async (error: unknown) => {
      await pool.end();
      throw error;
    });
    const schema = client.escapeIdentifier(settings.schema);
    const table = `${schema}.${client.escapeIdentifier(LEDGER_TABLE)}`;
    try {
      await client.query('SELECT pg_advisory_lock($1)', [STORE_SETUP_LOCK_KEY]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(`REVOKE ALL ON SCHEMA ${schema} FROM PUBLIC`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${table} (
          id bigserial PRIMARY KEY,
          name varchar(64) NOT NULL,
          checksum varchar(64) NOT NULL,
          sql text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now(),
          applied_by varchar(255) NOT NULL,
          client_id varchar(255),
          status varchar(16) NOT NULL CHECK (status IN ('pending', 'applied', 'failed', 'diverged')),
          transaction_id text,
          error text,
          settled_at timestamptz
        )`,
      );
      await client.query(
        `CREATE UNIQUE INDEX IF NOT EXISTS scopedb_migrations_live ON ${table} (name) WHERE status <> 'failed'`,
      );
      await client.query(
        `CREATE OR REPLACE FUNCTION ${schema}.scopedb_migrations_settle_once() RETURNS trigger
         LANGUAGE plpgsql AS $$
         BEGIN
           IF TG_OP = 'DELETE' THEN RAISE EXCEPTION 'scopedb_migrations keeps every row'; END IF;
           IF OLD.status <> 'pending' OR NEW.status = 'pending'
              OR (NEW.id, NEW.name, NEW.checksum, NEW.sql, NEW.applied_at, NEW.applied_by,
                  NEW.client_id, NEW.transaction_id)
                 IS DISTINCT FROM (OLD.id, OLD.name, OLD.checksum, OLD.sql, OLD.applied_at,
                  OLD.applied_by, OLD.client_id, OLD.transaction_id) THEN
             RAISE EXCEPTION 'a scopedb_migrations row changes once, from pending to its outcome';
           END IF;
           RETURN NEW;
         END $$`,
      );
      await client.query(
        `CREATE OR REPLACE TRIGGER scopedb_migrations_settle_once BEFORE UPDATE OR DELETE ON ${table}
         FOR EACH ROW EXECUTE FUNCTION ${schema}.scopedb_migrations_settle_once()`,
      );
      await client.query('SELECT pg_advisory_unlock($1)', [STORE_SETUP_LOCK_KEY]);
      client.release();
    } catch (error) {
      client.release(true);
      await pool.end();
      throw error;
    }
    return new PostgresLedgerStore(pool, table);
  }

  async live(name: string): Promise<Attempt | undefined> {
    const { rows } = await this.pool.query<Attempt>(
      `SELECT id::int AS id, name, checksum, status, transaction_id AS "transactionId" FROM ${this.table} WHERE name = $1 AND status <> 'failed'`,
      [name],
    );
    return rows[0];
  }

  async open(attempt: NewAttempt): Promise<number> {
    const { rows } = await this.pool.query<{ id: number }>(
      `INSERT INTO ${this.table} (name, checksum, sql, applied_by, client_id, status, transaction_id)
       VALUES ($1, $2, $3, $4, $5, 'pending', $6) RETURNING id::int AS id`,
      [
        attempt.name,
        attempt.checksum,
        attempt.sql,
        attempt.appliedBy,
        attempt.clientId,
        attempt.transactionId,
      ],
    );
    return rows[0].id;
  }

  async settle(
    id: number,
    status: Exclude<LedgerStatus, 'pending'>,
    error: string | null,
  ): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE ${this.table} SET status = $2, error = $3, settled_at = now() WHERE id = $1 AND status = 'pending'`,
      [id, status, error],
    );
    return rowCount === 1;
  }

  async pending(): Promise<Attempt[]> {
    const { rows } = await this.pool.query<Attempt>(
      `SELECT id::int AS id, name, checksum, status, transaction_id AS "transactionId" FROM ${this.table} WHERE status = 'pending' ORDER BY id`,
    );
    return rows;
  }

  async list(): Promise<LedgerEntry[]> {
    const { rows } = await this.pool.query<LedgerEntry>(
      `SELECT name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS applied_at,
              applied_by, client_id, sql, status
       FROM ${this.table} ORDER BY applied_at, id`,
    );
    return rows;
  }

  async identity(): Promise<StoreIdentity> {
    const client = await this.pool.connect();
    try {
      return await storeIdentity(
        async (sql) =>
          (await client.query<{ user: string; database: string; schema: string }>(sql)).rows,
        'the migrations ledger',
        [LEDGER_TABLE],
      );
    } finally {
      client.release();
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
