import { createHash } from 'node:crypto';
import { types } from 'node:util';
import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type Database from 'better-sqlite3';
import type { Repository } from 'typeorm';
import { ToolError } from '../mcp/tool-context.js';
import { MigrationRecord } from './migration-record.entity.js';
import { INTERNAL_TABLES, PRIVATE_TABLES } from './internal-tables.js';
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

interface Instruction {
  opcode: string;
  p1: number;
  p2: number;
  p3: number;
}

/**
 * Refuses a statement whose compiled program opens one of these tables (or their indexes): the
 * database's own plan (EXPLAIN) names the b-trees it reads and writes, views and CTEs resolved.
 */
function refuseInternalAccess(
  db: Database.Database,
  sql: string,
  params: unknown[],
  tables: readonly string[],
  access: 'read' | 'write',
): void {
  const protectedPages = new Set(
    db
      .prepare<string[], { rootpage: number }>(
        `SELECT rootpage FROM sqlite_schema WHERE rootpage > 0 AND tbl_name IN (${tables.map(() => '?').join(', ')})`,
      )
      .all(...tables)
      .map((row) => row.rootpage),
  );
  // The caller's statement itself, explained: EXPLAIN compiles it without running it.
  const program = db.prepare<unknown[], Instruction>(`EXPLAIN ${sql}`).all(...params);
  const touches = program.some(({ opcode, p1, p2, p3 }) => {
    if (opcode === 'OpenWrite' || (access === 'read' && opcode === 'OpenRead'))
      return p3 === 0 && protectedPages.has(p2);
    if (opcode === 'Clear') return p2 === 0 && protectedPages.has(p1);
    if (opcode === 'Destroy') return p3 === 0 && protectedPages.has(p1);
    return false;
  });
  if (touches)
    throw new ToolError(
      `ScopeDB's own tables (${tables.join(', ')}) cannot be ${access === 'read' ? 'read or changed' : 'changed'} through the database tools.`,
      'INTERNAL_TABLE',
    );
}

/** The catalog entries of ScopeDB's tables and of anything defined on or referring to them. */
function internalSchema(db: Database.Database): string {
  const names = INTERNAL_TABLES.join('|');
  const mentions = new RegExp(`(^|[^\\w$])["\`\\[]?(${names})["\`\\]]?($|[^\\w$])`, 'i');
  const rows = db
    .prepare<[], { type: string; name: string; tbl_name: string; sql: string | null }>(
      'SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name',
    )
    .all()
    .filter(
      (row) =>
        (INTERNAL_TABLES as readonly string[]).includes(row.tbl_name) ||
        (row.sql !== null && mentions.test(row.sql)),
    );
  return JSON.stringify(rows);
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
    refuseInternalAccess(
      this.database.readConnection,
      sql,
      bindable(params),
      PRIVATE_TABLES,
      'read',
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
    refuseInternalAccess(db, sql, bindable(params), INTERNAL_TABLES, 'write');
    const schemaVersion = () => db.pragma('schema_version', { simple: true }) as number;
    return db.transaction(() => {
      const before = schemaVersion();
      let affected: number;
      const lastRowid = () =>
        db.prepare<[], { rowid: number }>('SELECT last_insert_rowid() AS rowid').get()!.rowid;
      const rowidBefore = lastRowid();
      let returned: ReadResult | undefined;
      if (statement.reader) {
        statement.raw(true);
        const rows = (statement.all(...bindable(params)) as unknown[][]).map((row) =>
          row.map(cell),
        );
        affected = db.prepare<[], { n: number }>('SELECT changes() AS n').get()!.n;
        returned = {
          columns: statement.columns().map((column) => ({ name: column.name, type: column.type })),
          rows,
          row_count: rows.length,
          truncated: false,
        };
      } else {
        affected = statement.run(...bindable(params)).changes;
      }
      // Only a statement that inserted moves last_insert_rowid (UPDATE and DELETE leave it).
      const rowidAfter = lastRowid();
      if (schemaVersion() !== before)
        throw new ToolError(
          'The statement changed the schema; use apply_migration (db:admin).',
          'SCHEMA_CHANGE',
        );
      return {
        affected_rows: affected,
        last_insert_rowid: rowidAfter !== rowidBefore ? rowidAfter : null,
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
      const internalBefore = internalSchema(db);
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
      if (internalSchema(db) !== internalBefore)
        throw new ToolError(
          `A migration cannot change ScopeDB's own tables (${INTERNAL_TABLES.join(', ')}) or define objects that refer to them.`,
          'INTERNAL_TABLE',
        );
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
