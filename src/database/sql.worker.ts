import Database from 'better-sqlite3';
import { runJob, type SqlJob } from './sql-jobs.js';

/** What a worker is started with (as its one command-line argument, in JSON). */
export interface SqlWorkerData {
  path: string;
  readonly: boolean;
  busyTimeoutMs: number;
}

export type SqlWorkerReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; message: string; code: string | undefined };

// One SQLite connection per worker process; the pool kills the process at a job's deadline (a
// worker thread could not be stopped while SQLite's native code runs).
const config = JSON.parse(process.argv[2] ?? '{}') as SqlWorkerData;
const db = new Database(config.path, { readonly: config.readonly, fileMustExist: true });
db.pragma(`busy_timeout = ${config.busyTimeoutMs}`);
if (config.readonly) db.pragma('query_only = 1');
else {
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');
}

process.on('message', ({ id, job }: { id: number; job: SqlJob }) => {
  let reply: SqlWorkerReply;
  try {
    reply = { id, ok: true, value: runJob(db, job) };
  } catch (error) {
    const { message, code } = error as { message?: unknown; code?: unknown };
    reply = {
      id,
      ok: false,
      message: typeof message === 'string' ? message : String(error),
      code: typeof code === 'string' ? code : undefined,
    };
  }
  process.send!(reply);
});
// The pool went away (its process ended): nothing more will come.
process.on('disconnect', () => {
  db.close();
  process.exit(0);
});
