import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { databaseConfig } from '../config/configuration.js';
import { READ_JOBS, type SqlJob } from './sql-jobs.js';
import { SqlWorkerPool, sqlWorkerFile } from './sql-worker-pool.js';
import { SqliteDatabase } from './sqlite-database.js';

/**
 * Runs the tools' SQL off the main thread: reads on a pool of read-only connections, writes on
 * one read-write connection (SQLite has one writer at a time), each job with a deadline.
 */
@Injectable()
export class SqlExecutor implements OnModuleDestroy {
  private readonly logger = new Logger(SqlExecutor.name);
  private readonly readers: SqlWorkerPool;
  private readonly writer: SqlWorkerPool;

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
  }

  /** Runs a job within timeoutMs (writes: WRITE_TIMEOUT_MS unless given). */
  run<T>(job: SqlJob, timeoutMs?: number): Promise<T> {
    const read = READ_JOBS.has(job.kind);
    return (read ? this.readers : this.writer).run<T>(job, timeoutMs ?? this.cfg.writeTimeoutMs);
  }

  get limits() {
    return { maxBytes: this.cfg.maxResultBytes, maxCellChars: this.cfg.maxCellChars };
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all([this.readers.close(), this.writer.close()]);
  }
}
