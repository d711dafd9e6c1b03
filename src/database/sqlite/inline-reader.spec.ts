import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  INLINE_MAX_PARAM_BYTES,
  INLINE_MAX_SQL_CHARS,
  InlineReader,
  type InlineReaderOptions,
  parameterBytes,
} from './inline-reader.js';
import { PAGE_SCHEMA } from '../../../test/support/sqlite-pages.js';
import type { SqlJob } from './sql-jobs.js';
import { boundedAt, readRows, runQuery, validatedRead } from './reads.js';
import type { ResultLimits } from '../result-rows.js';

const LIMITS: ResultLimits & { maxRows: number } = {
  maxRows: 100,
  maxBytes: 262_144,
  maxCellChars: 2000,
};

const SCHEMA = `${PAGE_SCHEMA}
  INSERT INTO items VALUES (1, 'A-1', 'apple', 1, 1.5), (2, 'P-2', 'pear', 1, 2.25), (3, 'F-3', 'fig', 2, 4);
  INSERT INTO pairs VALUES (1, 2, 'one-two');
  INSERT INTO owners VALUES (7, 2, 'olga');
`;

type QueryJob = Extract<SqlJob, { kind: 'query' }>;

/** A read of `sql` with these parameters, under LIMITS. */
const queryJob = (sql: string, params: QueryJob['params']): QueryJob => ({
  kind: 'query',
  sql,
  params,
  limits: LIMITS,
});
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An InlineReader whose jobs a worker's connection judges first (boundedAt), as SqlExecutor has a
 * worker judge every text before the main process may run it.
 */
function judgedReader(options: InlineReaderOptions) {
  const sut = new InlineReader(options);
  const worker = new Database(options.path, { readonly: true, timeout: 0 });
  return {
    run(job: QueryJob) {
      let at: number | null;
      try {
        at = boundedAt(worker, job.sql, job.params);
      } catch {
        at = null; // refused or busy: the worker would answer it, and admit nothing
      }
      if (at !== null) sut.admit(job.sql, at);
      return sut.run(job);
    },
    get paused() {
      return sut.paused;
    },
    close() {
      sut.close();
      worker.close();
    },
  };
}

