import { createHash } from 'node:crypto';
import { types } from 'node:util';
import type Database from 'better-sqlite3';
import { INTERNAL_TABLES, LEDGER_TABLE, PRIVATE_TABLES } from './internal-tables.js';
import { leadingKeyword, splitStatements, stripLeadingComments } from './sql-statements.js';

// The database work behind the tools, as synchronous functions over one better-sqlite3
// connection. They run inside worker processes (see sql.worker.ts), which are killed at a
// deadline, except reads whose compiled program is bounded (see isBoundedProgram), which may
// also run on the main thread (inline-reader.ts); nothing here knows about Nest or MCP.

export type SqlValue = string | number | boolean | null;
export type SqlParams = SqlValue[] | Record<string, SqlValue>;
export type Row = Record<string, unknown>;

/** A refusal or failure the caller can act on; `code` is ours or SQLite's. */
export class SqlError extends Error {
  override name = 'SqlError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface ResultLimits {
  maxRows: number;
  /** Budget for the rendered (JSON) rows, in bytes. */
  maxBytes: number;
  /** Longest text (characters) or blob (bytes) returned in one cell. */
  maxCellChars: number;
}

export type TruncationReason = 'max_rows' | 'byte_budget' | 'cell_size';

export interface ReadResult {
  columns: { name: string; type: string | null }[];
  rows: unknown[][];
  row_count: number;
  truncated: boolean;
  truncation_reason: TruncationReason | null;
  elapsed_ms: number;
}

const READ_KEYWORDS = new Set(['SELECT', 'WITH', 'VALUES']);
const WRITE_KEYWORDS = new Set(['INSERT', 'UPDATE', 'DELETE', 'REPLACE', 'WITH']);
const DDL_KEYWORDS = new Set(['CREATE', 'ALTER', 'DROP']);
/** Statements SQLite may call read-only that still change the connection or the files. */
const CONNECTION_CHANGING: Record<string, string> = {
  ATTACH: 'ATTACH is not allowed: only this database can be used',
  DETACH: 'DETACH is not allowed',
  VACUUM: 'VACUUM (and VACUUM INTO) is not allowed',
  PRAGMA:
    "PRAGMA statements are not allowed; read a setting with SELECT * FROM pragma_<name> (e.g. pragma_table_info('t'))",
  ANALYZE: 'ANALYZE is not allowed',
  REINDEX: 'REINDEX is not allowed',
  BEGIN: 'Transaction control is not allowed: each call runs in its own transaction',
  COMMIT: 'Transaction control is not allowed: each call runs in its own transaction',
  END: 'Transaction control is not allowed: each call runs in its own transaction',
  ROLLBACK: 'Transaction control is not allowed: each call runs in its own transaction',
  SAVEPOINT: 'Transaction control is not allowed: each call runs in its own transaction',
  RELEASE: 'Transaction control is not allowed: each call runs in its own transaction',
};

/** better-sqlite3 binds booleans only as numbers; everything else binds as is. */
export function bindable(params: SqlParams | undefined): unknown[] {
  if (params === undefined) return [];
  const convert = (value: SqlValue) => (typeof value === 'boolean' ? Number(value) : value);
  if (Array.isArray(params)) return params.map(convert);
  return [Object.fromEntries(Object.entries(params).map(([key, value]) => [key, convert(value)]))];
}

/** An identifier quoted for SQLite; only ever called with names taken from the catalog. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The keyword SQLite compiles first: past comments, empty statements and EXPLAIN [QUERY PLAN]. */
export function compiledKeyword(sql: string): string {
  let rest = sql;
  for (;;) {
    const trimmed = stripLeadingComments(rest);
    const skipped = /^(?:;|EXPLAIN\b|QUERY\b|PLAN\b)/i.exec(trimmed);
    if (!skipped) return leadingKeyword(trimmed);
    rest = trimmed.slice(skipped[0].length);
  }
}

/**
 * Prepares exactly one statement. Connection-changing statements are refused before they are
 * compiled: SQLite applies some PRAGMAs (foreign_keys, query_only, ...) while compiling them.
 */
