import { Injectable, type OnModuleInit } from '@nestjs/common';
import type { Table } from 'typeorm';
import type { Principal } from '../../auth/principal.js';
import { LegacyUpgrade } from '../../internal/legacy-upgrade.js';
import { MigrationLedger } from '../../internal/migration-ledger.js';
import {
  DatabaseEngine,
  type DeleteRowsRequest,
  type ExecuteRequest,
  type ExplainRequest,
  type ExplainResult,
  type ForeignKeyDescription,
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
import type { SizeLimits } from '../result-rows.js';
import { SqlExecutor } from './sql-executor.js';
import { SqliteDatabase } from './sqlite-database.js';
import { SchemaMigrations } from './schema-migrations.js';

/** Deadline of list_tables, whose row counts are reads like any other (a worker's deadline). */
const LIST_TABLES_TIMEOUT_MS = 30_000;

/**
 * SQLite behind the engine interface: caller SQL runs in SqlExecutor's worker processes (deadline,
 * memory ceiling, fair shares), the catalog on the main thread's read-only connection, the ledger
 * in the internal database (SchemaMigrations).
 */
@Injectable()
export class SqliteEngine extends DatabaseEngine implements OnModuleInit {
  readonly dialect = 'SQLite';

  constructor(
    private readonly sql: SqlExecutor,
    private readonly database: SqliteDatabase,
    private readonly migrations: SchemaMigrations,
    private readonly ledger: MigrationLedger,
    private readonly upgrade: LegacyUpgrade,
  ) {
    super();
  }

  /** Before the server listens: moves what release 0.1.0 kept here, then settles the ledger. */
  async onModuleInit(): Promise<void> {
    await this.upgrade.run();
    this.migrations.reconcile();
  }

  get limits(): SizeLimits {
    return this.sql.limits;
  }

  listTables(request: ListTablesRequest, principal: Principal): Promise<TableList> {
    return this.sql.run<TableList>(
      { kind: 'listTables', pattern: request.pattern, includeViews: request.includeViews },
      principal,
      LIST_TABLES_TIMEOUT_MS,
    );
  }

  async describeTable(name: string): Promise<TableDescription | undefined> {
    const entry = this.database.resolve(name);
    if (!entry) return undefined;
    const { table, all, checks } = await this.database.describe(entry.name);
    const keyOf = (fk: Table['foreignKeys'][number]): ForeignKeyDescription => ({
      columns: fk.columnNames,
      referenced_table: fk.referencedTableName,
      referenced_columns: fk.referencedColumnNames,
      on_delete: fk.onDelete ?? null,
      on_update: fk.onUpdate ?? null,
    });
    return {
      name: entry.name,
      type: entry.type,
      columns: table.columns.map((c) => ({
        name: c.name,
        type: c.type + (c.length ? `(${c.length})` : ''),
        nullable: c.isNullable,
        default: c.default === undefined || c.default === null ? null : String(c.default),
        primary_key: c.isPrimary,
      })),
      primary_key: table.primaryColumns.map((c) => c.name),
      indexes: [
        ...table.indices.map((i) => ({
          name: i.name ?? '',
          columns: i.columnNames,
          unique: i.isUnique,
        })),
        ...table.uniques.map((u) => ({ name: u.name ?? '', columns: u.columnNames, unique: true })),
      ],
      foreign_keys: table.foreignKeys.map(keyOf),
      referenced_by: all.flatMap((other) =>
        other.foreignKeys
          .filter((fk) => fk.referencedTableName === entry.name)
          .map((fk) => ({ table: other.name, ...keyOf(fk) })),
      ),
      checks,
    };
  }

  query(request: QueryRequest, principal: Principal): Promise<ReadResult> {
    return this.sql.run<ReadResult>(
      {
        kind: 'query',
        sql: request.sql,
        params: request.params,
        limits: { ...this.sql.limits, maxRows: request.maxRows },
      },
      principal,
      request.timeoutMs,
    );
  }

  explain(request: ExplainRequest, principal: Principal): Promise<ExplainResult> {
    return this.sql.run<ExplainResult>(
      { kind: 'explain', sql: request.sql, params: request.params },
      principal,
      request.timeoutMs,
    );
  }

  execute(request: ExecuteRequest, principal: Principal): Promise<WriteResult> {
    return this.sql.run<WriteResult>(
      { kind: 'execute', ...request, limits: this.sql.limits },
      principal,
    );
  }

  insertRows(request: InsertRowsRequest, principal: Principal): Promise<WriteResult> {
    return this.sql.run<WriteResult>(
      { kind: 'insertRows', ...request, limits: this.sql.limits },
      principal,
    );
  }

  updateRows(request: UpdateRowsRequest, principal: Principal): Promise<WriteResult> {
    return this.sql.run<WriteResult>(
      { kind: 'updateRows', ...request, limits: this.sql.limits },
      principal,
    );
  }

  deleteRows(request: DeleteRowsRequest, principal: Principal): Promise<WriteResult> {
    return this.sql.run<WriteResult>(
      { kind: 'deleteRows', ...request, limits: this.sql.limits },
      principal,
    );
  }

  applyMigration(request: MigrationRequest): Promise<MigrationResult> {
    return this.migrations.apply(request);
  }

  listMigrations(): Promise<LedgerEntry[]> {
    return Promise.resolve(this.ledger.list());
  }

  ping(): Promise<void> {
    return this.database.ping();
  }
}