describe('bounded reads', () => {
  let dir: string;
  let path: string;
  let db: Database.Database;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-inline-'));
    path = join(dir, 'db.sqlite');
    const setup = new Database(path);
    setup.exec(SCHEMA);
    setup.close();
    db = new Database(path, { readonly: true });
  });
  afterAll(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('isBoundedProgram (through the read checks)', () => {
    it.each([
      ['a primary-key lookup', 'SELECT id, name, price FROM items WHERE id = ?', [2]],
      ['a unique-index lookup', 'SELECT * FROM items WHERE sku = ?', ['P-2']],
      [
        'a composite primary key (WITHOUT ROWID)',
        'SELECT v FROM pairs WHERE a = ? AND b = ?',
        [1, 2],
      ],
      [
        'two key lookups joined',
        'SELECT o.name, i.name FROM owners o JOIN items i ON i.id = o.item_id WHERE o.id = ?',
        [7],
      ],
      ['a lookup through a view', 'SELECT name FROM item_names WHERE id = ?', [1]],
      ['constants and parameters', 'SELECT 1 AS one, ? AS p, -? AS negated', ['a', 3]],
      ['arithmetic on a looked-up row', 'SELECT price * 2 + 1 FROM items WHERE id = ?', [1]],
      // One row: SQLite compiles no sort for it.
      ['ORDER BY on a key lookup', 'SELECT * FROM items WHERE id = ? ORDER BY name', [1]],
      ['LIMIT on a key lookup', 'SELECT * FROM items WHERE id = ? LIMIT 1', [1]],
      // One loop, every row counted against a constant LIMIT (programBound).
      [
        'a key range under a constant LIMIT',
        'SELECT * FROM items WHERE id > ? ORDER BY id LIMIT 50',
        [1],
      ],
      [
        'an index range under a constant LIMIT',
        'SELECT * FROM items WHERE category >= ? ORDER BY category LIMIT 2',
        [1],
      ],
    ])('%s is bounded', (_what, sql, params) => {
      expect(validatedRead(db, sql, params).bounded).toBe(true);
    });

    it.each([
      ['a full scan', 'SELECT * FROM items', []],
      ['a filter on an unindexed column', 'SELECT * FROM items WHERE name = ?', ['fig']],
      ['a non-unique index', 'SELECT * FROM items WHERE category = ?', [1]],
      ['a range', 'SELECT * FROM items WHERE id > ?', [1]],
      ['a function call', 'SELECT upper(name) FROM items WHERE id = ?', [1]],
      // Builds a value larger than its inputs: 64 x a 1 MB parameter is 64 MB.
      ['a concatenation', 'SELECT ? || ? AS joined', ['a', 'b']],
      ['a concatenation on a looked-up row', "SELECT name || '!' FROM items WHERE id = ?", [1]],
      ['a function of no table', 'SELECT length(randomblob(?))', [10]],
      ['an aggregate', 'SELECT count(*) FROM items', []],
      [
        'ORDER BY on a non-unique index',
        'SELECT * FROM items WHERE category = ? ORDER BY name',
        [1],
      ],
      [
        'a range under a LIMIT from a parameter',
        'SELECT * FROM items WHERE id > ? LIMIT ?',
        [1, 2],
      ],
      ['a filtered range', 'SELECT * FROM items WHERE id > ? AND name = ? LIMIT 50', [0, 'fig']],
      ['an IN list', 'SELECT * FROM items WHERE id IN (?, ?)', [1, 2]],
      ['a subquery', 'SELECT (SELECT max(id) FROM items) AS top', []],
      [
        'a recursive CTE',
        'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c',
        [],
      ],
      ['a table-valued function', "SELECT * FROM pragma_table_info('items')", []],
      ['a scan joined to a lookup', 'SELECT * FROM owners o JOIN items i ON i.id = o.item_id', []],
    ])('%s is not bounded', (_what, sql, params) => {
      expect(validatedRead(db, sql, params).bounded).toBe(false);
    });
  });

  describe(parameterBytes.name, () => {
    it.each([
      ['none', undefined, 0],
      ['numbers, booleans and null: 8 bytes each', [1, 2.5, true, null], 32],
      ['text in UTF-8 bytes', ['abc', 'é€'], 3 + 5],
      ['names count too', { id: 1, sku: 'A-1' }, 2 + 8 + 3 + 3],
    ])('%s', (_what, params, bytes) => {
      expect(parameterBytes(params, 1024)).toBe(bytes);
    });

    it('is Infinity once past the cap, without counting a long string', () => {
      expect(parameterBytes(['x'.repeat(1024)], 1024)).toBe(1024);
      expect(parameterBytes(['x'.repeat(1025)], 1024)).toBe(Infinity);
      expect(parameterBytes(['€'.repeat(400)], 1024)).toBe(Infinity);
      expect(
        parameterBytes(
          Array.from({ length: 129 }, () => 0),
          1024,
        ),
      ).toBe(Infinity);
    });
  });

  /**
   * Runs `test` on a judged reader of the items file with 1 MB values, 1 s reads and a minute's
   * pause, or what `options` say instead; closes it afterwards.
   */
  async function withReader(
    options: Partial<InlineReaderOptions>,
    test: (sut: ReturnType<typeof judgedReader>) => void | Promise<void>,
  ): Promise<void> {
    const sut = judgedReader({
      path,
      maxValueBytes: 1_000_000,
      maxReadMs: 1000,
      pauseMs: 60_000,
      ...options,
    });
    try {
      await test(sut);
    } finally {
      sut.close();
    }
  }

  /** A file of its own with a `docs` table whose row 1 holds `length` characters. */
  function docsFile(name: string, length: number): string {
    const docsPath = join(dir, name);
    const setup = new Database(docsPath);
    setup.exec('CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)');
    setup.prepare('INSERT INTO docs VALUES (1, ?)').run('x'.repeat(length));
    setup.close();
    return docsPath;
  }

  describe('InlineReader', () => {
    it.each([
      ['one row', 'SELECT id, name FROM items WHERE id = ?', [2], [[2, 'pear']]],
      ['no row', 'SELECT id, name FROM items WHERE id = ?', [99], []],
      [
        'two rows from a compound of constants',
        'SELECT ? AS x UNION ALL SELECT ?',
        [1, 2],
        [[1], [2]],
      ],
    ])('reads every row of a bounded statement: %s', (_what, sql, params, rows) =>
      withReader({}, (sut) => {
        expect(validatedRead(db, sql, params).bounded).toBe(true);
        expect(sut.run(queryJob(sql, params))?.rows).toEqual(rows);
      }),
    );

    it('compiles nothing no worker has judged, nor a text judged at another schema version', () => {
      const schemaPath = join(dir, 'schema.sqlite');
      const setup = new Database(schemaPath);
      setup.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a')");
      const sut = new InlineReader({
        path: schemaPath,
        maxValueBytes: 1_000_000,
        maxReadMs: 1000,
        pauseMs: 60_000,
      });
      const job = queryJob('SELECT v FROM t WHERE id = ?', [1]);
      try {
        expect(sut.run(job)).toBeUndefined();
        const version = boundedAt(setup, job.sql, job.params)!;
        sut.admit(job.sql, version);
        expect(sut.run(job)?.rows).toEqual([['a']]);
        setup.exec('CREATE TABLE other (x)'); // the schema moves on
        expect(sut.run(job)).toBeUndefined();
        sut.admit(job.sql, version); // a verdict from before the change does not count
        expect(sut.run(job)).toBeUndefined();
      } finally {
        sut.close();
        setup.close();
      }
    });

    it('judges a short text that compiles to a long program unbounded', () => {
      // Each level refers to the one before twice; inlined, the program doubles per level.
      const levels = Array.from(
        { length: 8 },
        (_, i) =>
          `a${i + 1} AS NOT MATERIALIZED (SELECT x FROM a${i} UNION ALL SELECT x FROM a${i})`,
      );
      const sql = `WITH a0 AS (SELECT id AS x FROM items WHERE id = ?), ${levels.join(', ')} SELECT x FROM a8`;

      expect(boundedAt(db, sql, [1])).toBeNull();
      expect(boundedAt(db, 'SELECT name FROM items WHERE id = ?', [1])).toEqual(expect.any(Number));
    });

    it('answers a bounded read as runQuery does', () =>
      withReader({}, (sut) => {
        const job = queryJob('SELECT id, name, price FROM items WHERE id = ?', [3]);
        const inline = sut.run(job);
        const expected = runQuery(db, job.sql, job.params, job.limits);
        expect({ ...inline, elapsed_ms: 0 }).toEqual({ ...expected, elapsed_ms: 0 });
        expect(inline?.rows).toEqual([[3, 'fig', 4]]);
        expect(sut.paused).toBe(false);
      }));

    it('answers a page of a key range as runQuery does', () =>
      withReader({}, (sut) => {
        const job = queryJob('SELECT * FROM items WHERE id > ? ORDER BY id LIMIT 2', [1]);
        const inline = sut.run(job);
        const expected = runQuery(db, job.sql, job.params, job.limits);
        expect({ ...inline, elapsed_ms: 0 }).toEqual({ ...expected, elapsed_ms: 0 });
        expect(inline?.rows).toEqual([
          [2, 'P-2', 'pear', 1, 2.25],
          [3, 'F-3', 'fig', 2, 4],
        ]);
        expect(sut.paused).toBe(false);
      }));

    it('stops a page at max_rows + 1 rows, as the workers do', () =>
      withReader({}, (sut) => {
        const job = {
          ...queryJob('SELECT id FROM items WHERE id > ? ORDER BY id LIMIT 50', [0]),
          limits: { ...LIMITS, maxRows: 2 },
        };
        expect(sut.run(job)).toMatchObject({
          rows: [[1], [2]],
          truncated: true,
          truncation_reason: 'max_rows',
        });
      }));

    it('stops a scan at the first row past the value budget, declines it and pauses', () => {
      const pagesPath = join(dir, 'pages.sqlite');
      const setup = new Database(pagesPath);
      setup.exec('CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)');
      const insert = setup.prepare('INSERT INTO docs VALUES (?, ?)');
      for (let id = 1; id <= 50; id++) insert.run(id, 'x'.repeat(1000));
      setup.close();
      const sql = 'SELECT id, body FROM docs WHERE id > ? ORDER BY id LIMIT 50';
      const scan = new Database(pagesPath, { readonly: true });
      try {
        // Each row is 8 + 1000: the second is past 1500, and the 48 after it are never read.
        expect(
          readRows(scan, sql, [0], LIMITS, { maxValueBytes: 1500, maxReadMs: 1000 }),
        ).toMatchObject({
          result: undefined,
          valueBytes: 2 * 1008,
        });
        // Past the time budget: stopped after its first row.
        expect(
          readRows(scan, sql, [0], LIMITS, { maxValueBytes: 1e9, maxReadMs: -1 }),
        ).toMatchObject({
          result: undefined,
          valueBytes: 1008,
        });
        // A worker's read has no budget: all 50 rows.
        expect(readRows(scan, sql, [0], LIMITS)?.result?.row_count).toBe(50);
      } finally {
        scan.close();
      }
      return withReader({ path: pagesPath, maxValueBytes: 1500 }, (sut) => {
        expect(sut.run(queryJob(sql, [0]))).toBeUndefined();
        expect(sut.paused).toBe(true);
        expect(sut.run(queryJob('SELECT id FROM docs WHERE id = ?', [1]))).toBeUndefined();
      });
    });

    it.each([
      ['an unbounded read', 'SELECT * FROM items WHERE name = ?', ['fig']],
      ['a filtered range', 'SELECT * FROM items WHERE id > ? AND name = ? LIMIT 50', [0, 'fig']],
      [
        'a range under a LIMIT from a parameter',
        'SELECT * FROM items WHERE id > ? LIMIT ?',
        [0, 5],
      ],
      ['a write', 'DELETE FROM items WHERE id = ?', [1]],
      ['a statement that does not compile', 'SELECT * FROM no_such_table WHERE id = ?', [1]],
      ['several statements', 'SELECT 1; SELECT 2', []],
      ['a PRAGMA', 'PRAGMA query_only = 0', []],
      [
        'a key lookup with parameters over INLINE_MAX_PARAM_BYTES',
        'SELECT id FROM items WHERE sku = ?',
        ['s'.repeat(INLINE_MAX_PARAM_BYTES + 1)],
      ],
      [
        'a key lookup longer than INLINE_MAX_SQL_CHARS',
        `SELECT id FROM items WHERE id = ? -- ${'x'.repeat(INLINE_MAX_SQL_CHARS)}`,
        [1],
      ],
    ])('declines %s (a worker answers it)', (_what, sql, params) =>
      withReader({}, (sut) => {
        expect(sut.run(queryJob(sql, params))).toBeUndefined();
      }),
    );

    it('declines rather than waits while another connection holds the database', async () => {
      const lockedPath = join(dir, 'locked.sqlite');
      const writer = new Database(lockedPath); // rollback journal: a writer excludes readers
      writer.exec('CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);');
      const job = queryJob('SELECT id FROM t WHERE id = ?', [1]);
      try {
        await withReader({ path: lockedPath }, (sut) => {
          expect(sut.run(job)?.rows).toEqual([[1]]);
          writer.exec('BEGIN EXCLUSIVE');
          expect(sut.run(job)).toBeUndefined();
          writer.exec('COMMIT');
          expect(sut.run(job)?.rows).toEqual([[1]]);
        });
      } finally {
        writer.close();
      }
    });

    it('pauses after a read of large values, then declines everything until the pause is over', () =>
      // 'apple' is 5 characters: more than 4.
      withReader({ maxValueBytes: 4 }, (sut) => {
        const job = queryJob('SELECT name FROM items WHERE id = ?', [1]);
        expect(sut.paused).toBe(false);
        expect(sut.run(job)?.rows).toEqual([['apple']]);
        expect(sut.paused).toBe(true);
        expect(sut.run(job)).toBeUndefined();
      }));

    it('reads a row with a 2 MB value (shortened in the result), then pauses', () =>
      withReader(
        { path: docsFile('big.sqlite', 2 * 1024 * 1024), maxValueBytes: 1024 * 1024 },
        (sut) => {
          const job = queryJob('SELECT body FROM docs WHERE id = ?', [1]);
          expect(sut.run(job)?.truncation_reason).toBe('cell_size');
          expect(sut.paused).toBe(true);
          expect(sut.run(job)).toBeUndefined();
        },
      ));

    it('pauses after a slow read of a value it only compares (the size count cannot see it)', () =>
      // Reading 50 MB takes milliseconds: far over a 1 ms bound, whatever the machine.
      withReader(
        { path: docsFile('hidden.sqlite', 50 * 1024 * 1024), maxValueBytes: 1024, maxReadMs: 1 },
        (sut) => {
          const job = queryJob('SELECT 1 AS found FROM docs WHERE id = ? AND body = ?', [1, 'y']);
          expect(sut.run(job)?.rows).toEqual([]);
          expect(sut.paused).toBe(true);
          expect(sut.run(job)).toBeUndefined();
        },
      ));

    it('doubles a pause that follows soon after the last one', () =>
      withReader({ maxValueBytes: 3, pauseMs: 300 }, async (sut) => {
        const job = queryJob('SELECT name FROM items WHERE id = ?', [2]);
        expect(sut.run(job)?.rows).toEqual([['pear']]); // pauses 300 ms
        await wait(330);
        expect(sut.run(job)?.rows).toEqual([['pear']]); // within 300 ms of its end: 600 ms
        await wait(300);
        expect(sut.paused).toBe(true);
        await wait(350);
        expect(sut.paused).toBe(false);
      }));

    it('resumes once the pause is over', () =>
      withReader({ maxValueBytes: 3, pauseMs: 50 }, async (sut) => {
        const job = queryJob('SELECT name FROM items WHERE id = ?', [2]);
        expect(sut.run(job)?.rows).toEqual([['pear']]);
        expect(sut.run(job)).toBeUndefined();
        await wait(80);
        expect(sut.run(job)?.rows).toEqual([['pear']]);
      }));
  });
});