export function prepareOne(db: Database.Database, sql: string): Database.Statement<unknown[]> {
  const keyword = compiledKeyword(sql);
  if (keyword in CONNECTION_CHANGING)
    throw new SqlError(`${CONNECTION_CHANGING[keyword]}.`, `${keyword}_NOT_ALLOWED`);
  try {
    return db.prepare(sql);
  } catch (error) {
    // isNativeError, not instanceof: the addon's RangeError may come from another realm.
    if (
      types.isNativeError(error) &&
      error.name === 'RangeError' &&
      /more than one statement/.test(error.message)
    )
      throw new SqlError(
        'Exactly one SQL statement is allowed; remove the others.',
        'MULTIPLE_STATEMENTS',
      );
    throw error;
  }
}

interface Instruction {
  addr: number;
  opcode: string;
  p1: number;
  p2: number;
  p3: number;
}

/** The statement's compiled program: EXPLAIN compiles it without running it. */
function programOf(db: Database.Database, sql: string, params: unknown[]): Instruction[] {
  return db.prepare<unknown[], Instruction>(`EXPLAIN ${sql}`).all(...params);
}

/** Opcodes that do a fixed amount of work (by their operands) and never jump backwards. */
const STRAIGHT_OPCODES = new Set([
  'Transaction',
  'TableLock',
  'OpenRead',
  'ColumnsUsed',
  'CursorHint',
  'Noop',
  'Halt',
  'Variable',
  'Integer',
  'Int64',
  'Real',
  'String8',
  'String',
  'Null',
  'SoftNull',
  'Blob',
  'SCopy',
  'Copy',
  'IntCopy',
  'Rowid',
  'IdxRowid',
  'DeferredSeek',
  'Column',
  'ResultRow',
  'Affinity',
  'RealAffinity',
  'TypeCheck',
  'Cast',
  'Not',
  'And',
  'Or',
  'IsTrue',
  'ZeroOrNull',
  'Add',
  'Subtract',
  'Multiply',
  'Divide',
  'Remainder',
  'Concat',
]);
/** Opcodes that may jump (to P2): allowed forwards only. */
const FORWARD_JUMP_OPCODES = new Set([
  'Init',
  'Goto',
  'SeekRowid',
  'NotExists',
  'SeekGE',
  'SeekGT',
  'SeekLE',
  'SeekLT',
  'IdxGT',
  'IdxGE',
  'IdxLT',
  'IdxLE',
  'IsNull',
  'NotNull',
  'Eq',
  'Ne',
  'Lt',
  'Le',
  'Gt',
  'Ge',
  'If',
  'IfNot',
  'MustBeInt',
]);

/**
 * Whether a compiled program's work is bounded by one row of each table it opens: it only seeks
 * by key (a primary key or a unique index, every column equal to a value), reads columns, compares
 * and returns, and never jumps back, but for the closing `Goto` to the start that every program
 * has (taken once, after `Transaction`). No loop (`Next`, `Prev`, sorters, coroutines,
 * subroutines) and no function call (`Function`, aggregates, virtual tables) can be in it, so it
 * cannot run away, whatever the data; anything not listed counts as unbounded.
 */
export function isBoundedProgram(program: readonly Instruction[]): boolean {
  return program.every(({ addr, opcode, p2 }, index) => {
    if (STRAIGHT_OPCODES.has(opcode)) return true;
    if (!FORWARD_JUMP_OPCODES.has(opcode)) return false;
    if (opcode === 'MustBeInt' && p2 === 0) return true; // no jump: an error if not an integer
    return p2 > addr || (opcode === 'Goto' && p2 === 1 && index === program.length - 1);
  });
}

/**
 * Refuses a statement whose compiled program opens one of these tables (or their indexes): the
 * database's own plan (EXPLAIN) names the b-trees it reads and writes, views and CTEs resolved.
 */
