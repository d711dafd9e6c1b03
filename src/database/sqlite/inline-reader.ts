import Database from 'better-sqlite3';
import type { SqlParams } from '../sql-values.js';
import type { ReadResult } from '../engine.js';
import { readRows } from './reads.js';
import type { SqlJob } from './sql-jobs.js';

export interface InlineReaderOptions {
  path: string;
  /** A read of more than this (text length, blob bytes) pauses inline reads. */
  maxValueBytes: number;
  /** A read that takes longer than this, ms, pauses inline reads too. */
  maxReadMs: number;
  /** How long a pause lasts, ms; one that starts within its own length of the last one's end doubles. */
  pauseMs: number;
}

/** Pauses in a row double the pause up to this many times (64 x pauseMs). */
const MAX_DOUBLINGS = 6;

type QueryJob = Extract<SqlJob, { kind: 'query' }>;

/**
 * Longer statements go to the workers without a look: a key lookup is short, and compiling (then
 * explaining) a long statement on the main thread would cost the main thread, once per text.
 */
export const INLINE_MAX_SQL_CHARS = 4096;

/**
 * Parameters larger than this in all (UTF-8 bytes of text, 8 per other value, names included) go
 * to the workers: a key lookup binds a few keys, and the work of a bounded program grows with
 * the size of its inputs.
 */
export const INLINE_MAX_PARAM_BYTES = 1024;

/** The parameters' size as INLINE_MAX_PARAM_BYTES counts it, or Infinity once past `cap`. */
export function parameterBytes(params: SqlParams | undefined, cap: number): number {
  if (params === undefined) return 0;
  const entries: [string, unknown][] = Array.isArray(params)
    ? params.map((value) => ['', value])
    : Object.entries(params);
  let bytes = 0;
  for (const [name, value] of entries) {
    if (typeof value === 'string') {
      // UTF-8 takes at least one byte per UTF-16 unit: a long string is over without counting.
      if (value.length > cap) return Infinity;
      bytes += Buffer.byteLength(value);
    } else bytes += 8;
    bytes += Buffer.byteLength(name);
    if (bytes > cap) return Infinity;
  }
  return bytes;
}

/** SQL texts a worker judged bounded, remembered at once (the oldest is forgotten first). */
const ADMITTED_TEXTS = 256;

/**
 * Runs `query` jobs whose compiled program is bounded (programBound: seeks by key and no loop,
 * or one scan of a range under a constant LIMIT of at most BOUNDED_MAX_ROWS that counts every
 * row it visits; no function, nothing that builds a value larger than its inputs, a short
 * program; in practice a lookup by primary key or unique index, or a page of a key range such as
 * `WHERE id > ? ORDER BY id LIMIT 50`) with small parameters on the main thread, on a read-only
 * connection of its own, instead of a worker process: a round trip to another process costs far
 * more than such a read. Everything else stays with the workers, which a deadline can kill; so
 * does any job this reader declines (undefined), to be answered there:
 *
 * - a text no worker has judged bounded at the current schema version (`admit`): compiling is
 *   itself work that grows with what the text expands to (a CTE inlined where it is used twice
 *   doubles, so 1.5 KB of SQL can take seconds and gigabytes to compile), so the main thread
 *   compiles only what a worker has compiled first and found short and bounded;
 * - statements longer than INLINE_MAX_SQL_CHARS, parameters larger than INLINE_MAX_PARAM_BYTES,
 *   and statements that do not pass the read checks (the worker gives the same error);
 * - a busy database: this connection never waits (busy_timeout 0), it declines;
 * - everything for a pause after one inline read read more than `maxValueBytes` of values, or
 *   took longer than `maxReadMs` to read them (compiling is not counted: it happens once per
 *   text and schema version, and the first read of a text on a loaded machine is no sign of
 *   large values). A bounded program reads one row per table (per row of its scan), but a row
 *   may hold a value of hundreds of megabytes, which takes time to read even when it is only
 *   compared and not returned (about 65 ms for 100 MB here; the size count sees returned values
 *   only, the clock sees every read). Such a read may stall the main thread once in a pause, not
 *   again and again; a pause that follows soon after the last one lasts twice as long (up to 64
 *   x `pauseMs`), so repeating the attack buys ever fewer stalls. A scan is checked after each
 *   row and stops at the first over the budget (declined: a worker reads it again), so a LIMIT
 *   of many rows of large values stalls the main thread no longer than one such row does. A
 *   slow read on a busy machine costs only speed: the workers answer for the pause.
 */
