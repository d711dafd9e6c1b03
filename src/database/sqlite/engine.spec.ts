import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ITEMS, itemsAfter } from '../../../test/support/items.js';
import { jsonBytes } from '../../../test/support/json-size.js';
import { match } from '../../../test/support/matchers.js';
import { notWrites } from '../../../test/support/refused-statements.js';
import { refusal } from '../../../test/support/sql-errors.js';
import { listTables } from './catalog.js';
import { explainQuery, runQuery } from './reads.js';
import type { ResultLimits, SizeLimits } from '../result-rows.js';
import { compiledKeyword } from './statement-guard.js';
import type { Filter } from '../engine.js';
import { deleteRows, execute, insertRows, updateRows } from './writes.js';

// ScopeDB's own tables as the TypeORM migration creates them (same names, columns and guards).
const INTERNAL_SCHEMA = `
  CREATE TABLE "audit_log" (
    "id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "time" varchar(32) NOT NULL,
    "requestId" varchar(64), "subject" varchar(255), "subjectUnverified" boolean NOT NULL DEFAULT (0),
    "clientId" varchar(255), "tokenId" varchar(255), "tool" varchar(128), "outcome" varchar(32) NOT NULL,
    "reason" text, "requiredScopes" varchar(512), "grantedScopes" varchar(1024), "durationMs" integer,
    "remoteAddress" varchar(64)
  );
  CREATE INDEX "IDX_audit_log_time" ON "audit_log" ("time");
  CREATE TABLE "scopedb_migrations" (
    "name" varchar(64) PRIMARY KEY NOT NULL, "checksum" varchar(64) NOT NULL, "sql" text NOT NULL,
    "appliedAt" varchar(32) NOT NULL, "appliedBy" varchar(255) NOT NULL, "clientId" varchar(255)
  );
  CREATE TABLE "scopedb_internal_migrations" (
    "id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "timestamp" bigint NOT NULL, "name" varchar NOT NULL
  );
  CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
  CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
  INSERT INTO audit_log (time, outcome) VALUES ('2026-01-01T00:00:00.000Z', 'success');
`;

const LIMITS: ResultLimits = { maxRows: 100, maxBytes: 10_000, maxCellChars: 100 };
/** The size limits of a write job (each write tool has its own row cap). */
const SIZES: SizeLimits = { maxBytes: LIMITS.maxBytes, maxCellChars: LIMITS.maxCellChars };

/** The SQLite error code a call throws. */
function sqliteCode(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  throw new Error('expected an error, but the call succeeded');
}