function refuseInternalAccess(
  db: Database.Database,
  program: readonly Instruction[],
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
  const touches = program.some(({ opcode, p1, p2, p3 }) => {
    if (opcode === 'OpenWrite' || (access === 'read' && opcode === 'OpenRead'))
      return p3 === 0 && protectedPages.has(p2);
    if (opcode === 'Clear') return p2 === 0 && protectedPages.has(p1);
    if (opcode === 'Destroy') return p3 === 0 && protectedPages.has(p1);
    return false;
  });
  if (touches)
    throw new SqlError(
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

/** Renders result rows within limits: cells shortened past maxCellChars, rows up to the budgets. */
class RowCollector {
  readonly rows: unknown[][] = [];
  reason: TruncationReason | null = null;
  /** Size of the values read from the database, before any shortening: text length, blob bytes. */
  valueBytes = 0;
  private bytes = 2;
  private shortened = false;

  constructor(private readonly limits: ResultLimits) {}

  /** Adds a row; false when it did not fit and reading should stop. */
  add(raw: unknown[]): boolean {
    for (const value of raw)
      this.valueBytes += typeof value === 'string' || Buffer.isBuffer(value) ? value.length : 8;
    if (this.rows.length === this.limits.maxRows) {
      this.reason = 'max_rows';
      return false;
    }
    const row = raw.map((value) => this.cell(value));
    const size = Buffer.byteLength(JSON.stringify(row)) + 1; // UTF-8 bytes, as sent
    if (this.bytes + size > this.limits.maxBytes) {
      this.reason = 'byte_budget';
      return false;
    }
    this.bytes += size;
    this.rows.push(row);
    return true;
  }

  get truncationReason(): TruncationReason | null {
    return this.reason ?? (this.shortened ? 'cell_size' : null);
  }

  private cell(value: unknown): unknown {
    const max = this.limits.maxCellChars;
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'string' && value.length > max) {
      this.shortened = true;
      return `${value.slice(0, max)}…[${value.length - max} more characters]`;
    }
    if (Buffer.isBuffer(value)) {
      const shown = Math.floor((max * 3) / 4);
      if (value.length <= shown) return `base64:${value.toString('base64')}`;
      this.shortened = true;
      return `base64:${value.subarray(0, shown).toString('base64')}…[blob of ${value.length} bytes]`;
    }
    return value;
  }
}

const VALIDATED_STATEMENTS = 256;

interface ValidatedRead {
  statement: Database.Statement<unknown[]>;
  /** Its program's work is bounded by one row per table (isBoundedProgram). */
  bounded: boolean;
  /** Bounded, with one ResultRow: it returns one row at most. */
  single: boolean;
  /** The result's columns, read once (they change only with the schema, which empties the cache). */
  columns: { name: string; type: string | null }[];
}

interface ValidatedCache {
  schemaVersion: Database.Statement<[], number>;
  version: number;
  statements: Map<string, ValidatedRead>;
}
const validatedReads = new WeakMap<Database.Database, ValidatedCache>();

/**
 * Read statements that passed every check, by SQL text, per connection. The checks depend on the
 * text and the schema only, so the cache is emptied whenever the schema version moves.
 */
export function validatedRead(
  db: Database.Database,
  sql: string,
  params: unknown[],
): ValidatedRead {
  let cache = validatedReads.get(db);
  if (!cache) {
    const schemaVersion = db
      .prepare<[], number>('SELECT schema_version FROM pragma_schema_version()')
      .pluck();
    cache = { schemaVersion, version: -1, statements: new Map() };
    validatedReads.set(db, cache);
  }
  const version = cache.schemaVersion.get()!;
  if (version !== cache.version) {
    cache.statements.clear();
    cache.version = version;
  }
  let validated = cache.statements.get(sql);
  if (!validated) {
    validated = prepareRead(db, sql, params);
    if (cache.statements.size >= VALIDATED_STATEMENTS)
      cache.statements.delete(cache.statements.keys().next().value!);
    cache.statements.set(sql, validated);
  }
  return validated;
}

/** Whether the statement is itself an EXPLAIN (past comments and empty statements). */
function leadsWithExplain(sql: string): boolean {
  let rest = stripLeadingComments(sql);
  while (rest.startsWith(';')) rest = stripLeadingComments(rest.slice(1));
  return /^EXPLAIN\b/i.test(rest);
}

/**
 * Requires a reader that the database itself judges read-only, and refuses the audit log. An
 * EXPLAIN is refused too: the audit-log check explains the statement, and plans come from
 * explain_query.
 */
function prepareRead(db: Database.Database, sql: string, params: unknown[]): ValidatedRead {
  if (leadsWithExplain(sql))
    throw new SqlError(
      'Give the statement itself, without EXPLAIN; explain_query shows its plan.',
      'NOT_READ_ONLY',
    );
  const statement = prepareOne(db, sql);
  const keyword = compiledKeyword(sql);
  if (!statement.reader || !statement.readonly || !READ_KEYWORDS.has(keyword))
    throw new SqlError(
      'Only one read-only statement that returns rows is allowed here (SELECT, WITH ... SELECT, VALUES); writes go through execute.',
      'NOT_READ_ONLY',
    );
  const program = programOf(db, sql, params);
  refuseInternalAccess(db, program, PRIVATE_TABLES, 'read');
  const bounded = isBoundedProgram(program);
  statement.raw(true);
  return {
    statement,
    bounded,
    single: bounded && program.filter(({ opcode }) => opcode === 'ResultRow').length === 1,
    columns: statement.columns().map((column) => ({ name: column.name, type: column.type })),
  };
}

/** One read-only statement; reads no more rows than fit the limits (plus one to know). */
export function runQuery(
  db: Database.Database,
  sql: string,
  params: SqlParams | undefined,
  limits: ResultLimits,
): ReadResult {
  return readRows(db, sql, params, limits, false)!.result;
}

/**
 * runQuery, and the size of the values it read (text length, blob bytes; 8 for a number). With
 * `boundedOnly`, undefined (nothing run) for a statement whose program is not bounded.
 */
export function readRows(
  db: Database.Database,
  sql: string,
  params: SqlParams | undefined,
  limits: ResultLimits,
  boundedOnly: boolean,
): { result: ReadResult; valueBytes: number } | undefined {
  const started = performance.now();
  const bound = bindable(params);
  const { statement, bounded, single, columns } = validatedRead(db, sql, bound);
  if (boundedOnly && !bounded) return undefined;
  const collector = new RowCollector(limits);
  if (single) {
    // A straight-line program with one ResultRow reaches it once at most: one row at most.
    const row = statement.get(...bound) as unknown[] | undefined;
    if (row) collector.add(row);
  } else {
    for (const row of statement.iterate(...bound) as IterableIterator<unknown[]>)
      if (!collector.add(row)) break; // leaving the loop finalizes the iterator: nothing more is read
  }
  const reason = collector.truncationReason;
  const result = {
    columns: columns.map((column) => ({ ...column })),
    rows: collector.rows,
    row_count: collector.rows.length,
    truncated: reason !== null,
    truncation_reason: reason,
    elapsed_ms: Math.round((performance.now() - started) * 100) / 100,
  };
  return { result, valueBytes: collector.valueBytes };
}

export interface PlanStep {
  id: number;
  parent: number;
  detail: string;
}

/** SQLite's query plan for one read-only statement, under the same rules as runQuery. */
export function explainQuery(
  db: Database.Database,
  sql: string,
  params: SqlParams | undefined,
): { plan: PlanStep[] } {
  const bound = bindable(params);
  prepareRead(db, sql, bound);
  const plan = db
    .prepare<unknown[], { id: number; parent: number; detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
    .all(...bound)
    .map(({ id, parent, detail }) => ({ id, parent, detail }));
  return { plan };
}

export interface CatalogEntry {
  name: string;
  type: 'table' | 'view';
}

/** Tables and views, ScopeDB's own left out. */
export function catalog(db: Database.Database): CatalogEntry[] {
  return db
    .prepare<[], CatalogEntry>(
      "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .all()
    .filter((entry) => !(INTERNAL_TABLES as readonly string[]).includes(entry.name));
}

/** SQL LIKE semantics (case-insensitive, % and _) for filtering names without SQL. */
function likePattern(pattern: string): RegExp {
  const body = [...pattern]
    .map((c) => (c === '%' ? '.*' : c === '_' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 'is');
}

export function listTables(
  db: Database.Database,
  pattern: string | undefined,
  includeViews: boolean,
): { tables: { name: string; type: 'table' | 'view'; row_estimate: number | null }[] } {
  const matches = pattern === undefined ? undefined : likePattern(pattern);
  const tables = catalog(db)
    .filter((entry) => includeViews || entry.type === 'table')
    .filter((entry) => !matches || matches.test(entry.name))
    .map(({ name, type }) => ({
      name,
      type,
      row_estimate:
        type === 'table'
          ? db
              .prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${quoteIdentifier(name)}`)
              .get()!.n
          : null,
    }));
  return { tables };
}

/** A table of the catalog by exact name, with its columns; refuses anything else. */
function tableOf(
  db: Database.Database,
  name: string,
  kind: 'table' | 'table or view',
): { name: string; columns: Set<string> } {
  const entry = catalog(db).find((candidate) => candidate.name === name);
  if (!entry || (kind === 'table' && entry.type !== 'table'))
    throw new SqlError(
      `No ${kind} is named ${JSON.stringify(name)}; list_tables shows them.`,
      'UNKNOWN_TABLE',
    );
  const columns = db
    .prepare<[string], { name: string }>('SELECT name FROM pragma_table_xinfo(?)')
    .all(entry.name)
    .map((column) => column.name);
  return { name: entry.name, columns: new Set(columns) };
}

function checkColumn(table: { name: string; columns: Set<string> }, column: string): string {
  if (!table.columns.has(column))
    throw new SqlError(
      `Table ${table.name} has no column ${JSON.stringify(column)}; describe_table lists them.`,
      'UNKNOWN_COLUMN',
    );
  return quoteIdentifier(column);
}

export type FilterOp = '=' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'like' | 'is_null';
export interface Filter {
  column: string;
  op: FilterOp;
  value?: SqlValue | SqlValue[];
}

/** A WHERE clause from filters: columns checked against the catalog, values always bound. */
function whereClause(
  table: { name: string; columns: Set<string> },
  filters: Filter[],
): { sql: string; params: unknown[] } {
  if (filters.length === 0)
    throw new SqlError('At least one filter is required.', 'FILTER_REQUIRED');
  const params: unknown[] = [];
  const bind = (value: SqlValue) => params.push(typeof value === 'boolean' ? Number(value) : value);
  const parts = filters.map((filter) => {
    const column = checkColumn(table, filter.column);
    const { value } = filter;
    if (filter.op === 'is_null') {
      if (value !== undefined && typeof value !== 'boolean')
        throw new SqlError('is_null takes no value, or true/false.', 'INVALID_FILTER');
      return `${column} IS ${value === false ? 'NOT ' : ''}NULL`;
    }
    if (filter.op === 'in') {
      if (!Array.isArray(value) || value.length === 0)
        throw new SqlError(`"in" on ${filter.column} needs a non-empty array.`, 'INVALID_FILTER');
      value.forEach(bind);
      return `${column} IN (${value.map(() => '?').join(', ')})`;
    }
    if (value === undefined || value === null || Array.isArray(value))
      throw new SqlError(
        `"${filter.op}" on ${filter.column} needs one non-null value (use is_null for NULL).`,
        'INVALID_FILTER',
      );
    if (filter.op === 'like' && typeof value !== 'string')
      throw new SqlError(`"like" on ${filter.column} needs a string pattern.`, 'INVALID_FILTER');
    bind(value);
    return `${column} ${filter.op === 'like' ? 'LIKE' : filter.op} ?`;
  });
  return { sql: parts.join(' AND '), params };
}

export interface WriteResult {
  affected_rows: number;
  dry_run: boolean;
  /** Rows returned by RETURNING (execute, insert_rows) or, on a dry run, the rows affected. */
  rows?: Row[];
  last_insert_rowid?: number | null;
}

const PREVIEW_ROWS = 20;

/**
 * Runs a change in a transaction: rolled back when it changes more rows than expected (saying
 * how many it would have), when it is a dry run, or when it touched the schema.
 */
function change(
  db: Database.Database,
  statement: Database.Statement<unknown[]>,
  params: unknown[],
  options: { expectedMaxRows?: number; dryRun: boolean; keepRows: number; showRows: boolean },
): WriteResult {
  const rollback = new Error('rollback');
  let result: WriteResult | undefined;
  const schemaVersion = () => db.pragma('schema_version', { simple: true }) as number;
  const lastRowid = () =>
    db.prepare<[], { id: number }>('SELECT last_insert_rowid() AS id').get()!.id;
  try {
    db.transaction(() => {
      const before = schemaVersion();
      const rowidBefore = lastRowid();
      const rows: Row[] = [];
      let affected: number;
      if (statement.reader) {
        for (const row of statement.iterate(...params) as IterableIterator<Row>)
          if (rows.length < options.keepRows) rows.push(row);
        affected = db.prepare<[], { n: number }>('SELECT changes() AS n').get()!.n;
      } else {
        affected = statement.run(...params).changes;
      }
      if (schemaVersion() !== before)
        throw new SqlError(
          'The statement changed the schema; use apply_migration (db:admin).',
          'SCHEMA_CHANGE',
        );
      if (options.expectedMaxRows !== undefined && affected > options.expectedMaxRows)
        throw new SqlError(
          `The change would affect ${affected} rows, more than expected_max_rows=${options.expectedMaxRows}; nothing was changed.`,
          'TOO_MANY_ROWS',
        );
      const rowidAfter = lastRowid();
      result = {
        affected_rows: affected,
        dry_run: options.dryRun,
        ...(statement.reader && options.showRows && { rows }),
        // Only a statement that inserted moves last_insert_rowid (UPDATE and DELETE leave it).
        last_insert_rowid: rowidAfter !== rowidBefore ? rowidAfter : null,
      };
      if (options.dryRun) throw rollback;
    })();
  } catch (error) {
    if (error !== rollback) throw error;
  }
  return result!;
}

/** One INSERT, UPDATE, DELETE or REPLACE (optionally RETURNING); never a schema change. */
export function execute(
  db: Database.Database,
  sql: string,
  params: SqlParams | undefined,
  options: { expectedMaxRows?: number; dryRun: boolean },
): WriteResult {
  const bound = bindable(params);
  const statement = prepareOne(db, sql);
  if (statement.readonly || !WRITE_KEYWORDS.has(compiledKeyword(sql)))
    throw new SqlError(
      'execute runs exactly one INSERT, UPDATE, DELETE or REPLACE statement. Use query to read; schema changes go through apply_migration (db:admin).',
      'NOT_A_WRITE',
    );
  refuseInternalAccess(db, programOf(db, sql, bound), INTERNAL_TABLES, 'write');
  return change(db, statement, bound, { ...options, keepRows: 500, showRows: true });
}

function checkValue(column: string, value: unknown): unknown {
  if (value === null || ['string', 'number'].includes(typeof value)) return value;
  if (typeof value === 'boolean') return Number(value);
  throw new SqlError(
    `The value of ${column} must be a string, number, boolean or null.`,
    'INVALID_VALUE',
  );
}

/** Rows into one table, in one transaction; columns checked against the catalog. */
export function insertRows(
  db: Database.Database,
  tableName: string,
  rows: Row[],
  returning: boolean,
): WriteResult {
  const table = tableOf(db, tableName, 'table');
  const returned: Row[] = [];
  let inserted = 0;
  db.transaction(() => {
    const statements = new Map<string, Database.Statement<unknown[]>>();
    for (const row of rows) {
      const names = Object.keys(row);
      const key = JSON.stringify(names);
      let statement = statements.get(key);
      if (!statement) {
        const columns = names.map((name) => checkColumn(table, name));
        const target = quoteIdentifier(table.name);
        statement = db.prepare(
          names.length === 0
            ? `INSERT INTO ${target} DEFAULT VALUES${returning ? ' RETURNING *' : ''}`
            : `INSERT INTO ${target} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})${returning ? ' RETURNING *' : ''}`,
        );
        statements.set(key, statement);
      }
      const values = names.map((name) => checkValue(name, row[name]));
      if (returning) returned.push(...(statement.all(...values) as Row[]));
      else statement.run(...values);
      inserted++;
    }
  })();
  return { affected_rows: inserted, dry_run: false, ...(returning && { rows: returned }) };
}

export function updateRows(
  db: Database.Database,
  tableName: string,
  set: Row,
  where: Filter[],
  options: { expectedMaxRows: number; dryRun: boolean },
): WriteResult {
  const table = tableOf(db, tableName, 'table');
  const names = Object.keys(set);
  if (names.length === 0) throw new SqlError('set needs at least one column.', 'INVALID_VALUE');
  const assignments = names.map((name) => `${checkColumn(table, name)} = ?`);
  const values = names.map((name) => checkValue(name, set[name]));
  const filter = whereClause(table, where);
  const statement = db.prepare(
    `UPDATE ${quoteIdentifier(table.name)} SET ${assignments.join(', ')} WHERE ${filter.sql} RETURNING *`,
  );
  return change(db, statement, [...values, ...filter.params], {
    ...options,
    keepRows: PREVIEW_ROWS,
    showRows: options.dryRun,
  });
}

export function deleteRows(
  db: Database.Database,
  tableName: string,
  where: Filter[],
  options: { expectedMaxRows: number; dryRun: boolean },
): WriteResult {
  const table = tableOf(db, tableName, 'table');
  const filter = whereClause(table, where);
  const statement = db.prepare(
    `DELETE FROM ${quoteIdentifier(table.name)} WHERE ${filter.sql} RETURNING *`,
  );
  return change(db, statement, filter.params, {
    ...options,
    keepRows: PREVIEW_ROWS,
    showRows: options.dryRun,
  });
}

export interface MigrationResult {
  name: string;
  applied: boolean;
  dry_run: boolean;
  statements: number;
  checksum: string;
}

/**
 * DDL statements applied atomically and recorded by name, checksum, who and when. The same name
 * with the same SQL is a no-op; with different SQL it is an error.
 */
export function migrate(
  db: Database.Database,
  migration: {
    name: string;
    sql: string;
    dryRun: boolean;
    appliedBy: string;
    clientId: string | null;
  },
): MigrationResult {
  const { name, sql, dryRun } = migration;
  const checksum = createHash('sha256').update(sql).digest('hex');
  const statements = splitStatements(sql);
  if (statements.length === 0)
    throw new SqlError('The migration has no SQL statement.', 'EMPTY_MIGRATION');
  const ledger = quoteIdentifier(LEDGER_TABLE);
  const rollback = new Error('rollback');
  let result: MigrationResult | undefined;
  try {
    db.transaction(() => {
      const existing = db
        .prepare<[string], { checksum: string }>(`SELECT checksum FROM ${ledger} WHERE name = ?`)
        .get(name);
      if (existing) {
        if (existing.checksum !== checksum)
          throw new SqlError(
            `A migration named ${name} was already applied with different SQL; choose a new name.`,
            'MIGRATION_CONFLICT',
          );
        result = { name, applied: false, dry_run: dryRun, statements: statements.length, checksum };
        return;
      }
      const internalBefore = internalSchema(db);
      statements.forEach((text, index) => {
        const statement = prepareOne(db, text);
        if (statement.readonly || !DDL_KEYWORDS.has(leadingKeyword(text)))
          throw new SqlError(
            `Statement ${index + 1} is not DDL: apply_migration runs CREATE, ALTER and DROP statements only.`,
            'NOT_DDL',
          );
        statement.run();
      });
      if (internalSchema(db) !== internalBefore)
        throw new SqlError(
          `A migration cannot change ScopeDB's own tables (${INTERNAL_TABLES.join(', ')}) or define objects that refer to them.`,
          'INTERNAL_TABLE',
        );
      db.prepare(
        `INSERT INTO ${ledger} (name, checksum, sql, appliedAt, appliedBy, clientId) VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(name, checksum, sql, new Date().toISOString(), migration.appliedBy, migration.clientId);
      result = { name, applied: !dryRun, dry_run: dryRun, statements: statements.length, checksum };
      if (dryRun) throw rollback;
    })();
  } catch (error) {
    if (error !== rollback) throw error;
  }
  return result!;
}

export interface LedgerEntry {
  name: string;
  checksum: string;
  applied_at: string;
  applied_by: string;
  client_id: string | null;
  sql: string;
}

export function listMigrations(db: Database.Database): { migrations: LedgerEntry[] } {
  const migrations = db
    .prepare<[], LedgerEntry>(
      `SELECT name, checksum, appliedAt AS applied_at, appliedBy AS applied_by, clientId AS client_id, sql FROM ${quoteIdentifier(LEDGER_TABLE)} ORDER BY appliedAt, name`,
    )
    .all();
  return { migrations };
}
