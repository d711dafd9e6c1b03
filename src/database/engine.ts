import type { Principal } from '../auth/principal.js';
import type { SizeLimits } from './result-rows.js';
import type {
  ExplainResult,
  LedgerEntry,
  MigrationResult,
  ReadResult,
  TableDescription,
  TableList,
  WriteResult,
} from './results.js';
import type { Row, SqlParams, SqlValue } from './sql-values.js';

// The one interface the tools speak to; each engine implements it in a folder of its own
// (database/sqlite/, database/postgres/), chosen by DATABASE_URL's scheme in DatabaseModule.
//
// A third engine (MySQL/MariaDB) is one more folder, `database/mysql/`, with:
// - a DatabaseEngine subclass: a connection pool for tool SQL (a role with the least privilege)
//   and the same result shapes (rows through RowCollector, types mapped to JSON like these);
// - reads in a `START TRANSACTION READ ONLY` that is always rolled back, run as server-side
//   prepared statements (one statement each; the text protocol's multi-statements switched off),
//   `MAX_EXECUTION_TIME` / `innodb_lock_wait_timeout` per call and `KILL QUERY` at the deadline,
//   and the connection reset (`COM_RESET_CONNECTION`) before it is reused;
// - the catalog from information_schema, identifiers quoted by the driver (mysql2's escapeId);
// - apply_migration serialised with GET_LOCK (MySQL's DDL is not transactional: each statement
//   commits, so it is recorded statement by statement, and the ledger says how far it got);
// - a scheme in config/settings.ts (`mysql://`) and a case in DatabaseModule's factory.

// The result shapes are zod schemas (results.ts); the engines take their inferred types from here.
export type {
  ExplainResult,
  ForeignKeyDescription,
  LedgerEntry,
  LedgerStatus,
  MigrationResult,
  PlanStep,
  ReadResult,
  TableDescription,
  TableList,
  TableType,
  TruncationReason,
  WriteResult,
} from './results.js';

export type FilterOp = '=' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'like' | 'is_null';
export interface Filter {
  column: string;
  op: FilterOp;
  value?: SqlValue | SqlValue[];
}

export interface QueryRequest {
  sql: string;
  params?: SqlParams;
  maxRows: number;
  timeoutMs: number;
}

export interface ExplainRequest {
  sql: string;
  params?: SqlParams;
  timeoutMs: number;
}

export interface ListTablesRequest {
  pattern?: string;
  includeViews: boolean;
}

export interface ExecuteRequest {
  sql: string;
  params?: SqlParams;
  expectedMaxRows?: number;
  dryRun: boolean;
}

export interface InsertRowsRequest {
  table: string;
  rows: Row[];
  returning: boolean;
}

export interface UpdateRowsRequest {
  table: string;
  set: Row;
  where: Filter[];
  expectedMaxRows: number;
  dryRun: boolean;
}

export interface DeleteRowsRequest {
  table: string;
  where: Filter[];
  expectedMaxRows: number;
  dryRun: boolean;
}

export interface MigrationRequest {
  name: string;
  sql: string;
  dryRun: boolean;
  /** Who applies it: recorded in the ledger, and whose turn it takes. */
  principal: Principal;
}

/**
 * The application database as the tools see it. Every method that runs SQL takes the calling
 * principal (fair shares, in-flight limits) and enforces its own deadline; a refusal or a
 * database error is a SqlError whose code the caller sees.
 */
export abstract class DatabaseEngine {
  /** The engine's name, for descriptions and messages ("SQLite", "PostgreSQL"). */
  abstract readonly dialect: string;
  /** Size limits of the rows every tool returns (QUERY_MAX_RESULT_BYTES, QUERY_MAX_CELL_CHARS). */
  abstract readonly limits: SizeLimits;

  abstract listTables(request: ListTablesRequest, principal: Principal): Promise<TableList>;
  /** undefined when no table or view has that name (as list_tables spells it). */
  abstract describeTable(
    table: string,
    principal: Principal,
  ): Promise<TableDescription | undefined>;
  abstract query(request: QueryRequest, principal: Principal): Promise<ReadResult>;
  abstract explain(request: ExplainRequest, principal: Principal): Promise<ExplainResult>;

  abstract execute(request: ExecuteRequest, principal: Principal): Promise<WriteResult>;
  abstract insertRows(request: InsertRowsRequest, principal: Principal): Promise<WriteResult>;
  abstract updateRows(request: UpdateRowsRequest, principal: Principal): Promise<WriteResult>;
  abstract deleteRows(request: DeleteRowsRequest, principal: Principal): Promise<WriteResult>;

  abstract applyMigration(request: MigrationRequest): Promise<MigrationResult>;
  abstract listMigrations(): Promise<LedgerEntry[]>;

  /** Resolves when the database answers within timeoutMs (readiness); rejects otherwise. */
  abstract ping(timeoutMs: number): Promise<void>;
}
