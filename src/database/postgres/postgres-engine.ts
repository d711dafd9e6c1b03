import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import pg from 'pg';
import { AuditDatabase } from '../../audit/audit-database.js';
import type { Principal } from '../../auth/principal.js';
import { databaseConfig } from '../../config/configuration.js';
import { Metrics } from '../../metrics/metrics.service.js';
import type { PostgresDatabaseSettings, PostgresUrl } from '../../config/settings.js';
import {
  DatabaseEngine,
  type DeleteRowsRequest,
  type ExecuteRequest,
  type ExplainRequest,
  type ExplainResult,
  type InsertRowsRequest,
  type LedgerEntry,
  type ListTablesRequest,
  type MigrationRequest,
  type MigrationResult,
  type QueryRequest,
  type ReadResult,
  type TableDescription,
  type TableList,
  type UpdateRowsRequest,
  type WriteResult,
} from '../engine.js';
import { AUDIT_MIGRATIONS_TABLE, AUDIT_TABLE } from '../internal-tables.js';
import type { SizeLimits } from '../result-rows.js';
import { InFlightLimit } from '../in-flight-limit.js';
import { describeTable, listTables } from './catalog.js';
import { FairPool, type Lease } from './fair-pool.js';
import { LedgerStore } from './ledger-store.js';
import { PostgresMigrations } from './migrations.js';
import { explainQuery } from './explain.js';
import { runQuery } from './reads.js';
import { checkRole, checkUnreachable, type StoreIdentity, storeIdentity } from './roles.js';
import { limitMessages, MAX_MESSAGE_MIB, setBackendControl } from './connection.js';
import type { Deadline } from './deadline.js';
import { deleteRows, execute, insertRows, updateRows } from './writes.js';

/**
 * Ends a backend of the role from a connection of its own (a role may end its own sessions), and
 * waits for it to be gone; false when it had ended already.
 */
