import { createHash } from 'node:crypto';
import { types } from 'node:util';
import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type Database from 'better-sqlite3';
import type { Repository } from 'typeorm';
import { ToolError } from '../mcp/tool-context.js';
import { MigrationRecord } from './migration-record.entity.js';
import { SqliteDatabase } from './sqlite-database.js';
import { leadingKeyword, splitStatements, stripLeadingComments } from './sql-statements.js';

export type SqlValue = string | number | boolean | null;
export type SqlParams = SqlValue[] | Record<string, SqlValue>;

export interface ReadResult {
  columns: { name: string; type: string | null }[];
  rows: unknown[][];
  row_count: number;
  truncated: boolean;
}

const WRITE_KEYWORDS = new Set(['INSERT', 'UPDATE', 'DELETE', 'REPLACE', 'WITH']);
const DDL_KEYWORDS = new Set(['CREATE', 'ALTER', 'DROP']);

/** better-sqlite3 binds booleans as 0/1 only if converted; everything else binds as is. */
function bindable(params: SqlParams | undefined): unknown[] {
  if (params === undefined) return [];
  const convert = (value: SqlValue) => (typeof value === 'boolean' ? Number(value) : value);
  if (Array.isArray(params)) return params.map(convert);
  return [Object.fromEntries(Object.entries(params).map(([key, value]) => [key, convert(value)]))];
}

