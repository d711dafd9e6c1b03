import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { databaseConfig } from '../config/configuration.js';
import { InlineReader } from './inline-reader.js';
import { READ_JOBS, type SqlJob } from './sql-jobs.js';
import { SqlWorkerPool, sqlWorkerFile } from './sql-worker-pool.js';
import { SqliteDatabase } from './sqlite-database.js';

/** An inline read of larger values than this pauses inline reads (InlineReader) for a minute. */
const INLINE_MAX_VALUE_BYTES = 1024 * 1024;
const INLINE_PAUSE_MS = 60_000;

/**
 * Runs the tools' SQL off the main thread: reads on a pool of read-only connections, writes on
 * one read-write connection (SQLite has one writer at a time), each job with a deadline. Reads
 * whose compiled program is bounded (key lookups) run on the main thread instead, unless
 * QUERY_INLINE_READS=false (InlineReader).
 */
@Injectable()
export class SqlExecutor implements OnModuleDestroy {
  private readonly logger = new Logger(SqlExecutor.name);
  private readonly readers: SqlWorkerPool;
  private readonly writer: SqlWorkerPool;
  private readonly inline: InlineReader | undefined;

  constructor(
    // Injected first so that the database file exists and is migrated before workers open it.
    database: SqliteDatabase,
    @Inject(databaseConfig.KEY) private readonly cfg: ConfigType<typeof databaseConfig>,
  ) {
    const file = sqlWorkerFile();
    const common = { path: database.path, busyTimeoutMs: cfg.busyTimeoutMs };
    const report = (error: Error) =>
      this.logger.error(`SQL worker failed: ${error.message}`, error.stack);
    this.readers = new SqlWorkerPool(file, { ...common, readonly: true }, cfg.queryWorkers, report);
    this.writer = new SqlWorkerPool(file, { ...common, readonly: false }, 1, report);
    if (cfg.inlineReads)
      this.inline = new InlineReader({
        path: database.path,
        maxValueBytes: INLINE_MAX_VALUE_BYTES,
        pauseMs: INLINE_PAUSE_MS,
      });
  }

  /** Runs a job within timeoutMs (writes: WRITE_TIMEOUT_MS unless given). */
  run<T>(job: SqlJob, timeoutMs?: number): Promise<T> {
    if (job.kind === 'query' && this.inline) {
      const result = this.inline.run(job);
      if (result) return Promise.resolve(result as T);
    }
    const read = READ_JOBS.has(job.kind);
    return (read ? this.readers : this.writer).run<T>(job, timeoutMs ?? this.cfg.writeTimeoutMs);
  }

  get limits() {
    return { maxBytes: this.cfg.maxResultBytes, maxCellChars: this.cfg.maxCellChars };
  }

  async onModuleDestroy(): Promise<void> {
    this.inline?.close();
    await Promise.all([this.readers.close(), this.writer.close()]);
  }
}
