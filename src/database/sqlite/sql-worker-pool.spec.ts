import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { match } from '../../../test/support/matchers.js';
import { processMemory } from '../../../test/support/proc.js';
import type { WorkerReplacement } from '../../metrics/metrics.service.js';
import type { SqlJob } from './sql-jobs.js';
import { InFlightLimit } from '../in-flight-limit.js';
import { SqlWorkerPool, type SqlWorkerPoolOptions, sqlWorkerFile } from './sql-worker-pool.js';
import type { ReadResult } from '../engine.js';

const RUNAWAY =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c';
const limits = { maxRows: 100, maxBytes: 262_144, maxCellChars: 2000 };
const query = (sql: string, params?: number[]): SqlJob => ({ kind: 'query', sql, params, limits });
const as = (principal: string, timeoutMs = 5000) => ({
  principal,
  timeoutMs,
  timeoutSource: 'timeout_ms',
});

describe(SqlWorkerPool.name, () => {
  let dir: string;
  let path: string;
  const pools: SqlWorkerPool[] = [];
  const workerErrors: Error[] = [];
  const replacements: WorkerReplacement[] = [];

  function poolOf(
    options: Partial<SqlWorkerPoolOptions> = {},
    readonly = true,
    databasePath = path,
  ): SqlWorkerPool {
    const pool = new SqlWorkerPool(
      sqlWorkerFile(),
      { path: databasePath, readonly, busyTimeoutMs: 1000 },
      {
        size: 2,
        memoryMb: 256,
        queueTimeoutMs: 10_000,
        inFlight: new InFlightLimit(8),
        onWorkerError: (error) => workerErrors.push(error),
        onWorkerReplaced: (reason) => replacements.push(reason),
        ...options,
      },
    );
    pools.push(pool);
    return pool;
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-pool-'));
    path = join(dir, 'pool.sqlite');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec(
      "CREATE TABLE audit_log (id INTEGER PRIMARY KEY); CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b')",
    );
    db.close();
  });
  beforeEach(() => {
    workerErrors.length = 0;
    replacements.length = 0;
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((pool) => pool.close()));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe('running jobs', () => {
    it('runs a job in a worker and returns its result', async () => {
      const sut = poolOf();

      const result = await sut.run<ReadResult>(
        query('SELECT v FROM t WHERE id = ?', [2]),
        as('alice'),
      );

      expect(result.rows).toEqual([['b']]);
    });

    it('carries a refusal back as an error with its code', async () => {
      const sut = poolOf();

      await expect(sut.run(query('DELETE FROM t'), as('alice'))).rejects.toMatchObject({
        code: 'NOT_READ_ONLY',
      });
    });

    it('is ready once its workers are, and refuses to start when a worker cannot', async () => {
      await expect(poolOf().ready()).resolves.toBeUndefined();

      const broken = poolOf({ size: 1 }, true, join(dir, 'missing.sqlite'));
      await expect(broken.ready()).rejects.toThrow(/A database worker could not start/);
      expect(workerErrors[0]?.message).toMatch(/could not start \(exit code 1: .*SQLITE_CANTOPEN/s);
    });

    it('refuses new jobs once closed, and the jobs still waiting', async () => {
      const sut = poolOf({ size: 1 });
      await sut.ready();
      const running = sut.run(query(RUNAWAY), as('alice', 300));
      const waiting = sut.run(query('SELECT 1'), as('bob'));

      const closed = sut.close();

      await expect(waiting).rejects.toMatchObject({ code: 'SHUTDOWN' });
      await expect(sut.run(query('SELECT 1'), as('bob'))).rejects.toMatchObject({
        code: 'SHUTDOWN',
      });
      await expect(running).rejects.toMatchObject({ code: 'TIMEOUT' });
      await closed;
    });
  });

  describe('deadlines', () => {
    it('terminates a runaway statement at its deadline, replaces the worker, and keeps serving', async () => {
      const sut = poolOf();
      await sut.ready();
      const before = sut.pids;
      const runaway = sut.run(query(RUNAWAY), as('alice', 300)).catch((error: unknown) => error);
      const quick = sut.run<ReadResult>(query('SELECT count(*) FROM t'), as('bob'));

      await expect(quick).resolves.toMatchObject({ rows: [[2]] });
      expect(await runaway).toMatchObject({
        code: 'TIMEOUT',
        message: match.stringMatching(/after running 300 ms \(timeout_ms; .*waited \d+ ms/),
      });
      for (let i = 0; i < 3; i++)
        await expect(sut.run(query('SELECT 1'), as('alice'))).resolves.toMatchObject({
          rows: [[1]],
        });
      await sut.ready();
      expect(sut.pids).toHaveLength(2);
      expect(sut.pids.filter((pid) => !before.includes(pid))).toHaveLength(1);
      expect(workerErrors).toEqual([]);
      expect(replacements).toEqual(['deadline']);
    });

    it('replaces a worker that dies outside its deadline, saying it failed', async () => {
      const sut = poolOf({ size: 1 });
      await sut.ready();
      const [before] = sut.pids;

      process.kill(before, 'SIGKILL');
      // Jest's timeout bounds the wait.
      while (replacements.length === 0) await new Promise((wait) => setTimeout(wait, 10));
      await sut.ready();
      await expect(sut.run(query('SELECT 1'), as('alice'))).resolves.toMatchObject({
        rows: [[1]],
      });

      expect(sut.pids).not.toContain(before);
      expect(replacements).toEqual(['failed']);
      expect(workerErrors).toEqual([
        match.objectContaining({ message: match.stringContaining('signal SIGKILL') }),
      ]);
    });

    it("counts a statement's deadline from the moment a worker takes it, not while it waits", async () => {
      const sut = poolOf({ size: 1 });
      const runaway = sut.run(query(RUNAWAY), as('alice', 600)).catch((error: unknown) => error);

      // Waits about 600 ms for the only worker: far past its own 100 ms, which it then keeps.
      const waited = sut.run<ReadResult>(query('SELECT 7'), as('bob', 100));

      await expect(waited).resolves.toMatchObject({ rows: [[7]] });
      expect(await runaway).toMatchObject({ code: 'TIMEOUT' });
    });

    it('refuses a job that waited SQL_QUEUE_TIMEOUT_MS for a worker, without running it', async () => {
      const writerPath = join(dir, 'queue-timeout.sqlite');
      const setup = new Database(writerPath);
      setup.pragma('journal_mode = WAL');
      setup.exec('CREATE TABLE marks (id INTEGER PRIMARY KEY)');
      setup.close();
      const sut = poolOf({ size: 1, queueTimeoutMs: 300 }, false, writerPath);
      await sut.ready(); // the runaway takes the worker at once, not after waiting for it to start
      const runaway = sut.run(
        { kind: 'execute', sql: `INSERT INTO marks SELECT (${RUNAWAY})`, dryRun: false, limits },
        as('alice', 1500),
      );

      const waiting = sut.run(
        { kind: 'execute', sql: 'INSERT INTO marks DEFAULT VALUES', dryRun: false, limits },
        as('bob'),
      );

      await expect(waiting).rejects.toMatchObject({
        code: 'QUEUE_TIMEOUT',
        message:
          'Waited 300 ms for a free database worker (SQL_QUEUE_TIMEOUT_MS); nothing was run. Every worker is busy: try again shortly.',
      });
      await expect(runaway).rejects.toMatchObject({ code: 'TIMEOUT' });
      const check = new Database(writerPath, { readonly: true });
      try {
        expect(check.prepare('SELECT count(*) AS n FROM marks').get()).toEqual({ n: 0 });
      } finally {
        check.close();
      }
    });
  });

  describe('fair sharing', () => {
    it('lets a principal hold at most max(1, workers - 1) workers', () => {
      expect([1, 2, 3, 8].map((size) => poolOf({ size }).maxHeldPerPrincipal)).toEqual([
        1, 1, 2, 7,
      ]);
    });

    it("keeps a worker for others while one principal's runaways wait for theirs", async () => {
      const sut = poolOf({ size: 2 });
      await sut.ready();
      const order: string[] = [];
      const track = (label: string, job: Promise<unknown>) =>
        job.then(
          () => order.push(label),
          () => order.push(`${label} failed`),
        );
      const runaways = [1, 2, 3].map((n) =>
        track(`runaway ${n}`, sut.run(query(RUNAWAY), as('alice', 1000))),
      );
      await new Promise((resolve) => setTimeout(resolve, 100));

      const started = performance.now();
      await track('bob', sut.run(query('SELECT abs(-1)'), as('bob')));
      const ms = performance.now() - started;
      await Promise.all(runaways);

      // The bound: well under a second (with room for a slow machine).
      expect(ms).toBeLessThan(1000);
      expect(order).toEqual(['bob', 'runaway 1 failed', 'runaway 2 failed', 'runaway 3 failed']);
    });

    it('serves waiting principals round-robin', async () => {
      const sut = poolOf({ size: 1 });
      const order: string[] = [];
      const blocker = sut.run(query(RUNAWAY), as('carol', 300));
      const jobs = [
        ['alice', 'a1'],
        ['alice', 'a2'],
        ['alice', 'a3'],
        ['bob', 'b1'],
        ['bob', 'b2'],
      ].map(([principal, label]) =>
        sut.run(query('SELECT 1'), as(principal)).then(() => order.push(label)),
      );

      await expect(blocker).rejects.toMatchObject({ code: 'TIMEOUT' });
      await Promise.all(jobs);

      expect(order).toEqual(['a1', 'b1', 'a2', 'b2', 'a3']);
    });

    it('refuses a job past SQL_MAX_IN_FLIGHT_PER_PRINCIPAL at once, over both pools', async () => {
      const inFlight = new InFlightLimit(3);
      const readers = poolOf({ size: 2, inFlight });
      const writer = poolOf({ size: 1, inFlight }, false);
      const alice = [
        readers.run(query(RUNAWAY), as('alice', 500)),
        readers.run(query('SELECT 1'), as('alice')),
        writer.run({ kind: 'listTables', includeViews: true }, as('alice')),
      ];

      await expect(readers.run(query('SELECT 1'), as('alice'))).rejects.toMatchObject({
        code: 'IN_FLIGHT_LIMIT',
        message:
          'You already have 3 SQL statements running or waiting for a database worker (SQL_MAX_IN_FLIGHT_PER_PRINCIPAL=3); nothing was run. Wait for one to finish.',
      });
      await expect(readers.run(query('SELECT 2'), as('bob'))).resolves.toMatchObject({
        rows: [[2]],
      });
      await Promise.allSettled(alice);
      expect(inFlight.inFlight('alice')).toBe(0);
      await expect(readers.run(query('SELECT 3'), as('alice'))).resolves.toMatchObject({
        rows: [[3]],
      });
    });
  });

  describe('memory ceiling', () => {
    it('runs every worker under RLIMIT_DATA = the ceiling', async () => {
      const sut = poolOf({ size: 2, memoryMb: 200 });
      await sut.ready();

      expect(sut.pids).toHaveLength(2);
      for (const pid of sut.pids) {
        const memory = processMemory(pid)!;
        expect(memory.dataLimit).toBe(200 * 1024 * 1024);
        expect(memory.vmData).toBeLessThanOrEqual(memory.dataLimit);
      }
    });

    it.each([
      ['SQLite runs out (SQLITE_NOMEM)', 'SELECT length(randomblob(300000000))'],
      ['V8 runs out (the worker aborts)', 'SELECT randomblob(70000000)'],
    ])(
      'answers MEMORY_LIMIT naming the setting when %s, and replaces the worker',
      async (_case, sql) => {
        const sut = poolOf({ size: 1, memoryMb: 160 });
        await sut.ready();
        const [before] = sut.pids;

        await expect(sut.run(query(sql), as('alice'))).rejects.toMatchObject({
          code: 'MEMORY_LIMIT',
          message: match.stringContaining('(160 MiB, SQL_WORKER_MEMORY_MB)'),
        });
        await expect(sut.run(query('SELECT 1'), as('alice'))).resolves.toMatchObject({
          rows: [[1]],
        });
        expect(sut.pids).toHaveLength(1);
        expect(sut.pids).not.toContain(before);
        expect(replacements).toEqual(['memory_limit']);
      },
    );
  });
});