export class InlineReader {
  private db: Database.Database | undefined;
  private pausedUntil = 0;
  /** Pauses in a row: each within its own length of the end of the previous one. */
  private strikes = 0;
  /** Texts a worker judged bounded, with the schema version it judged them at. */
  private readonly admitted = new Map<string, number>();
  private schemaVersion: Database.Statement<[], number> | undefined;
  private begin: Database.Statement<[]> | undefined;
  private commit: Database.Statement<[]> | undefined;

  constructor(private readonly options: InlineReaderOptions) {}

  run(job: QueryJob): ReadResult | undefined {
    if (
      job.sql.length > INLINE_MAX_SQL_CHARS ||
      parameterBytes(job.params, INLINE_MAX_PARAM_BYTES) > INLINE_MAX_PARAM_BYTES ||
      Date.now() < this.pausedUntil
    )
      return undefined;
    const judgedAt = this.admitted.get(job.sql);
    if (judgedAt === undefined) return undefined;
    let read: ReturnType<typeof readRows>;
    let db: Database.Database | undefined;
    try {
      db = this.connection();
      // One read transaction for the check and the read: a schema change committed between
      // them would have SQLite compile the statement again, to a program no worker has judged.
      this.begin!.run();
      if (this.schemaVersion!.get() !== judgedAt) {
        this.admitted.delete(job.sql); // the schema moved: a worker judges it again
        return undefined;
      }
      read = readRows(db, job.sql, job.params, job.limits, this.options);
    } catch {
      return undefined; // busy, or refused: the worker answers, with the same error
    } finally {
      if (db?.inTransaction) this.commit!.run();
    }
    if (
      read &&
      (read.valueBytes > this.options.maxValueBytes || read.readMs > this.options.maxReadMs)
    )
      this.pause();
    // A scan that went over the budget stopped there: a worker reads it again, in full.
    return read?.result;
  }

  /** A worker's verdict: `sql` is bounded at schema version `version` (boundedAt). */
  admit(sql: string, version: number): void {
    this.admitted.delete(sql);
    if (this.admitted.size >= ADMITTED_TEXTS)
      this.admitted.delete(this.admitted.keys().next().value!);
    this.admitted.set(sql, version);
  }

  private pause(): void {
    const now = Date.now();
    const previous = this.options.pauseMs * 2 ** Math.min(this.strikes, MAX_DOUBLINGS);
    // A strike soon after the last pause ended (within that pause's length) doubles the next one.
    this.strikes = now - this.pausedUntil <= previous ? this.strikes + 1 : 0;
    this.pausedUntil = now + this.options.pauseMs * 2 ** Math.min(this.strikes, MAX_DOUBLINGS);
  }

  /** Whether inline reads are paused (after a large one). */
  get paused(): boolean {
    return Date.now() < this.pausedUntil;
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
    this.schemaVersion = undefined;
    this.begin = undefined;
    this.commit = undefined;
  }

  private connection(): Database.Database {
    if (!this.db) {
      const db = new Database(this.options.path, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 0');
      db.pragma('query_only = 1');
      this.schemaVersion = db
        .prepare<[], number>('SELECT schema_version FROM pragma_schema_version()')
        .pluck();
      this.begin = db.prepare<[]>('BEGIN');
      this.commit = db.prepare<[]>('COMMIT');
      this.db = db;
    }
    return this.db;
  }
}