/** A cell as JSON can carry it: blobs as base64, 64-bit integers beyond 2^53 as text. */
function cell(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return `base64:${value.toString('base64')}`;
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** The keyword SQLite compiles first: past comments, empty statements and EXPLAIN [QUERY PLAN]. */
function compiledKeyword(sql: string): string {
  let rest = sql;
  for (;;) {
    const trimmed = stripLeadingComments(rest);
    const skipped = /^(?:;|EXPLAIN\b|QUERY\b|PLAN\b)/i.exec(trimmed);
    if (!skipped) return leadingKeyword(trimmed);
    rest = trimmed.slice(skipped[0].length);
  }
}

function prepare(db: Database.Database, sql: string): Database.Statement<unknown[], unknown> {
  // Flag PRAGMAs (foreign_keys, query_only, ignore_check_constraints...) take effect when compiled,
  // so a refusal after prepare() would come too late: they are refused unprepared.
  if (compiledKeyword(sql) === 'PRAGMA')
    throw new ToolError(
      "PRAGMA statements are not allowed; read a setting with SELECT * FROM pragma_<name> (e.g. pragma_table_info('t')).",
      'PRAGMA_NOT_ALLOWED',
    );
  try {
    return db.prepare(sql);
  } catch (error) {
    // isNativeError, not instanceof: the addon's RangeError may come from another realm (Jest's VM).
    if (
      types.isNativeError(error) &&
      error.name === 'RangeError' &&
      /more than one statement/.test(error.message)
    )
      throw new ToolError(
        'Exactly one SQL statement is allowed; remove the others.',
        'MULTIPLE_STATEMENTS',
      );
    throw error;
  }
}

/** Runs caller SQL with the database enforcing what each tool may do; values are always bound. */
@Injectable()
export class SqlExecutor {
  constructor(
    private readonly database: SqliteDatabase,
    @InjectRepository(MigrationRecord) private readonly ledger: Repository<MigrationRecord>,
  ) {}

  /** One read-only statement on the read-only connection; stops reading at maxRows + 1. */
  read(sql: string, params: SqlParams | undefined, maxRows: number): ReadResult {
    const statement = prepare(this.database.readConnection, sql);
    if (!statement.reader || !statement.readonly)
      throw new ToolError(
        'query runs one read-only statement that returns rows (SELECT, WITH ... SELECT, VALUES); use execute for writes.',
        'NOT_READ_ONLY',
      );
    statement.raw(true);
    const columns = statement.columns().map((column) => ({ name: column.name, type: column.type }));
    const rows: unknown[][] = [];
    let truncated = false;
    for (const row of statement.iterate(...bindable(params)) as IterableIterator<unknown[]>) {
      if (rows.length === maxRows) {
        truncated = true;
        break; // leaving the loop ends the iterator: no further row is read
      }
      rows.push(row.map(cell));
    }
    return { columns, rows, row_count: rows.length, truncated };
  }

  /** One INSERT, UPDATE, DELETE or REPLACE in a transaction; never a schema change. */
  write(
    sql: string,
    params: SqlParams | undefined,
  ): { affected_rows: number; last_insert_rowid: number | null; returned?: ReadResult } {
    const db = this.database.writeConnection;
    const statement = prepare(db, sql);
    if (statement.readonly || !WRITE_KEYWORDS.has(leadingKeyword(sql)))
      throw new ToolError(
        'execute runs exactly one INSERT, UPDATE, DELETE or REPLACE statement. Use query to read; schema changes go through apply_migration (db:admin).',
        'NOT_A_WRITE',
      );
    const schemaVersion = () => db.pragma('schema_version', { simple: true }) as number;
    return db.transaction(() => {
      const before = schemaVersion();
      let affected: number;
      let lastRowid: number | bigint;
      let returned: ReadResult | undefined;
      if (statement.reader) {
        statement.raw(true);
        const rows = (statement.all(...bindable(params)) as unknown[][]).map((row) =>
          row.map(cell),
        );
        const info = db
          .prepare<[], { changes: number; rowid: number }>(
            'SELECT changes() AS changes, last_insert_rowid() AS rowid',
          )
          .get()!;
        affected = info.changes;
        lastRowid = info.rowid;
        returned = {
          columns: statement.columns().map((column) => ({ name: column.name, type: column.type })),
          rows,
          row_count: rows.length,
          truncated: false,
        };
      } else {
        const info = statement.run(...bindable(params));
        affected = info.changes;
        lastRowid = info.lastInsertRowid;
      }
      if (schemaVersion() !== before)
        throw new ToolError(
          'The statement changed the schema; use apply_migration (db:admin).',
          'SCHEMA_CHANGE',
        );
      return {
        affected_rows: affected,
        last_insert_rowid: affected > 0 ? Number(lastRowid) : null,
        ...(returned && { returned }),
      };
    })();
  }

  /**
   * DDL statements applied atomically and recorded by name. The same name with the same SQL is a
   * no-op; with different SQL it is an error.
   */
  migrate(
    name: string,
    sql: string,
    appliedBy: { subject: string; clientId: string | undefined },
  ): { name: string; applied: boolean; statements: number; checksum: string } {
    const checksum = createHash('sha256').update(sql).digest('hex');
    const statements = splitStatements(sql);
    if (statements.length === 0)
      throw new ToolError('The migration has no SQL statement.', 'EMPTY_MIGRATION');
    const db = this.database.writeConnection;
    const ledger = this.ledger.metadata.tableName;
    return db.transaction(() => {
      const existing = db
        .prepare<[string], { checksum: string }>(
          `SELECT checksum FROM ${this.database.quote(ledger)} WHERE name = ?`,
        )
        .get(name);
      if (existing) {
        if (existing.checksum === checksum)
          return { name, applied: false, statements: statements.length, checksum };
        throw new ToolError(
          `A migration named ${name} was already applied with different SQL; choose a new name.`,
          'MIGRATION_CONFLICT',
        );
      }
      statements.forEach((text, index) => {
        const keyword = leadingKeyword(text);
        const statement = prepare(db, text);
        if (statement.readonly || !DDL_KEYWORDS.has(keyword))
          throw new ToolError(
            `Statement ${index + 1} is not DDL: apply_migration runs CREATE, ALTER and DROP statements only.`,
            'NOT_DDL',
          );
        statement.run();
      });
      db.prepare(
        `INSERT INTO ${this.database.quote(ledger)} (name, checksum, sql, appliedAt, appliedBy, clientId) VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(
        name,
        checksum,
        sql,
        new Date().toISOString(),
        appliedBy.subject,
        appliedBy.clientId ?? null,
      );
      return { name, applied: true, statements: statements.length, checksum };
    })();
  }
}
