import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SqlJob } from './sql-jobs.js';
import type { SqlWorkerData, SqlWorkerReady, SqlWorkerReply } from './sql.worker.js';
import type { InFlightLimit } from '../in-flight-limit.js';
import type { WorkerReplacement } from '../../metrics/metrics.service.js';
import { SqlError } from '../sql-values.js';

/**
 * The compiled worker beside this module (dist/database/sqlite). When this module itself runs from
 * source (the test runner compiles TypeScript in memory), the build of the same source.
 */
export function sqlWorkerFile(): URL {
  const sibling = new URL('./sql.worker.js', import.meta.url);
  if (existsSync(fileURLToPath(sibling))) return sibling;
  const built = new URL('../../../dist/database/sqlite/sql.worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error('dist/database/sqlite/sql.worker.js is missing: run npm run build');
}

export interface SqlWorkerPoolOptions {
  /** Worker processes. */
  size: number;
  /** Memory ceiling of each worker process (RLIMIT_DATA), MiB. */
  memoryMb: number;
  /** Longest wait for a free worker, ms: past it the job is refused, never run. */
  queueTimeoutMs: number;
  /** Jobs in flight per principal (shared by the read and the write pool). */
  inFlight: InFlightLimit;
  /** A worker failed to start or failed outside any job. */
  onWorkerError: (error: Error) => void;
  /** A worker was stopped and another started in its place: why (for the metrics). */
  onWorkerReplaced: (reason: WorkerReplacement) => void;
}

export interface SqlRunOptions {
  /** Who the job is for (the token's `sub`): the unit of fair sharing. */
  principal: string;
  /** The statement's deadline, counted from the moment a worker takes it. */
  timeoutMs: number;
  /** What set the deadline (`timeout_ms`, `WRITE_TIMEOUT_MS`), named in the TIMEOUT error. */
  timeoutSource: string;
}

interface Task extends SqlRunOptions {
  id: number;
  job: SqlJob;
  queuedAt: number;
  /** Waiting: the queue bound; running: the statement's deadline. */
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

interface Worker {
  child: ChildProcess;
  /** It opened its connection and takes jobs. */
  ready: boolean;
  /** One of the workers the pool started with (if one cannot start, neither can the pool). */
  initial: boolean;
  /** The end of what it wrote to stderr: why it died, when it did. */
  stderr: string;
}

const STDERR_TAIL_CHARS = 4096;
/** A worker that dies before it is ready is started again after this long, not in a loop. */
const RESPAWN_DELAY_MS = 1000;
/** V8's and the C++ runtime's last words when an allocation fails for good. */
const OUT_OF_MEMORY = /out of memory|bad_alloc/i;
/**
 * Sets the memory ceiling, then becomes the worker: `sh -c` because Node cannot set a child's
 * rlimits. RLIMIT_DATA bounds the heap (malloc, anonymous mmap) and not the address space V8
 * reserves, so SQLite's allocations fail with SQLITE_NOMEM at the ceiling. Without -H/-S both the
 * soft and the hard limit are set: the worker cannot raise them again.
 */
const LIMITED_EXEC = 'ulimit -d "$1" && shift && exec "$@"';

/** Why a worker is replaced, from the error its job (if any) was failed with. */
function replacementOf(error: Error): WorkerReplacement {
  const code = error instanceof SqlError ? error.code : undefined;
  if (code === 'TIMEOUT') return 'deadline';
  if (code === 'MEMORY_LIMIT') return 'memory_limit';
  return 'failed';
}

/** V8's heap ceiling within the process's: the rest is left to SQLite and Node itself. */
export function workerHeapMb(memoryMb: number): number {
  return Math.max(32, Math.floor(memoryMb / 2));
}

/**
 * Worker processes, each with its own SQLite connection, shared fairly among principals.
 *
 * - Bounded time: better-sqlite3 is synchronous, so a runaway statement would block the worker
 *   running it; a job's worker is killed (and replaced) when its deadline passes. Processes, not
 *   threads: terminating a thread does not stop SQLite's native loop, which would keep a CPU, its
 *   snapshot or the write lock forever.
 * - Bounded memory: each worker runs under an OS memory limit (LIMITED_EXEC). This build of
 *   better-sqlite3 accepts `PRAGMA hard_heap_limit` but does not enforce it (it is compiled with
 *   SQLITE_DEFAULT_MEMSTATUS=0), so the operating system enforces the ceiling. A job that reaches
 *   it fails with MEMORY_LIMIT (SQLite's SQLITE_NOMEM, or V8's fatal out-of-memory abort) and its
 *   worker is replaced.
 * - Fair sharing: jobs wait in one queue per principal, served round-robin; a principal holds at
 *   most max(1, size - 1) workers at once, so one caller's runaways always leave a worker to the
 *   others; and has at most `inFlight.max` jobs queued or running (beyond: refused at once).
 * - Bounded waiting: a job waits at most `queueTimeoutMs` for a worker (then it is refused, never
 *   run); its own deadline starts when a worker takes it.
 */
export class SqlWorkerPool {
  /** Most workers one principal may hold at once. */
  readonly maxHeldPerPrincipal: number;
  private readonly workers = new Set<Worker>();
  private readonly idle: Worker[] = [];
  private readonly running = new Map<Worker, Task>();
  /** Waiting jobs per principal; the Map's order is the round-robin order. */
  private readonly queues = new Map<string, Task[]>();
  /** Workers held per principal. */
  private readonly held = new Map<string, number>();
  private startError: Error | undefined;
  private readonly readyWaiters: ((error?: Error) => void)[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly file: URL,
    private readonly data: SqlWorkerData,
    private readonly options: SqlWorkerPoolOptions,
  ) {
    this.maxHeldPerPrincipal = Math.max(1, options.size - 1);
    for (let i = 0; i < options.size; i++) this.spawn(true);
  }

  /**
   * Resolves once every worker is ready (none starting or being replaced); rejects if one of
   * those the pool started with could not start.
   */
  ready(): Promise<void> {
    if (this.closed)
      return Promise.reject(new SqlError('The server is shutting down.', 'SHUTDOWN'));
    if (this.startError) return Promise.reject(this.startError);
    if (this.allReady()) return Promise.resolve();
    return new Promise((resolve, reject) =>
      this.readyWaiters.push((error) => (error ? reject(error) : resolve())),
    );
  }

  /** Process ids of the workers that take jobs (for operators and tests: /proc/<pid>/status). */
  get pids(): number[] {
    return [...this.workers].flatMap(({ child, ready }) =>
      ready && child.pid !== undefined ? [child.pid] : [],
    );
  }

  run<T>(job: SqlJob, options: SqlRunOptions): Promise<T> {
    if (this.closed)
      return Promise.reject(new SqlError('The server is shutting down.', 'SHUTDOWN'));
    const { inFlight, queueTimeoutMs } = this.options;
    if (!inFlight.tryAcquire(options.principal))
      return Promise.reject(
        new SqlError(
          `You already have ${inFlight.max} SQL statements running or waiting for a database worker (SQL_MAX_IN_FLIGHT_PER_PRINCIPAL=${inFlight.max}); nothing was run. Wait for one to finish.`,
          'IN_FLIGHT_LIMIT',
        ),
      );
    return new Promise<T>((resolve, reject) => {
      const task: Task = {
        ...options,
        id: this.nextId++,
        job,
        queuedAt: performance.now(),
        timer: undefined,
        settled: false,
        resolve: resolve as (value: unknown) => void,
        reject,
      };
      task.timer = setTimeout(() => this.expireWaiting(task), queueTimeoutMs);
      const queue = this.queues.get(task.principal);
      if (queue) queue.push(task);
      else this.queues.set(task.principal, [task]);
      this.dispatch();
    });
  }

  /** Refuses waiting jobs, waits for running ones, then stops every worker. */
  async close(): Promise<void> {
    this.closed = true;
    for (const queue of this.queues.values())
      for (const task of queue)
        this.settle(task, new SqlError('The server is shutting down.', 'SHUTDOWN'));
    this.queues.clear();
    this.notifyReady(new SqlError('The server is shutting down.', 'SHUTDOWN'));
    while (this.running.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const stopping = [...this.workers].map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill();
        }),
    );
    this.workers.clear();
    this.idle.length = 0;
    await Promise.all(stopping);
  }

  private spawn(initial: boolean): void {
    const { memoryMb } = this.options;
    const child = spawn(
      '/bin/sh',
      [
        '-c',
        LIMITED_EXEC,
        'scopedb-sql-worker',
        String(memoryMb * 1024),
        process.execPath,
        `--max-old-space-size=${workerHeapMb(memoryMb)}`,
        fileURLToPath(this.file),
        JSON.stringify(this.data),
      ],
      { serialization: 'json', stdio: ['ignore', 'inherit', 'pipe', 'ipc'] },
    );
    const worker: Worker = { child, ready: false, initial, stderr: '' };
    this.workers.add(worker);
    // Kept, not passed on: a worker that dies unexpectedly is reported with it (onWorkerError);
    // one that reached its memory ceiling answers its job with MEMORY_LIMIT, which is audited.
    child.stderr!.on('data', (chunk: Buffer) => {
      worker.stderr = (worker.stderr + chunk.toString()).slice(-STDERR_TAIL_CHARS);
    });
    child.on('message', (message: SqlWorkerReady | SqlWorkerReply) =>
      this.received(worker, message),
    );
    child.on('error', (error) => {
      if (!this.workers.has(worker)) return;
      if (worker.ready) this.options.onWorkerError(error);
      else this.failedToStart(worker, error.message);
      this.retire(
        worker,
        new SqlError(`The database worker failed: ${error.message}`, 'WORKER_FAILED'),
      );
    });
    // 'close' rather than 'exit': stderr has been read to the end.
    child.on('close', (code, signal) => this.ended(worker, code, signal));
  }

  private received(worker: Worker, message: SqlWorkerReady | SqlWorkerReply): void {
    if (!this.workers.has(worker)) return;
    if ('ready' in message) {
      worker.ready = true;
      this.idle.push(worker);
      if (this.allReady()) this.notifyReady();
      this.dispatch();
      return;
    }
    const task = this.running.get(worker);
    if (!task || task.id !== message.id) return;
    if (!message.ok && message.outOfMemory) return this.retire(worker, this.memoryError());
    this.release(worker, task);
    this.idle.push(worker);
    if (message.ok) this.settle(task, undefined, message.value);
    else this.settle(task, new SqlError(message.message, message.code ?? 'SQL_ERROR'));
    this.dispatch();
  }

  private ended(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.workers.has(worker)) return; // retired by the pool: expected
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    const task = this.running.get(worker);
    if (task && OUT_OF_MEMORY.test(worker.stderr)) return this.retire(worker, this.memoryError());
    const output = worker.stderr.trim() || 'no output';
    if (!worker.ready) this.failedToStart(worker, `${how}: ${output}`);
    else this.options.onWorkerError(new Error(`A database worker stopped (${how}): ${output}`));
    this.retire(worker, new SqlError(`The database worker stopped (${how}).`, 'WORKER_FAILED'));
  }

  private failedToStart(worker: Worker, reason: string): void {
    const error = new Error(`A database worker could not start (${reason})`);
    this.options.onWorkerError(error);
    if (worker.initial) {
      this.startError ??= error;
      this.notifyReady(error);
    }
  }

  /** Stops a worker (if it still runs), fails its job with `error`, and starts another. */
  private retire(worker: Worker, error: Error): void {
    if (!this.workers.delete(worker)) return;
    const index = this.idle.indexOf(worker);
    if (index >= 0) this.idle.splice(index, 1);
    const task = this.running.get(worker);
    const alive = worker.child.exitCode === null && worker.child.signalCode === null;
    if (task) {
      this.release(worker, task);
      // Answered once the process is gone: what its statement did is then final (a migration's
      // ledger row is settled by the schema, which must no longer be able to change).
      if (alive) worker.child.once('exit', () => this.settle(task, error));
      else this.settle(task, error);
    }
    // A synchronous statement cannot be interrupted from here: the process goes, and with it the
    // connection and its locks (the next connection rolls back its open transaction).
    if (alive) worker.child.kill('SIGKILL');
    if (!this.closed) {
      this.options.onWorkerReplaced(replacementOf(error));
      if (worker.ready) this.spawn(false);
      else setTimeout(() => this.closed || this.spawn(false), RESPAWN_DELAY_MS).unref();
    }
    this.dispatch();
  }

  /** Gives idle workers the next jobs, one principal after another. */
  private dispatch(): void {
    while (this.idle.length > 0) {
      const task = this.nextTask();
      if (!task) return;
      const worker = this.idle.pop()!;
      clearTimeout(task.timer);
      const waitedMs = Math.round(performance.now() - task.queuedAt);
      task.timer = setTimeout(() => this.expireRunning(worker, task, waitedMs), task.timeoutMs);
      this.running.set(worker, task);
      this.held.set(task.principal, (this.held.get(task.principal) ?? 0) + 1);
      worker.child.send({ id: task.id, job: task.job });
    }
  }

  /** The first waiting job of the next principal in turn that may hold one more worker. */
  private nextTask(): Task | undefined {
    for (const [principal, queue] of this.queues) {
      if ((this.held.get(principal) ?? 0) >= this.maxHeldPerPrincipal) continue;
      const task = queue.shift()!;
      // To the back of the round.
      this.queues.delete(principal);
      if (queue.length > 0) this.queues.set(principal, queue);
      return task;
    }
    return undefined;
  }

  private expireWaiting(task: Task): void {
    const queue = this.queues.get(task.principal);
    const index = queue?.indexOf(task) ?? -1;
    if (!queue || index < 0) return;
    queue.splice(index, 1);
    if (queue.length === 0) this.queues.delete(task.principal);
    this.settle(
      task,
      new SqlError(
        `Waited ${this.options.queueTimeoutMs} ms for a free database worker (SQL_QUEUE_TIMEOUT_MS); nothing was run. Every worker is busy: try again shortly.`,
        'QUEUE_TIMEOUT',
      ),
    );
  }

  private expireRunning(worker: Worker, task: Task, waitedMs: number): void {
    if (this.running.get(worker) !== task) return;
    this.retire(
      worker,
      new SqlError(
        `The statement was cancelled after running ${task.timeoutMs} ms (${task.timeoutSource}; before it ran, it waited ${waitedMs} ms for a free database worker): narrow it (WHERE, LIMIT), aggregate, or allow more time.`,
        'TIMEOUT',
      ),
    );
  }

  private memoryError(): SqlError {
    return new SqlError(
      `The statement needed more memory than a database worker may use (${this.options.memoryMb} MiB, SQL_WORKER_MEMORY_MB): it was stopped, nothing was changed, and the worker was replaced. Build smaller values, narrow the query, or aggregate.`,
      'MEMORY_LIMIT',
    );
  }

  /** The worker no longer runs the task. */
  private release(worker: Worker, task: Task): void {
    this.running.delete(worker);
    const held = (this.held.get(task.principal) ?? 0) - 1;
    if (held > 0) this.held.set(task.principal, held);
    else this.held.delete(task.principal);
  }

  private settle(task: Task, error?: Error, value?: unknown): void {
    if (task.settled) return;
    task.settled = true;
    clearTimeout(task.timer);
    this.options.inFlight.release(task.principal);
    if (error) task.reject(error);
    else task.resolve(value);
  }

  private allReady(): boolean {
    return this.workers.size === this.options.size && [...this.workers].every(({ ready }) => ready);
  }

  private notifyReady(error?: Error): void {
    for (const waiter of this.readyWaiters.splice(0)) waiter(error);
  }
}
