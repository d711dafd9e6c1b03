import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { runJob, type SqlJob } from './sql-jobs.js';

/** How often the watchdog thread checks that the pool's process is still this worker's parent, ms. */
const PARENT_CHECK_MS = 250;

/** What a worker is started with (as its one command-line argument, in JSON). */
export interface SqlWorkerData {
  path: string;
  readonly: boolean;
  busyTimeoutMs: number;
}

/** The worker's first message, once its connection is open. */
export interface SqlWorkerReady {
  ready: true;
}

export type SqlWorkerReply =
  | { id: number; ok: true; value: unknown }
  | {
      id: number;
      ok: false;
      message: string;
      code: string | undefined;
      /** An allocation failed: the worker reached its memory ceiling (the pool replaces it). */
      outOfMemory: boolean;
    };

// One SQLite connection per worker process; the pool kills the process at a job's deadline (a
// worker thread could not be stopped while SQLite's native code runs). The process runs under an
// OS memory limit (RLIMIT_DATA, set by the pool): an allocation past it fails, in SQLite as
// SQLITE_NOMEM, in a Buffer as a RangeError.
const config = JSON.parse(process.argv[2] ?? '{}') as SqlWorkerData;

// The pool kills a worker at its job's deadline; if the pool's process dies first (SIGKILL, out of
// memory), nothing would, and a runaway statement would keep a core and the write lock for as
// long as it runs. 'disconnect' cannot help while SQLite's native loop holds this thread, so a
// watchdog thread ends the process as soon as its parent is gone.
const parent = process.ppid;
if (parent <= 1) process.exit(1); // orphaned before it began
new Worker(
  `setInterval(() => { if (process.ppid !== ${parent}) process.kill(process.pid, 'SIGKILL'); }, ${PARENT_CHECK_MS});`,
  { eval: true },
).unref();
const db = new Database(config.path, { readonly: config.readonly, fileMustExist: true });
db.pragma(`busy_timeout = ${config.busyTimeoutMs}`);
if (config.readonly) db.pragma('query_only = 1');
else {
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');
}

function outOfMemory(error: unknown, code: unknown, message: string): boolean {
  return (
    code === 'SQLITE_NOMEM' || (error instanceof RangeError && /allocation failed/i.test(message))
  );
}

process.on('message', ({ id, job }: { id: number; job: SqlJob }) => {
  let reply: SqlWorkerReply;
  try {
    reply = { id, ok: true, value: runJob(db, job) };
  } catch (error) {
    const { message, code } = error as { message?: unknown; code?: unknown };
    const text = typeof message === 'string' ? message : String(error);
    reply = {
      id,
      ok: false,
      message: text,
      code: typeof code === 'string' ? code : undefined,
      outOfMemory: outOfMemory(error, code, text),
    };
  }
  process.send!(reply);
});
// The pool went away (its process ended): nothing more will come.
process.on('disconnect', () => {
  db.close();
  process.exit(0);
});
process.send!({ ready: true } satisfies SqlWorkerReady);