async function terminate(role: PostgresUrl, pid: number): Promise<boolean> {
  const client = new pg.Client({
    connectionString: role.url,
    application_name: 'scopedb-terminator',
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined); // the query below reports what matters
  await client.connect();
  try {
    const { rows } = await client.query<{ ended: boolean; gone: boolean }>(
      `SELECT pg_catalog.pg_terminate_backend($1, 5000) AS ended,
              NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1) AS gone`,
      [pid],
    );
    if (rows[0]?.ended) return true;
    if (rows[0]?.gone) return false;
    throw new Error('pg_terminate_backend did not end it');
  } finally {
    await client.end();
  }
}

/** Deadline of the catalog tools (list_tables, describe_table): bounded catalog reads. */
const CATALOG_TIMEOUT_MS = 30_000;

/**
 * PostgreSQL behind the engine interface. Caller SQL runs on pooled connections of the role of
 * DATABASE_URL (reads on DATABASE_READER_URL's when set), always through the extended protocol,
 * in a transaction with per-call deadlines set in the database; each connection's session is reset
 * before it is reused (session.ts). ScopeDB's own tables are where these roles have no privilege.
 */
@Injectable()
export class PostgresEngine extends DatabaseEngine implements OnModuleInit, OnModuleDestroy {
  readonly dialect = 'PostgreSQL';
  private readonly logger = new Logger(PostgresEngine.name);
  private readonly writer: FairPool;
  private readonly reader: FairPool;
  private readonly migrations: PostgresMigrations;
  private readonly writeDeadline: Deadline;
  /** One connection of its own for /readyz: a busy pool must not read as a database that is down. */
  private readonly probe: pg.Pool;

  constructor(
    // Provided in PostgreSQL mode only (PostgresModule), where the settings are PostgreSQL's.
    @Inject(databaseConfig.KEY) private readonly cfg: PostgresDatabaseSettings,
    private readonly ledger: LedgerStore,
    private readonly audit: AuditDatabase,
    private readonly metrics: Metrics,
  ) {
    super();
    const inFlight = new InFlightLimit(cfg.maxInFlightPerPrincipal);
    const fair = (role: PostgresUrl, name: string) =>
      new FairPool(this.pool(role, name), {
        size: cfg.poolSize,
        queueTimeoutMs: cfg.queueTimeoutMs,
        inFlight,
      });
    this.writer = fair(cfg.connection, 'scopedb-tools');
    this.reader = cfg.reader ? fair(cfg.reader, 'scopedb-reader') : this.writer;
    this.writeDeadline = { ms: cfg.writeTimeoutMs, source: 'WRITE_TIMEOUT_MS' };
    this.probe = this.pool(cfg.connection, 'scopedb-probe', 1);
    this.migrations = new PostgresMigrations(this.writer, ledger, this.writeDeadline);
  }

  private pool(role: PostgresUrl, applicationName: string, size = this.cfg.poolSize): pg.Pool {
    const pool = new pg.Pool({
      connectionString: role.url,
      max: size,
      connectionTimeoutMillis: 10_000,
      application_name: applicationName,
    });
    // An idle connection that fails (the server restarted) leaves the pool; the next call reconnects.
    pool.on('error', (error) =>
      this.logger.warn(`an idle database connection failed: ${error.message}`),
    );
    // Should a backend of this pool outlive its deadline, a connection of the same role ends it.
    pool.on('connect', (client) => {
      setBackendControl(client, {
        terminate: (pid) => terminate(role, pid),
        observer: this.metrics,
      });
      limitMessages(client, MAX_MESSAGE_MIB * 1_048_576);
    });
    return pool;
  }

  /**
   * Before the server listens: each role may not be a superuser or bypass row security (unless
   * DATABASE_ALLOW_PRIVILEGED_ROLE), and may not reach ScopeDB's own tables; then the ledger is
   * settled.
   */
  async onModuleInit(): Promise<void> {
    try {
      const stores = await this.storeIdentities();
      const roles: [FairPool, PostgresUrl, string][] = [
        [this.writer, this.cfg.connection, 'DATABASE_URL'],
      ];
      if (this.cfg.reader) roles.push([this.reader, this.cfg.reader, 'DATABASE_READER_URL']);
      for (const [pool, url, setting] of roles) {
        const client = await pool.pool.connect().catch((error: Error) => {
          throw new Error(
            `the database (${setting}=${url.redactedUrl}) could not be reached: ${error.message}`,
          );
        });
        try {
          await checkRole(client, setting, this.cfg.allowPrivilegedRole, this.logger);
          await checkUnreachable(client, setting, stores);
        } finally {
          client.release();
        }
      }
      await this.migrations.reconcile();
    } catch (error) {
      await this.onModuleDestroy();
      throw error;
    }
  }

  /** ScopeDB's own stores that are PostgreSQL databases: the audit log's, the ledger's. */
  private async storeIdentities(): Promise<StoreIdentity[]> {
    const stores: StoreIdentity[] = [];
    const source = this.audit.dataSource;
    if (source.options.type === 'postgres')
      stores.push(
        await storeIdentity((sql) => source.query(sql), 'the audit log', [
          AUDIT_TABLE,
          AUDIT_MIGRATIONS_TABLE,
        ]),
      );
    const ledger = await this.ledger.identity();
    if (ledger) stores.push(ledger);
    return stores;
  }

  get limits(): SizeLimits {
    return { maxBytes: this.cfg.maxResultBytes, maxCellChars: this.cfg.maxCellChars };
  }

  /** Runs work on a leased connection; the session is reset (or the connection dropped) after. */
  private async withLease<T>(
    pool: FairPool,
    principal: Principal,
    work: (client: pg.PoolClient) => Promise<T>,
  ): Promise<T> {
    const lease: Lease = await pool.acquire(principal.subject);
    try {
      return await work(lease.client);
    } finally {
      lease.done();
    }
  }

  listTables(request: ListTablesRequest, principal: Principal): Promise<TableList> {
    return this.withLease(this.reader, principal, (client) =>
      listTables(client, request, { ms: CATALOG_TIMEOUT_MS, source: 'the catalog deadline' }),
    );
  }

  describeTable(name: string, principal: Principal): Promise<TableDescription | undefined> {
    return this.withLease(this.reader, principal, (client) =>
      describeTable(client, name, { ms: CATALOG_TIMEOUT_MS, source: 'the catalog deadline' }),
    );
  }

  query(request: QueryRequest, principal: Principal): Promise<ReadResult> {
    return this.withLease(this.reader, principal, (client) =>
      runQuery(client, request, this.limits, { ms: request.timeoutMs, source: 'timeout_ms' }),
    );
  }

  explain(request: ExplainRequest, principal: Principal): Promise<ExplainResult> {
    return this.withLease(this.reader, principal, (client) =>
      explainQuery(client, request, { ms: request.timeoutMs, source: 'timeout_ms' }),
    );
  }

  execute(request: ExecuteRequest, principal: Principal): Promise<WriteResult> {
    return this.withLease(this.writer, principal, (client) =>
      execute(client, request, this.limits, this.writeDeadline),
    );
  }

  insertRows(request: InsertRowsRequest, principal: Principal): Promise<WriteResult> {
    return this.withLease(this.writer, principal, (client) =>
      insertRows(client, request, this.limits, this.writeDeadline),
    );
  }

  updateRows(request: UpdateRowsRequest, principal: Principal): Promise<WriteResult> {
    return this.withLease(this.writer, principal, (client) =>
      updateRows(client, request, this.limits, this.writeDeadline),
    );
  }

  deleteRows(request: DeleteRowsRequest, principal: Principal): Promise<WriteResult> {
    return this.withLease(this.writer, principal, (client) =>
      deleteRows(client, request, this.limits, this.writeDeadline),
    );
  }

  applyMigration(request: MigrationRequest): Promise<MigrationResult> {
    return this.migrations.apply(request);
  }

  listMigrations(): Promise<LedgerEntry[]> {
    return this.ledger.list();
  }

  async ping(timeoutMs: number): Promise<void> {
    await this.probe.query({ text: 'SELECT 1', query_timeout: timeoutMs } as pg.QueryConfig);
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all([
      this.writer.close(),
      this.reader === this.writer ? undefined : this.reader.close(),
      this.ledger.close(),
      this.probe.ended ? undefined : this.probe.end(),
    ]);
  }
}