describe('sqlite-engine', () => {
  let dir: string;
  /** The read-write connection (like the write worker's). */
  let db: Database.Database;
  /** A read-only, query_only connection (like a query worker's). */
  let reader: Database.Database;
  const items = () => db.prepare('SELECT * FROM items ORDER BY id').all();
  const count = (table: string) =>
    (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-engine-'));
    const path = join(dir, 'test.sqlite');
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.exec(INTERNAL_SCHEMA);
    db.exec(`
      CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER CHECK (qty >= 0), tag TEXT);
      CREATE VIEW item_names AS SELECT name FROM items;
      CREATE TABLE numbers (n INTEGER NOT NULL);
      WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 1000)
        INSERT INTO numbers (n) SELECT n FROM seq;
    `);
    const insert = db.prepare('INSERT INTO items (id, name, qty, tag) VALUES (?, ?, ?, ?)');
    for (const item of ITEMS) insert.run(item.id, item.name, item.qty, item.tag);
    reader = new Database(path, { readonly: true, fileMustExist: true });
    reader.pragma('query_only = 1');
  });
  afterEach(() => {
    reader.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe(compiledKeyword.name, () => {
    const sut = compiledKeyword;

    it.each([
      ['SELECT 1', 'SELECT'],
      ['  /* c */ -- d\n  pragma x', 'PRAGMA'],
      ['; ;EXPLAIN QUERY PLAN attach x', 'ATTACH'],
      ['explain vacuum', 'VACUUM'],
      ['', ''],
    ])('finds the keyword SQLite compiles in %j', (sql, keyword) => {
      expect(sut(sql)).toBe(keyword);
    });
  });

  describe(runQuery.name, () => {
    const sut = runQuery;

    it('returns the columns with their declared types and the rows as arrays', () => {
      const result = sut(
        reader,
        'SELECT id, name FROM items WHERE qty >= ? ORDER BY id',
        [10],
        LIMITS,
      );

      expect(result).toEqual({
        columns: [
          { name: 'id', type: 'INTEGER' },
          { name: 'name', type: 'TEXT' },
        ],
        rows: [
          [2, 'banana'],
          [5, 'eggplant'],
        ],
        row_count: 2,
        truncated: false,
        truncation_reason: null,
        elapsed_ms: match.any(Number),
      });
    });

    it('binds named parameters and booleans (as 1 and 0)', () => {
      const result = sut(
        reader,
        'SELECT :yes AS yes, :no AS no, :text AS text',
        { yes: true, no: false, text: "a'b" },
        LIMITS,
      );

      expect(result.rows).toEqual([[1, 0, "a'b"]]);
    });

    describe('limits', () => {
      it('is not truncated when the rows fit max_rows exactly', () => {
        const result = sut(reader, 'SELECT n FROM numbers WHERE n <= 10', undefined, {
          ...LIMITS,
          maxRows: 10,
        });

        expect(result).toMatchObject({ row_count: 10, truncated: false, truncation_reason: null });
      });

      it('stops at max_rows, reading one row more than it returns', () => {
        let read = 0;
        reader.function('counted', (n: unknown) => {
          read++;
          return n;
        });

        const result = sut(reader, 'SELECT counted(n) FROM numbers', undefined, {
          ...LIMITS,
          maxRows: 10,
        });

        expect(result.rows).toEqual(Array.from({ length: 10 }, (_, i) => [i + 1]));
        expect(result).toMatchObject({
          row_count: 10,
          truncated: true,
          truncation_reason: 'max_rows',
        });
        expect(read).toBe(11);
      });

      it('stops before the row that would overflow the byte budget, counting UTF-8 bytes', () => {
        const maxBytes = 1000;

        const result = sut(
          reader,
          "SELECT n, replace(printf('%.30c', 'x'), 'x', '€') AS euros FROM numbers ORDER BY n",
          undefined,
          { ...LIMITS, maxBytes },
        );

        const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
        const next = [result.row_count + 1, '€'.repeat(30)];
        expect(result).toMatchObject({ truncated: true, truncation_reason: 'byte_budget' });
        expect(result.row_count).toBeGreaterThan(0);
        expect(bytes(result.rows)).toBeLessThanOrEqual(maxBytes);
        expect(bytes(result.rows) + bytes(next) + 1).toBeGreaterThan(maxBytes);
      });

      it('returns no row when the first one is over the byte budget', () => {
        const result = sut(reader, "SELECT printf('%.90c', 'x') AS wide", undefined, {
          ...LIMITS,
          maxBytes: 50,
        });

        expect(result).toMatchObject({ rows: [], row_count: 0, truncation_reason: 'byte_budget' });
      });

      it('keeps a text of exactly max_cell_chars and shortens a longer one with a marker', () => {
        const result = sut(
          reader,
          "SELECT printf('%.100c', 'a') AS fits, printf('%.250c', 'b') AS long",
          undefined,
          LIMITS,
        );

        expect(result.rows).toEqual([
          ['a'.repeat(100), `${'b'.repeat(100)}…[150 more characters]`],
        ]);
        expect(result).toMatchObject({ truncated: true, truncation_reason: 'cell_size' });
      });

      it('reports max_rows, not cell_size, when rows were left out too', () => {
        const result = sut(reader, "SELECT printf('%.250c', 'b') FROM numbers", undefined, {
          ...LIMITS,
          maxRows: 2,
        });

        expect(result).toMatchObject({ row_count: 2, truncation_reason: 'max_rows' });
      });

      it('renders a blob as base64, whole up to 3/4 of max_cell_chars bytes, shortened beyond', () => {
        const shown = (LIMITS.maxCellChars * 3) / 4;

        const blobs = sut(
          reader,
          `SELECT CAST(printf('%.${shown}c', 'a') AS BLOB) AS fits, CAST(printf('%.${shown + 1}c', 'a') AS BLOB) AS long`,
          undefined,
          LIMITS,
        );

        expect(blobs.rows).toEqual([
          [
            `base64:${Buffer.alloc(shown, 'a').toString('base64')}`,
            `base64:${Buffer.alloc(shown, 'a').toString('base64')}…[blob of ${shown + 1} bytes]`,
          ],
        ]);
        expect(blobs.truncation_reason).toBe('cell_size');
      });

      it('reports no truncation for a short blob', () => {
        const result = sut(reader, "SELECT x'00ff' AS b", undefined, LIMITS);

        expect(result).toMatchObject({
          rows: [['base64:AP8=']],
          truncated: false,
          truncation_reason: null,
        });
      });
    });

    describe('refusals', () => {
      it.each([
        ['stacked statements', 'SELECT 1; DELETE FROM items', 'MULTIPLE_STATEMENTS'],
        ['a write', 'DELETE FROM items', 'NOT_READ_ONLY'],
        ['a write returning rows', 'UPDATE items SET qty = 0 RETURNING *', 'NOT_READ_ONLY'],
        ['DML in a CTE', 'WITH x AS (SELECT 1) DELETE FROM items', 'NOT_READ_ONLY'],
        ['a temp table', 'CREATE TEMP TABLE t (a)', 'NOT_READ_ONLY'],
        ['a PRAGMA', 'PRAGMA foreign_keys = OFF', 'PRAGMA_NOT_ALLOWED'],
        ['ATTACH', "ATTACH ':memory:' AS x", 'ATTACH_NOT_ALLOWED'],
        ['VACUUM INTO', "VACUUM INTO 'copy.sqlite'", 'VACUUM_NOT_ALLOWED'],
        ['BEGIN', 'BEGIN', 'BEGIN_NOT_ALLOWED'],
        ['ANALYZE', 'ANALYZE', 'ANALYZE_NOT_ALLOWED'],
        ['REINDEX', 'REINDEX', 'REINDEX_NOT_ALLOWED'],
      ])('refuses %s on the read-write connection too, changing nothing', (_case, sql, code) => {
        const error = refusal(() => sut(db, sql, undefined, LIMITS));

        expect(error.code).toBe(code);
        expect(items()).toEqual(ITEMS);
      });

      it.each(['EXPLAIN SELECT 1', '/* plan */ ; EXPLAIN QUERY PLAN SELECT * FROM items'])(
        'refuses %s, pointing to explain_query',
        (sql) => {
          const error = refusal(() => sut(reader, sql, undefined, LIMITS));

          expect(error.code).toBe('NOT_READ_ONLY');
          expect(error.message).toContain('explain_query');
        },
      );

      it('refuses a PRAGMA before compiling it (SQLite applies some while compiling)', () => {
        refusal(() => sut(db, 'PRAGMA foreign_keys = OFF', undefined, LIMITS));

        expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
      });

      it.each([
        ['directly', 'SELECT * FROM audit_log'],
        ['through a view', 'SELECT * FROM audit_view'],
        ['through a CTE', 'WITH a AS (SELECT * FROM audit_log) SELECT count(*) FROM a'],
        ['through an index only', "SELECT count(*) FROM audit_log WHERE time > ''"],
      ])('refuses a read of the audit log %s, as the compiled program shows it', (_case, sql) => {
        db.exec('CREATE VIEW audit_view AS SELECT outcome FROM audit_log');

        const error = refusal(() => sut(reader, sql, undefined, LIMITS));

        expect(error.code).toBe('INTERNAL_TABLE');
      });

      it('refuses a table named like the migrations ledger (second layer)', () => {
        const error = refusal(() =>
          sut(reader, 'SELECT count(*) FROM scopedb_migrations', undefined, LIMITS),
        );

        expect(error.code).toBe('INTERNAL_TABLE');
      });
    });
  });

  describe(explainQuery.name, () => {
    const sut = explainQuery;

    it('returns the plan, naming the index used', () => {
      db.exec('CREATE INDEX items_tag ON items (tag)');

      const { plan } = sut(reader, 'SELECT * FROM items WHERE tag = ?', ['veg']);

      expect(plan).toEqual([
        { id: match.any(Number), parent: 0, detail: 'SEARCH items USING INDEX items_tag (tag=?)' },
      ]);
    });

    it.each([
      ['EXPLAIN', 'EXPLAIN SELECT 1', 'NOT_READ_ONLY'],
      ['a write', 'DELETE FROM items', 'NOT_READ_ONLY'],
      ['the audit log', 'SELECT * FROM audit_log', 'INTERNAL_TABLE'],
    ])('refuses %s', (_case, sql, code) => {
      expect(refusal(() => sut(reader, sql, undefined)).code).toBe(code);
    });
  });

  describe(listTables.name, () => {
    const sut = listTables;

    it('lists tables with row counts and views, leaving ScopeDB and SQLite out', () => {
      expect(sut(reader, undefined, true)).toEqual({
        tables: [
          { name: 'item_names', type: 'view', row_estimate: null },
          { name: 'items', type: 'table', row_estimate: 5 },
          { name: 'numbers', type: 'table', row_estimate: 1000 },
        ],
      });
    });

    it('filters by a case-insensitive LIKE pattern and leaves views out on request', () => {
      expect(sut(reader, 'ITEM%', false)).toEqual({
        tables: [{ name: 'items', type: 'table', row_estimate: 5 }],
      });
      expect(sut(reader, 'ite_s', true).tables.map((table) => table.name)).toEqual(['items']);
      expect(sut(reader, '%(%', true).tables).toEqual([]);
    });
  });

  describe(execute.name, () => {
    const sut = execute;
    const plain = { dryRun: false, limits: SIZES };

    it('reports the rows changed and the rowid of an insert only', () => {
      const inserted = sut(db, "INSERT INTO items (name) VALUES ('fig')", undefined, plain);
      const updated = sut(
        db,
        'UPDATE items SET qty = qty + 1 WHERE qty IS NOT NULL',
        undefined,
        plain,
      );

      expect(inserted).toEqual({ affected_rows: 1, dry_run: false, last_insert_rowid: 6 });
      expect(updated).toEqual({ affected_rows: 4, dry_run: false, last_insert_rowid: null });
    });

    it('returns the rows of RETURNING as objects', () => {
      const result = sut(db, 'DELETE FROM items WHERE tag = ? RETURNING id, name', ['veg'], plain);

      expect(result).toEqual({
        affected_rows: 1,
        dry_run: false,
        rows: [{ id: 3, name: 'carrot' }],
        truncated: false,
        truncation_reason: null,
        last_insert_rowid: null,
      });
    });

    it('rolls back a change of more rows than expected, saying how many', () => {
      const error = refusal(() =>
        sut(db, "UPDATE items SET tag = 'x'", undefined, {
          expectedMaxRows: 4,
          dryRun: false,
          limits: SIZES,
        }),
      );

      expect(error.code).toBe('TOO_MANY_ROWS');
      expect(error.message).toContain('would affect 5 rows');
      expect(items()).toEqual(ITEMS);
    });

    it('makes a change of exactly the expected rows', () => {
      const result = sut(db, "UPDATE items SET tag = 'x'", undefined, {
        expectedMaxRows: 5,
        dryRun: false,
        limits: SIZES,
      });

      expect(result.affected_rows).toBe(5);
      expect(db.prepare("SELECT count(*) AS n FROM items WHERE tag = 'x'").get()).toEqual({ n: 5 });
    });

    it('reports a dry run and rolls it back', () => {
      const result = sut(db, 'DELETE FROM items WHERE qty > 0', undefined, {
        dryRun: true,
        limits: SIZES,
      });

      expect(result).toEqual({ affected_rows: 3, dry_run: true, last_insert_rowid: null });
      expect(items()).toEqual(ITEMS);
    });

    it.each([
      ...notWrites('items'),
      [
        'stacked statements on two tables',
        'DELETE FROM items; DELETE FROM numbers',
        'MULTIPLE_STATEMENTS',
      ],
      [
        'a write to the audit log',
        "INSERT INTO audit_log (time, outcome) VALUES ('x', 'y')",
        'INTERNAL_TABLE',
      ],
      ['a write to the ledger', 'DELETE FROM scopedb_migrations', 'INTERNAL_TABLE'],
    ])('refuses %s and changes nothing', (_case, sql, code) => {
      expect(refusal(() => sut(db, sql, undefined, plain)).code).toBe(code);
      expect(items()).toEqual(ITEMS);
      expect(count('numbers')).toBe(1000);
      expect(count('audit_log')).toBe(1);
    });

    it('refuses a write whose trigger would write to the audit log (the program shows it)', () => {
      db.exec(
        "CREATE TRIGGER items_forge AFTER INSERT ON items BEGIN INSERT INTO audit_log (time, outcome) VALUES ('forged', 'success'); END",
      );

      const error = refusal(() =>
        sut(db, "INSERT INTO items (name) VALUES ('fig')", undefined, plain),
      );

      expect(error.code).toBe('INTERNAL_TABLE');
      expect(count('audit_log')).toBe(1);
      expect(items()).toEqual(ITEMS);
    });

    describe('returned rows', () => {
      /** 1000 rows changed, each returning 500 characters: far more than SIZES.maxBytes. */
      const WIDE = "UPDATE numbers SET n = n + 1000 RETURNING n, printf('%.*c', 500, 'x') AS pad";
      const pad = `${'x'.repeat(100)}…[400 more characters]`;
      const numbers = () => db.prepare('SELECT min(n) AS lo, max(n) AS hi FROM numbers').get();

      it.each([
        ['applies every change', false, { lo: 1001, hi: 2000 }],
        ['rolls back a dry run', true, { lo: 1, hi: 1000 }],
      ])(
        '%s, returning only the first rows that fit the byte budget, long values shortened',
        (_case, dryRun, after) => {
          const result = sut(db, WIDE, undefined, { dryRun, limits: SIZES });

          expect(result).toMatchObject({
            affected_rows: 1000,
            dry_run: dryRun,
            truncated: true,
            truncation_reason: 'byte_budget',
          });
          const rows = result.rows!;
          expect(rows).toEqual(Array.from(rows, (_row, i) => ({ n: 1001 + i, pad })));
          expect(jsonBytes(rows)).toBeLessThanOrEqual(SIZES.maxBytes);
          // The next row did not fit.
          expect(jsonBytes([...rows, { n: 1001 + rows.length, pad }])).toBeGreaterThanOrEqual(
            SIZES.maxBytes,
          );
          expect(numbers()).toEqual(after);
        },
      );

      it('returns at most 500 rows and says so, every row changed', () => {
        const result = sut(db, 'UPDATE numbers SET n = -n RETURNING n', undefined, {
          dryRun: false,
          limits: { ...SIZES, maxBytes: 1_000_000 },
        });

        expect(result).toEqual({
          affected_rows: 1000,
          dry_run: false,
          rows: Array.from({ length: 500 }, (_row, i) => ({ n: -(i + 1) })),
          truncated: true,
          truncation_reason: 'max_rows',
          last_insert_rowid: null,
        });
        expect(numbers()).toEqual({ lo: -1000, hi: -1 });
      });

      it('shortens long text and blobs as reads do, keeping short ones whole', () => {
        const result = sut(
          db,
          "DELETE FROM items WHERE id = 1 RETURNING id, printf('%.*c', 150, 'y') AS text, zeroblob(3) AS small, randomblob(200) AS big",
          undefined,
          plain,
        );

        expect(result).toEqual({
          affected_rows: 1,
          dry_run: false,
          rows: [
            {
              id: 1,
              text: `${'y'.repeat(100)}…[50 more characters]`,
              small: 'base64:AAAA',
              // 3/4 of maxCellChars bytes are shown: 75 bytes, 100 base64 characters.
              big: match.stringMatching(/^base64:[A-Za-z0-9+/]{100}…\[blob of 200 bytes\]$/),
            },
          ],
          truncated: true,
          truncation_reason: 'cell_size',
          last_insert_rowid: null,
        });
        expect(items()).toEqual(ITEMS.slice(1));
      });

      it('returns no row when the first one is over the byte budget, and still makes the change', () => {
        const result = sut(
          db,
          "UPDATE items SET qty = 1 WHERE id = 1 RETURNING printf('%.*c', 1500, 'x') AS pad",
          undefined,
          { dryRun: false, limits: { maxBytes: 1024, maxCellChars: 2000 } },
        );

        expect(result).toMatchObject({
          affected_rows: 1,
          rows: [],
          truncated: true,
          truncation_reason: 'byte_budget',
        });
        expect(items()[0]).toEqual({ ...ITEMS[0], qty: 1 });
      });

      it('still rolls back a change of more rows than expected', () => {
        const error = refusal(() =>
          sut(db, WIDE, undefined, { expectedMaxRows: 999, dryRun: false, limits: SIZES }),
        );

        expect(error.code).toBe('TOO_MANY_ROWS');
        expect(error.message).toContain('would affect 1000 rows');
        expect(numbers()).toEqual({ lo: 1, hi: 1000 });
      });
    });
  });

  describe(insertRows.name, () => {
    const sut = insertRows;
    const noReturning = { returning: false, limits: SIZES };

    it('inserts rows with different columns and booleans as numbers, returning them on request', () => {
      const result = sut(
        db,
        'items',
        [
          { name: 'fig', qty: 1 },
          { name: 'grape', tag: null },
          { id: 20, name: 'kiwi', qty: true },
        ],
        { returning: true, limits: SIZES },
      );

      expect(result).toEqual({
        affected_rows: 3,
        dry_run: false,
        rows: [
          { id: 6, name: 'fig', qty: 1, tag: null },
          { id: 7, name: 'grape', qty: null, tag: null },
          { id: 20, name: 'kiwi', qty: 1, tag: null },
        ],
        truncated: false,
        truncation_reason: null,
      });
      expect(count('items')).toBe(8);
    });

    it('inserts a row of defaults for an empty object, without rows unless asked', () => {
      db.exec("CREATE TABLE defaults (id INTEGER PRIMARY KEY, note TEXT DEFAULT 'none')");

      expect(sut(db, 'defaults', [{}], noReturning)).toEqual({ affected_rows: 1, dry_run: false });
      expect(db.prepare('SELECT * FROM defaults').all()).toEqual([{ id: 1, note: 'none' }]);
    });

    it.each([
      ['an unknown column', [{ name: 'fig' }, { name: 'grape', colour: 'red' }], 'UNKNOWN_COLUMN'],
      ['an object value', [{ name: 'fig' }, { name: { sql: 'x' } }], 'INVALID_VALUE'],
    ])('refuses %s, inserting none of the rows', (_case, rows, code) => {
      expect(refusal(() => sut(db, 'items', rows, noReturning)).code).toBe(code);
      expect(items()).toEqual(ITEMS);
    });

    it('rolls back all rows when row 3 of 5 breaks a constraint', () => {
      const rows = [
        { name: 'fig' },
        { name: 'grape' },
        { name: 'kiwi', qty: -1 },
        { name: 'lime' },
        { name: 'mango' },
      ];

      expect(sqliteCode(() => sut(db, 'items', rows, noReturning))).toBe('SQLITE_CONSTRAINT_CHECK');
      expect(items()).toEqual(ITEMS);
    });

    it.each([
      ['a view', 'item_names'],
      ['an internal table', 'audit_log'],
      ['a name differing in case', 'ITEMS'],
      ['a name with SQL in it', 'items (name) VALUES (1); --'],
    ])('refuses %s as an unknown table', (_case, table) => {
      expect(refusal(() => sut(db, table, [{ name: 'fig' }], noReturning)).code).toBe(
        'UNKNOWN_TABLE',
      );
      expect(count('audit_log')).toBe(1);
    });

    describe('returned rows', () => {
      /** Every row's body is a 500-character default: far more than SIZES.maxBytes in all. */
      const body = `${'z'.repeat(100)}…[400 more characters]`;
      beforeEach(() => {
        db.exec(
          "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL DEFAULT (printf('%.*c', 500, 'z')))",
        );
      });
      const stored = () =>
        db.prepare('SELECT count(*) AS n, min(length(body)) AS shortest FROM docs').get();

      it('inserts every row, returning only the first ones that fit the byte budget, long values shortened', () => {
        const rows = Array.from({ length: 300 }, (_row, i) => ({ id: i + 1 }));

        const result = sut(db, 'docs', rows, { returning: true, limits: SIZES });

        expect(result).toMatchObject({
          affected_rows: 300,
          truncated: true,
          truncation_reason: 'byte_budget',
        });
        const returned = result.rows!;
        expect(returned).toEqual(Array.from(returned, (_row, i) => ({ id: i + 1, body })));
        expect(jsonBytes(returned)).toBeLessThanOrEqual(SIZES.maxBytes);
        expect(jsonBytes([...returned, { id: returned.length + 1, body }])).toBeGreaterThanOrEqual(
          SIZES.maxBytes,
        );
        expect(stored()).toEqual({ n: 300, shortest: 500 });
      });

      it('returns at most 500 rows and says so', () => {
        const rows = Array.from({ length: 600 }, () => ({}));

        const result = sut(db, 'docs', rows, {
          returning: true,
          limits: { ...SIZES, maxBytes: 1_000_000 },
        });

        expect(result).toEqual({
          affected_rows: 600,
          dry_run: false,
          rows: Array.from({ length: 500 }, (_row, i) => ({ id: i + 1, body })),
          truncated: true,
          truncation_reason: 'max_rows',
        });
        expect(stored()).toEqual({ n: 600, shortest: 500 });
      });
    });
  });

  describe.each([
    [
      'updateRows',
      (
        where: Filter[],
        options: { expectedMaxRows: number; dryRun: boolean; limits: SizeLimits },
      ) => updateRows(db, 'items', { tag: 'hit' }, where, options),
    ],
    [
      'deleteRows',
      (
        where: Filter[],
        options: { expectedMaxRows: number; dryRun: boolean; limits: SizeLimits },
      ) => deleteRows(db, 'items', where, options),
    ],
  ])('%s', (name, sut) => {
    const after = (ids: number[]) =>
      itemsAfter(ITEMS, name === 'updateRows' ? 'update' : 'delete', ids);
    const options = { expectedMaxRows: 100, dryRun: false, limits: SIZES };

    it.each<[string, Filter[], number[]]>([
      ['=', [{ column: 'qty', op: '=', value: 10 }], [2]],
      ['!=', [{ column: 'qty', op: '!=', value: 10 }], [1, 3, 5]],
      ['<', [{ column: 'qty', op: '<', value: 5 }], [3]],
      ['<=', [{ column: 'qty', op: '<=', value: 5 }], [1, 3]],
      ['>', [{ column: 'qty', op: '>', value: 10 }], [5]],
      ['>=', [{ column: 'qty', op: '>=', value: 10 }], [2, 5]],
      ['in', [{ column: 'name', op: 'in', value: ['apple', 'date', 'zucchini'] }], [1, 4]],
      ['like', [{ column: 'name', op: 'like', value: '%AN%' }], [2, 5]],
      ['is_null', [{ column: 'qty', op: 'is_null' }], [4]],
      ['is_null true', [{ column: 'tag', op: 'is_null', value: true }], [5]],
      ['is_null false', [{ column: 'tag', op: 'is_null', value: false }], [1, 2, 3, 4]],
      ['= with a boolean (1)', [{ column: 'id', op: '=', value: true }], [1]],
      [
        'two filters (AND)',
        [
          { column: 'tag', op: '=', value: 'fruit' },
          { column: 'qty', op: '>', value: 5 },
        ],
        [2],
      ],
      ['a value with SQL in it', [{ column: 'name', op: '=', value: "x' OR '1'='1" }], []],
    ])('changes exactly the rows matching %s', (_case, where, ids) => {
      const result = sut(where, options);

      expect(result).toEqual({
        affected_rows: ids.length,
        dry_run: false,
        last_insert_rowid: null,
      });
      expect(items()).toEqual(after(ids));
    });

    it.each<[string, Filter[], string]>([
      ['no filter', [], 'FILTER_REQUIRED'],
      ['an unknown column', [{ column: 'colour', op: '=', value: 1 }], 'UNKNOWN_COLUMN'],
      ['a column with SQL in it', [{ column: 'id = 1 OR 1', op: '=', value: 1 }], 'UNKNOWN_COLUMN'],
      ['= null', [{ column: 'qty', op: '=', value: null }], 'INVALID_FILTER'],
      ['= with an array', [{ column: 'qty', op: '=', value: [1] }], 'INVALID_FILTER'],
      ['in with one value', [{ column: 'qty', op: 'in', value: 1 }], 'INVALID_FILTER'],
      ['in with an empty array', [{ column: 'qty', op: 'in', value: [] }], 'INVALID_FILTER'],
      ['like with a number', [{ column: 'name', op: 'like', value: 1 }], 'INVALID_FILTER'],
      ['is_null with a string', [{ column: 'qty', op: 'is_null', value: 'yes' }], 'INVALID_FILTER'],
    ])('refuses %s and changes nothing', (_case, where, code) => {
      expect(refusal(() => sut(where, options)).code).toBe(code);
      expect(items()).toEqual(ITEMS);
    });

    it('refuses a change of more rows than expected, saying how many, and changes nothing', () => {
      const error = refusal(() =>
        sut([{ column: 'tag', op: '=', value: 'fruit' }], {
          expectedMaxRows: 2,
          dryRun: false,
          limits: SIZES,
        }),
      );

      expect(error.code).toBe('TOO_MANY_ROWS');
      expect(error.message).toBe(
        'The change would affect 3 rows, more than expected_max_rows=2; nothing was changed.',
      );
      expect(items()).toEqual(ITEMS);
    });

    it('refuses an overshoot on a dry run too', () => {
      const error = refusal(() =>
        sut([{ column: 'id', op: '>', value: 0 }], {
          expectedMaxRows: 0,
          dryRun: true,
          limits: SIZES,
        }),
      );

      expect(error.code).toBe('TOO_MANY_ROWS');
    });

    it('previews at most 20 rows of a dry run, counts them all, and changes nothing', () => {
      const insert = db.prepare("INSERT INTO items (name, tag) VALUES (?, 'bulk')");
      for (let i = 0; i < 25; i++) insert.run(`bulk ${i}`);
      const before = items();

      const result = sut([{ column: 'tag', op: '=', value: 'bulk' }], {
        expectedMaxRows: 25,
        dryRun: true,
        limits: SIZES,
      });

      expect(result).toMatchObject({
        affected_rows: 25,
        dry_run: true,
        truncated: true,
        truncation_reason: 'max_rows',
      });
      expect(result.rows).toHaveLength(20);
      expect(result.rows![0]).toEqual({
        id: 6,
        name: 'bulk 0',
        qty: null,
        tag: name === 'updateRows' ? 'hit' : 'bulk',
      });
      expect(items()).toEqual(before);
    });

    it('returns no rows from a real run', () => {
      const result = sut([{ column: 'id', op: '=', value: 1 }], options);

      expect(result).not.toHaveProperty('rows');
      expect(result).not.toHaveProperty('truncated');
    });

    it('keeps a preview within the byte budget, long values shortened, and changes nothing', () => {
      const insert = db.prepare("INSERT INTO items (name, tag) VALUES (?, 'wide')");
      const names = Array.from({ length: 25 }, (_row, i) => `${i}`.padStart(300, 'n'));
      for (const wide of names) insert.run(wide);
      const before = items();
      const where: Filter[] = [{ column: 'tag', op: '=', value: 'wide' }];
      const limits = { maxBytes: 1024, maxCellChars: 100 };

      const result = sut(where, { expectedMaxRows: 25, dryRun: true, limits });

      expect(result).toMatchObject({
        affected_rows: 25,
        truncated: true,
        truncation_reason: 'byte_budget',
      });
      const preview = result.rows!;
      expect(preview.length).toBeGreaterThan(0);
      expect(preview.length).toBeLessThan(20);
      expect(preview).toEqual(
        Array.from(preview, (_row, i) => ({
          id: 6 + i,
          name: `${names[i].slice(0, 100)}…[200 more characters]`,
          qty: null,
          tag: name === 'updateRows' ? 'hit' : 'wide',
        })),
      );
      expect(jsonBytes(preview)).toBeLessThanOrEqual(limits.maxBytes);
      expect(items()).toEqual(before);
      // The same change for real: every row, none returned.
      expect(sut(where, { expectedMaxRows: 25, dryRun: false, limits })).toEqual({
        affected_rows: 25,
        dry_run: false,
        last_insert_rowid: null,
      });
      expect(count("items WHERE tag = 'wide'")).toBe(0);
      expect(count('items')).toBe(name === 'updateRows' ? 30 : 5);
    });

    it('says a preview is cut only by a long value when every row fits', () => {
      db.prepare('UPDATE items SET name = ? WHERE id = 1').run('a'.repeat(150));

      const result = sut([{ column: 'id', op: '=', value: 1 }], { ...options, dryRun: true });

      expect(result).toEqual({
        affected_rows: 1,
        dry_run: true,
        rows: [
          {
            ...ITEMS[0],
            name: `${'a'.repeat(100)}…[50 more characters]`,
            tag: name === 'updateRows' ? 'hit' : 'fruit',
          },
        ],
        truncated: true,
        truncation_reason: 'cell_size',
        last_insert_rowid: null,
      });
    });

    it('refuses views and internal tables as unknown tables', () => {
      const where: Filter[] = [{ column: 'id', op: '>', value: 0 }];
      const run = (table: string) =>
        name === 'updateRows'
          ? updateRows(db, table, { outcome: 'x' }, where, options)
          : deleteRows(db, table, where, options);

      expect(refusal(() => run('item_names')).code).toBe('UNKNOWN_TABLE');
      expect(refusal(() => run('audit_log')).code).toBe('UNKNOWN_TABLE');
      expect(count('audit_log')).toBe(1);
    });
  });

  describe(updateRows.name, () => {
    const sut = updateRows;

    it.each([
      ['no column', {}, 'INVALID_VALUE'],
      ['an unknown column', { colour: 'red' }, 'UNKNOWN_COLUMN'],
      ['an object value', { name: ['x'] }, 'INVALID_VALUE'],
    ])('refuses a set with %s', (_case, set, code) => {
      expect(
        refusal(() =>
          sut(db, 'items', set, [{ column: 'id', op: '=', value: 1 }], {
            expectedMaxRows: 1,
            dryRun: false,
            limits: SIZES,
          }),
        ).code,
      ).toBe(code);
      expect(items()).toEqual(ITEMS);
    });
  });
});
