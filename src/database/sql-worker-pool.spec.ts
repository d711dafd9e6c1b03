import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { SqlJob } from './sql-jobs.js';
import { SqlWorkerPool, sqlWorkerFile } from './sql-worker-pool.js';
import type { ReadResult } from './sqlite/reads.js';

const RUNAWAY =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c';
const limits = { maxRows: 100, maxBytes: 262_144, maxCellChars: 2000 };
const query = (sql: string, params?: number[]): SqlJob => ({ kind: 'query', sql, params, limits });

describe(SqlWorkerPool.name, () => {
  let dir: string;
  let path: string;
  let sut: SqlWorkerPool;
  const workerErrors: Error[] = [];

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
    sut = new SqlWorkerPool(
      sqlWorkerFile(),
      { path, readonly: true, busyTimeoutMs: 1000 },
      2,
      (e) => workerErrors.push(e),
    );
  });
  afterEach(async () => {
    await sut.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs a job in a worker and returns its result', async () => {
    const result = await sut.run<ReadResult>(query('SELECT v FROM t WHERE id = ?', [2]), 5000);

    expect(result.rows).toEqual([['b']]);
  });

  it('carries a refusal back as an error with its code', async () => {
    await expect(sut.run(query('DELETE FROM t'), 5000)).rejects.toMatchObject({
      code: 'NOT_READ_ONLY',
    });
  });

  it('terminates a runaway statement at its deadline, replaces the worker, and keeps serving', async () => {
    const started = Date.now();
    const runaway = sut.run(query(RUNAWAY), 300);
    const quick = sut.run<ReadResult>(query('SELECT count(*) FROM t'), 5000);

    await expect(quick).resolves.toMatchObject({ rows: [[2]] });
    await expect(runaway).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(5000);
    for (let i = 0; i < 3; i++)
      await expect(sut.run(query('SELECT 1'), 5000)).resolves.toMatchObject({ rows: [[1]] });
    expect(workerErrors).toEqual([]);
  });

  it('counts queueing in the deadline: a job waiting behind busy workers times out too', async () => {
    const runaways = [sut.run(query(RUNAWAY), 2000), sut.run(query(RUNAWAY), 2000)];
    const queued = sut.run(query('SELECT 1'), 200);

    await expect(queued).rejects.toMatchObject({ code: 'TIMEOUT' });
    await Promise.all(
      runaways.map((job) => expect(job).rejects.toMatchObject({ code: 'TIMEOUT' })),
    );
    await expect(sut.run(query('SELECT 1'), 5000)).resolves.toMatchObject({ rows: [[1]] });
  });

  it('refuses new jobs once closed', async () => {
    await sut.close();

    await expect(sut.run(query('SELECT 1'), 5000)).rejects.toMatchObject({ code: 'SHUTDOWN' });
  });
});
