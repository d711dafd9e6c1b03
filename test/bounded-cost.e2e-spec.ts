import Database from 'better-sqlite3';
import { SqlExecutor } from '../src/database/sqlite/sql-executor.js';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { sampleMemory } from './support/proc.js';
import { textOf, type ToolClient, toolClient } from './support/tool-client.js';

// Issue 9, "Bounded cost for every caller" and "Writes wait for the lock", attacked as an
// ordinary token holder would. (This build of SQLite caps a value at 2^29 bytes, SQLITE_TOOBIG
// beyond: the attacks build values under that cap and over the 512 MiB ceiling with the rest.)

const ALL_SCOPES = 'db:query db:modify db:admin';
/** Never ends on its own: only the deadline stops it. */
const RUNAWAY =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c';
const MIB = 1024 * 1024;
/** The issue's bound for another principal's small read while an attack runs: "well under a second". */
const WELL_UNDER_A_SECOND_MS = 1000;

/** `SELECT :a || :a || ...`, n times: the issue's program that looked like a bounded key lookup. */
const concatenation = (n: number) =>
  `SELECT ${Array.from({ length: n }, () => ':a').join(' || ')} AS s`;
const ONE_MB = 'a'.repeat(1_000_000);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('bounded cost for every caller', () => {
  let issuer: TestIssuer;
  /** A client for the principal `sub`, with every scope. */
  const principal = (sut: TestApp, sub: string, settled?: string[]): ToolClient =>
    toolClient(
      sut.mcpUrl,
      issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES, claims: { sub } }),
      { settled },
    );

  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(async () => {
    await issuer.close();
  });

  describe('memory: with the default SQL_WORKER_MEMORY_MB (512)', () => {
    const CEILING = 512 * MIB;
    let sut: TestApp;
    let attacker: ToolClient;
    let victim: ToolClient;
    const workerPids = () => {
      const { readers, writer } = sut.app.get(SqlExecutor).workerPids;
      return [...readers, ...writer];
    };

    beforeAll(async () => {
      sut = await startTestApp({ AUTH_ISSUER: issuer.url });
      attacker = principal(sut, 'attacker');
      victim = principal(sut, 'victim', attacker.settled);
      await victim.ok('apply_migration', {
        name: 'bc_notes',
        sql: 'CREATE TABLE bc_notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)',
      });
      await victim.ok('execute', { sql: "INSERT INTO bc_notes VALUES (1, 'kept')" });
    });
    afterAll(async () => {
      await sut.close();
    });

    it("runs the issue's 64-fold concatenation of a 1 MB parameter off the main process: another principal's key lookups are answered meanwhile", async () => {
      attacker.settled.length = 0;
      let answered = false;
      const attack = attacker
        .timed('concatenation', 'query', {
          sql: concatenation(64),
          params: { a: ONE_MB },
          timeout_ms: 30_000, // its memory is what is tested, not its time (a loaded machine is slow)
        })
        .finally(() => (answered = true));

      const lookups: number[] = [];
      while (!answered) {
        const { result, ms } = await victim.timed('lookup', 'query', {
          sql: 'SELECT body FROM bc_notes WHERE id = ?',
          params: [1],
        });
        expect(result.structuredContent).toMatchObject({ rows: [['kept']] });
        lookups.push(ms);
      }
      const { result } = await attack;

      expect(attacker.settled[0]).toBe('lookup');
      expect(Math.max(...lookups)).toBeLessThan(WELL_UNDER_A_SECOND_MS);
      // Within the ceiling it is answered (shortened); past it, refused by the memory limit.
      expect(textOf(result)).toMatch(
        result.isError ? /^Error \[MEMORY_LIMIT\]: .*SQL_WORKER_MEMORY_MB/ : /^1 row in /,
      );
    });

    it.each([
      ["the issue's 300-fold concatenation of a 1 MB parameter", concatenation(300), { a: ONE_MB }],
      ['a 500 MB randomblob', 'SELECT length(randomblob(500000000)) AS n', undefined],
      ['a 500 MB zeroblob, returned', 'SELECT zeroblob(500000000) AS z', undefined],
      ['a 500 MB printf', "SELECT length(printf('%.*c', 500000000, 'x')) AS n", undefined],
      [
        'group_concat over a recursive CTE of 100000 rows',
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT length(group_concat(printf('%.10000c', 'x'))) FROM c",
        undefined,
      ],
    ])(
      '%s: MEMORY_LIMIT naming the setting; no worker past the ceiling; the worker replaced; others served',
      async (_attack, sql, params) => {
        await sut.app.get(SqlExecutor).ready();
        const mainBefore = process.memoryUsage().rss;
        const pidsBefore = workerPids();
        const memory = sampleMemory(workerPids);

        const result = await attacker.call('query', { sql, params, timeout_ms: 30_000 });
        const samples = memory.stop();

        expect(result.isError).toBe(true);
        expect(textOf(result)).toBe(
          'Error [MEMORY_LIMIT]: The statement needed more memory than a database worker may use (512 MiB, SQL_WORKER_MEMORY_MB): it was stopped, nothing was changed, and the worker was replaced. Build smaller values, narrow the query, or aggregate.',
        );
        // The OS applied the ceiling to every worker, and none went past it.
        expect(samples.length).toBeGreaterThan(0);
        for (const sample of samples) {
          expect(sample.dataLimit).toBe(CEILING);
          expect(sample.vmData).toBeLessThanOrEqual(CEILING);
          expect(sample.rssAnon).toBeLessThanOrEqual(CEILING);
        }
        // The main process did not carry it (the issue's 300-fold one grew it to 23 GB).
        expect(process.memoryUsage().rss - mainBefore).toBeLessThan(256 * MIB);
        // Others, and the attacker, are served (by a worker: a function call is never inline).
        await expect(victim.ok('query', { sql: 'SELECT abs(-2) AS two' })).resolves.toMatchObject({
          rows: [[2]],
        });
        await expect(
          attacker.ok('query', { sql: 'SELECT count(*) AS n FROM bc_notes' }),
        ).resolves.toMatchObject({ rows: [[1]] });
        // The worker that ran it is gone, and another took its place.
        await sut.app.get(SqlExecutor).ready();
        const pidsAfter = workerPids();
        expect(pidsBefore.filter((pid) => !pidsAfter.includes(pid))).toHaveLength(1);
        expect(pidsAfter).toHaveLength(pidsBefore.length);
      },
    );

    it('applies the ceiling to the writer too: a write past it changes nothing', async () => {
      const result = await attacker.call('execute', {
        sql: "UPDATE bc_notes SET body = printf('%.*c', 500000000, 'x') WHERE id = 1",
      });

      expect(textOf(result)).toMatch(/^Error \[MEMORY_LIMIT\]: .*SQL_WORKER_MEMORY_MB/);
      const db = new Database(sut.databasePath, { readonly: true, fileMustExist: true });
      try {
        expect(db.prepare('SELECT body FROM bc_notes WHERE id = 1').get()).toEqual({
          body: 'kept',
        });
      } finally {
        db.close();
      }
      await expect(
        victim.ok('execute', { sql: "INSERT INTO bc_notes VALUES (2, 'after')" }),
      ).resolves.toMatchObject({ affected_rows: 1 });
    });
  });

  describe('starvation: two workers, SQL_MAX_IN_FLIGHT_PER_PRINCIPAL=4, SQL_QUEUE_TIMEOUT_MS=2000', () => {
    let sut: TestApp;

    beforeAll(async () => {
      sut = await startTestApp({
        AUTH_ISSUER: issuer.url,
        QUERY_WORKERS: '2',
        SQL_MAX_IN_FLIGHT_PER_PRINCIPAL: '4',
        SQL_QUEUE_TIMEOUT_MS: '2000',
      });
    });
    afterAll(async () => {
      await sut.close();
    });

    it("leaves another principal's small reads answered well under a second while one token runs three runaways; that token's extra calls wait their bound or are refused", async () => {
      const settled: string[] = [];
      const attacker = principal(sut, 'runaway-author', settled);
      const others = [principal(sut, 'colleague', settled), principal(sut, 'auditor', settled)];
      const runaways = [1, 2, 3].map((n) =>
        attacker.timed(`runaway ${n}`, 'query', { sql: RUNAWAY, timeout_ms: 20_000 }),
      );
      await sleep(300); // every runaway has reached the server

      const fourth = attacker.timed('fourth', 'query', { sql: 'SELECT abs(4) AS four' });
      await sleep(100);
      const fifth = await attacker.timed('fifth', 'query', { sql: 'SELECT abs(5) AS five' });
      const served: number[] = [];
      for (let round = 0; round < 5; round++)
        for (const [index, other] of others.entries()) {
          // Function calls and the catalog: a worker's work, never the main process's.
          const { result, ms } =
            index === 0
              ? await other.timed('read', 'query', { sql: 'SELECT abs(?) AS n', params: [round] })
              : await other.timed('read', 'list_tables', {});
          expect(result.isError ?? false).toBe(false);
          served.push(ms);
        }
      const [first, second, third] = await Promise.all(runaways);
      const waited = await fourth;

      expect(Math.max(...served)).toBeLessThan(WELL_UNDER_A_SECOND_MS);
      // One principal holds one of the two workers; it has at most four calls in flight.
      expect(textOf(fifth.result)).toBe(
        'Error [IN_FLIGHT_LIMIT]: You already have 4 SQL statements running or waiting for a database worker (SQL_MAX_IN_FLIGHT_PER_PRINCIPAL=4); nothing was run. Wait for one to finish.',
      );
      // One runaway ran until its deadline; the other two, and the fourth call, waited their bound.
      const ran = [first, second, third].filter(({ result }) =>
        /^Error \[TIMEOUT\]: .*after running 20000 ms/.test(textOf(result)),
      );
      expect(ran).toHaveLength(1);
      for (const queued of [first, second, third, waited].filter((call) => !ran.includes(call)))
        expect(textOf(queued.result)).toMatch(
          /^Error \[QUEUE_TIMEOUT\]: Waited 2000 ms .*nothing was run/,
        );
      expect(settled.at(-1)).toMatch(/^runaway /);
    }, 40_000);
  });

  describe('burst: 400 one-row UPDATEs through execute alongside 400 reads', () => {
    const PRINCIPALS = 50;
    const CALLS_EACH = 8; // updates, and as many reads, per principal
    const ROWS = 40;
    let sut: TestApp;

    beforeAll(async () => {
      sut = await startTestApp({ AUTH_ISSUER: issuer.url });
      const admin = principal(sut, 'burst-admin');
      await admin.ok('apply_migration', {
        name: 'bc_counters',
        sql: 'CREATE TABLE bc_counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)',
      });
      await admin.ok('execute', {
        sql: `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS}) INSERT INTO bc_counters SELECT i, 0 FROM n`,
      });
    });
    afterAll(async () => {
      await sut.close();
    });

    it('succeeds in full, every change applied exactly once', async () => {
      const calls = Array.from({ length: PRINCIPALS }, (_, p) => {
        const client = principal(sut, `burst-${p}`);
        return Array.from({ length: CALLS_EACH }, async (_, k) => {
          const id = ((p * CALLS_EACH + k) % ROWS) + 1;
          const update = await client.call('execute', {
            sql: 'UPDATE bc_counters SET value = value + 1 WHERE id = ?',
            params: [id],
          });
          const read =
            k % 2 === 0
              ? await client.call('query', {
                  sql: 'SELECT value FROM bc_counters WHERE id = ?',
                  params: [id],
                })
              : await client.call('query', { sql: 'SELECT sum(value) AS total FROM bc_counters' });
          return { update, read };
        });
      }).flat();

      const results = await Promise.all(calls);

      const failures = results
        .flatMap(({ update, read }) => [update, read])
        .filter((result) => result.isError)
        .map(textOf);
      expect(failures).toEqual([]);
      expect(results.map(({ update }) => update.structuredContent?.affected_rows)).toEqual(
        results.map(() => 1),
      );
      const db = new Database(sut.databasePath, { readonly: true, fileMustExist: true });
      try {
        const each = (PRINCIPALS * CALLS_EACH) / ROWS;
        expect(db.prepare('SELECT id, value FROM bc_counters ORDER BY id').all()).toEqual(
          Array.from({ length: ROWS }, (_, i) => ({ id: i + 1, value: each })),
        );
      } finally {
        db.close();
      }
    }, 60_000);

    it('succeeds in full from one token sending all 800 calls at once', async () => {
      const values = () => {
        const db = new Database(sut.databasePath, { readonly: true, fileMustExist: true });
        try {
          return db.prepare<[], number>('SELECT value FROM bc_counters ORDER BY id').pluck().all();
        } finally {
          db.close();
        }
      };
      const before = values();
      const client = principal(sut, 'burst-alone');
      const updates = Array.from({ length: 400 }, (_, k) =>
        client.call('execute', {
          sql: 'UPDATE bc_counters SET value = value + 1 WHERE id = ?',
          params: [(k % ROWS) + 1],
        }),
      );
      const reads = Array.from({ length: 400 }, (_, k) =>
        k % 2 === 0
          ? client.call('query', {
              sql: 'SELECT value FROM bc_counters WHERE id = ?',
              params: [(k % ROWS) + 1],
            })
          : client.call('query', { sql: 'SELECT sum(value) AS total FROM bc_counters' }),
      );

      const results = await Promise.all([...updates, ...reads]);

      expect(results.filter((result) => result.isError).map(textOf)).toEqual([]);
      expect(values()).toEqual(before.map((value) => value + 400 / ROWS));
    }, 60_000);
  });
});
