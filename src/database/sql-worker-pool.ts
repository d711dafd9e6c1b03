import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SqlJob } from './sql-jobs.js';
import type { SqlWorkerData, SqlWorkerReply } from './sql.worker.js';
import { SqlError } from './sqlite/errors.js';

/**
 * The compiled worker beside this module (dist/database). When this module itself runs from
 * source (the test runner compiles TypeScript in memory), the build of the same source.
 */
export function sqlWorkerFile(): URL {
  const sibling = new URL('./sql.worker.js', import.meta.url);
  if (existsSync(fileURLToPath(sibling))) return sibling;
  const built = new URL('../../dist/database/sql.worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error('dist/database/sql.worker.js is missing: run npm run build');
}

interface Task {
  id: number;
  job: SqlJob;
  timeoutMs: number;
  timer: NodeJS.Timeout;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * Worker processes, each with its own SQLite connection. better-sqlite3 is synchronous: a runaway
 * statement would block the worker running it, so each job runs in a worker that is killed (and
 * replaced) when the job's deadline passes. Processes, not threads: terminating a thread does not
 * stop SQLite's native loop, which would keep a CPU, its snapshot or the write lock forever.
 * Jobs wait in a queue while all workers are busy; the deadline counts from the call, queueing
 * included.
 */
export class SqlWorkerPool {
  private readonly idle: ChildProcess[] = [];
  private readonly running = new Map<ChildProcess, Task>();
  private readonly queue: Task[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly file: URL,
    private readonly data: SqlWorkerData,
    private readonly size: number,
    private readonly onWorkerError: (error: Error) => void,
  ) {
    for (let i = 0; i < size; i++) this.spawn();
  }

  run<T>(job: SqlJob, timeoutMs: number): Promise<T> {
    if (this.closed)
      return Promise.reject(new SqlError('The server is shutting down.', 'SHUTDOWN'));
    return new Promise<T>((resolve, reject) => {
      const task: Task = {
        id: this.nextId++,
        job,
        timeoutMs,
        timer: setTimeout(() => this.expire(task), timeoutMs),
        resolve: resolve as (value: unknown) => void,
        reject,
      };
      this.queue.push(task);
      this.dispatch();
    });
  }

  /** Waits for running jobs, then stops every worker. */
  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.queue.splice(0))
      this.settle(task, new SqlError('The server is shutting down.', 'SHUTDOWN'));
    while (this.running.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await Promise.all(
      this.idle.splice(0).map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.exitCode !== null || worker.signalCode !== null) return resolve();
            worker.once('exit', () => resolve());
            worker.kill();
          }),
      ),
    );
  }

  private spawn(): void {
    const worker = fork(fileURLToPath(this.file), [JSON.stringify(this.data)], {
      serialization: 'json',
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    worker.on('message', (reply: SqlWorkerReply) => {
      const task = this.running.get(worker);
      if (!task || task.id !== reply.id) return;
      this.running.delete(worker);
      this.idle.push(worker);
      if (reply.ok) this.settle(task, undefined, reply.value);
      else this.settle(task, new SqlError(reply.message, reply.code ?? 'SQL_ERROR'));
      this.dispatch();
    });
    worker.on('error', (error) => {
      this.onWorkerError(error);
      this.replace(
        worker,
        new SqlError(`The database worker failed: ${error.message}`, 'WORKER_FAILED'),
      );
    });
    worker.on('exit', () =>
      this.replace(worker, new SqlError('The database worker stopped.', 'WORKER_FAILED')),
    );
    this.idle.push(worker);
  }

  /** Drops a worker that died or was terminated, fails its job, and starts another. */
  private replace(worker: ChildProcess, error: Error): void {
    const task = this.running.get(worker);
    const wasKnown = this.running.delete(worker) || this.remove(this.idle, worker);
    if (task) this.settle(task, error);
    if (wasKnown && !this.closed) {
      this.spawn();
      this.dispatch();
    }
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const task = this.queue.shift()!;
      this.running.set(worker, task);
      worker.send({ id: task.id, job: task.job });
    }
  }

  private expire(task: Task): void {
    const error = new SqlError(
      `The statement was cancelled after ${task.timeoutMs} ms (timeout_ms): narrow it (WHERE, LIMIT), aggregate, or allow more time.`,
      'TIMEOUT',
    );
    if (this.remove(this.queue, task)) return this.settle(task, error);
    for (const [worker, running] of this.running)
      if (running === task) {
        // A synchronous statement cannot be interrupted from here: the process goes, and with it
        // the connection and its locks (the next connection rolls back its open transaction).
        this.running.delete(worker);
        this.settle(task, error);
        worker.kill('SIGKILL');
        if (!this.closed) this.spawn();
        this.dispatch();
        return;
      }
  }

  private settle(task: Task, error?: Error, value?: unknown): void {
    clearTimeout(task.timer);
    if (error) task.reject(error);
    else task.resolve(value);
  }

  private remove<T>(list: T[], item: T): boolean {
    const index = list.indexOf(item);
    if (index >= 0) list.splice(index, 1);
    return index >= 0;
  }
}
