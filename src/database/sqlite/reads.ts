import type Database from 'better-sqlite3';
import { bindable } from './bindable.js';
import type { PlanStep, ReadResult } from '../engine.js';
import type { SqlParams } from '../sql-values.js';
import { programBound } from './program.js';
import { type ResultLimits, RowCollector } from '../result-rows.js';
import { guardRead } from './statement-guard.js';

// Reads: one read-only statement, its rows within limits.

const VALIDATED_STATEMENTS = 256;

/**
 * Longest program counted as bounded: straight-line code still does work per instruction, and a
 * short text can compile to a long program (a CTE referred to twice, inlined, doubles it).
 */
export const BOUNDED_MAX_INSTRUCTIONS = 128;

interface ValidatedRead {
  statement: Database.Statement<unknown[]>;
  /**
   * Its program's work is bounded (programBound: by one row per table, or by a scan's constant
   * LIMIT), and the program is short (BOUNDED_MAX_INSTRUCTIONS).
   */
  bounded: boolean;
  /** Bounded without a loop, with one ResultRow: it returns one row at most. */
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

/**
 * The schema version at which this read's program is bounded, or null: a worker's verdict, which
 * lets the main process's inline reader run the same text while the schema stays at that version
 * (it never compiles a text no worker has judged: compiling can itself be costly).
 */
export function boundedAt(db: Database.Database, sql: string, params: SqlParams | undefined) {
  const validated = validatedRead(db, sql, bindable(params));
  return validated.bounded ? validatedReads.get(db)!.version : null;
}

/** A read that passed the statement guard, with what the inline reader needs to know of it. */
function prepareRead(db: Database.Database, sql: string, params: unknown[]): ValidatedRead {
  const { statement, program } = guardRead(db, sql, params);
  const bound = program.length <= BOUNDED_MAX_INSTRUCTIONS ? programBound(program) : null;
  statement.raw(true);
  return {
    statement,
    bounded: bound !== null,
    single:
      bound?.loop === false && program.filter(({ opcode }) => opcode === 'ResultRow').length === 1,
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
  return readRows(db, sql, params, limits)!.result!;
}

/** What an inline read may cost before it stops: values read (text length, blob bytes), time. */
export interface ReadBudget {
  maxValueBytes: number;
  maxReadMs: number;
}

/**
 * runQuery, the size of the values it read (text length, blob bytes; 8 for a number) and the
 * time it took to read them (from its compiled statement). With a `budget` (an inline read):
 * undefined (nothing run) for a statement whose program is not bounded, and a result of
 * undefined when the read went over the budget: a scan stops at the first row past it, so no
 * more than one row's reading is done beyond the budget (the same as a key lookup's one row),
 * however many rows its LIMIT allows.
 */
export function readRows(
  db: Database.Database,
  sql: string,
  params: SqlParams | undefined,
  limits: ResultLimits,
  budget?: ReadBudget,
): { result: ReadResult | undefined; valueBytes: number; readMs: number } | undefined {
  const started = performance.now();
  const bound = bindable(params);
  const { statement, bounded, single, columns } = validatedRead(db, sql, bound);
  if (budget && !bounded) return undefined;
  // The budget counts the reading, not the compiling: a text is compiled once per schema
  // version, and the main thread compiles only texts a worker found short (InlineReader).
  const reading = performance.now();
  const collector = new RowCollector<unknown[]>(limits);
  if (single) {
    // A straight-line program with one ResultRow reaches it once at most: one row at most.
    const row = statement.get(...bound) as unknown[] | undefined;
    if (row) collector.add(row);
  } else {
    for (const row of statement.iterate(...bound) as IterableIterator<unknown[]>) {
      if (!collector.add(row)) break; // leaving the loop finalizes the iterator: nothing more is read
      if (
        budget &&
        (collector.valueBytes > budget.maxValueBytes ||
          performance.now() - reading > budget.maxReadMs)
      )
        return { result: undefined, ...spent(collector, reading) };
    }
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
  return { result, ...spent(collector, reading) };
}

/** What a read has read so far: its values' size (RowCollector.valueBytes) and time, ms. */
function spent(collector: RowCollector<unknown[]>, since: number) {
  return { valueBytes: collector.valueBytes, readMs: performance.now() - since };
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
