import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import type { Principal } from '../../auth/principal.js';
import { databaseConfig } from '../../config/configuration.js';
import { Metrics } from '../../metrics/metrics.service.js';
import type { SqliteDatabaseSettings } from '../../config/settings.js';
import { InlineReader } from './inline-reader.js';
import { type JudgedRead, READ_JOBS, type SqlJob } from './sql-jobs.js';
import type { SizeLimits } from '../result-rows.js';
import { InFlightLimit } from '../in-flight-limit.js';
import { SqlWorkerPool, sqlWorkerFile } from './sql-worker-pool.js';
import { SqliteDatabase } from './sqlite-database.js';

/** An inline read of larger values than this pauses inline reads (InlineReader) for a minute. */
const INLINE_MAX_VALUE_BYTES = 1024 * 1024;
/** An inline read slower than this pauses them too: a key lookup takes tens of microseconds. */
const INLINE_MAX_READ_MS = 20;
const INLINE_PAUSE_MS = 60_000;

/**
 * Runs the tools' SQL off the main thread: reads on a pool of read-only connections, writes on
 * one read-write connection (SQLite has one writer at a time), each job with a deadline, a memory
 * ceiling and a fair share of the workers for its principal (SqlWorkerPool). Reads whose compiled
 * program and parameters are bounded (key lookups) run on the main thread instead, unless
 * QUERY_INLINE_READS=false (InlineReader).
 */
@Injectable()
export class SqlExecutor implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(SqlExecutor.name);
  private readonly readers: SqlWorkerPool;
  private readonly writer: SqlWorkerPool;
  private readonly inline: InlineReader | undefined;

  constructor(
    // Injected first so that the database file exists and is migrated before workers open it.
    database: SqliteDatabase,
    // Provided in SQLite mode only (SqliteModule), where the settings are SQLite's.
    @Inject(databaseConfig.KEY) private readonly cfg: SqliteDatabaseSettings,
    metrics: Metrics,
  ) {
    const file = sqlWorkerFile();
    const common = { path: database.path, busyTimeoutMs: cfg.busyTimeoutMs };
    const options = {
      memoryMb: cfg.workerMemoryMb,
      queueTimeoutMs: cfg.queueTimeoutMs,
      // One count per principal over reads and writes together.
      inFlight: new InFlightLimit(cfg.maxInFlightPerPrincipal),
      onWorkerError: (error: Error) =>
        this.logger.error(`SQL worker failed: ${error.message}`, error.stack),
    };
    this.readers = new SqlWorkerPool(
      file,
      { ...common, readonly: true },
      {
        ...options,
        size: cfg.queryWorkers,
        onWorkerReplaced: (reason) => metrics.sqlWorkerReplaced('read', reason),
      },
    );
    this.writer = new SqlWorkerPool(
      file,
      { ...common, readonly: false },
      {
        ...options,
        size: 1,
        onWorkerReplaced: (reason) => metrics.sqlWorkerReplaced('write', reason),
      },
    );
    if (cfg.inlineReads)
      this.inline = new InlineReader({
        path: database.path,
        maxValueBytes: INLINE_MAX_VALUE_BYTES,
        maxReadMs: INLINE_MAX_READ_MS,
        pauseMs: INLINE_PAUSE_MS,
      });
  }

  /** Start-up fails when a worker cannot start (e.g. the memory ceiling cannot be set). */
  async onModuleInit(): Promise<void> {
    try {
      await this.ready();
    } catch (error) {
      await this.onModuleDestroy();
      throw error;
    }
  }

  /**
   * Runs a job for a principal within timeoutMs from the moment a worker takes it (writes:
   * WRITE_TIMEOUT_MS unless given).
   */
  run<T>(job: SqlJob, principal: Principal, timeoutMs?: number): Promise<T> {
    const pool = READ_JOBS.has(job.kind) ? this.readers : this.writer;
    const options = {
      principal: principal.subject,
      timeoutMs: timeoutMs ?? this.cfg.writeTimeoutMs,
      timeoutSource: timeoutMs === undefined ? 'WRITE_TIMEOUT_MS' : 'timeout_ms',
    };
    const inline = this.inline;
    if (job.kind !== 'query' || !inline) return pool.run<T>(job, options);
    const result = inline.run(job);
    if (result) return Promise.resolve(result as T);
    // A worker runs it, and judges whether the main process may run this text from now on.
    return pool.run<JudgedRead>({ ...job, kind: 'judgedQuery' }, options).then((judged) => {
      if (judged.boundedAt !== null) inline.admit(job.sql, judged.boundedAt);
      return judged.result as T;
    });
  }

  /** Size limits of the rows every tool returns (QUERY_MAX_RESULT_BYTES, QUERY_MAX_CELL_CHARS). */
  get limits(): SizeLimits {
    return { maxBytes: this.cfg.maxResultBytes, maxCellChars: this.cfg.maxCellChars };
  }

  /** Resolves once every SQL worker is ready (none starting or being replaced). */
  async ready(): Promise<void> {
    await Promise.all([this.readers.ready(), this.writer.ready()]);
  }

  /** Process ids of the SQL workers (their memory can be read in /proc/<pid>/status). */
  get workerPids(): { readers: number[]; writer: number[] } {
    return { readers: this.readers.pids, writer: this.writer.pids };
  }

  async onModuleDestroy(): Promise<void> {
    this.inline?.close();
    await Promise.all([this.readers.close(), this.writer.close()]);
  }
}
