import Database from 'better-sqlite3';
import { PAGE_SCHEMA } from '../../../test/support/sqlite-pages.js';
import { BOUNDED_MAX_ROWS, type Instruction, programBound, programOf } from './program.js';

// Which compiled programs count as bounded, on SQLite's own EXPLAIN of each statement: the shapes
// a page of a key range compiles to, and the attacks on them that must not.

const SCHEMA = PAGE_SCHEMA;

const RANGE = 'SELECT * FROM items WHERE id > ? ORDER BY id LIMIT 50';

describe(programBound.name, () => {
  let db: Database.Database;
  /** The program of `sql`, its parameters bound to 1. */
  const compile = (sql: string) =>
    programOf(
      db,
      sql,
      Array.from({ length: (sql.match(/\?/g) ?? []).length }, () => 1),
    );
  /** The range read's program with one instruction replaced (at `addr`, by `change`). */
  const altered = (addr: number, change: Partial<Instruction>) =>
    compile(RANGE).map((instruction) =>
      instruction.addr === addr ? { ...instruction, ...change } : instruction,
    );
  const addressOf = (program: Instruction[], opcode: string) =>
    program.find((instruction) => instruction.opcode === opcode)!.addr;

  beforeAll(() => {
    db = new Database(':memory:');
    db.exec(SCHEMA);
  });
  afterAll(() => {
    db.close();
  });

  it.each([
    ['a primary-key lookup', 'SELECT * FROM items WHERE id = ?'],
    ['a unique-index lookup', 'SELECT * FROM items WHERE sku = ?'],
    ['a key lookup under LIMIT 1', 'SELECT * FROM items WHERE id = ? LIMIT 1'],
    ['constants', 'SELECT 1 AS one, 2 AS two'],
  ])('bounds %s by one row per table', (_what, sql) => {
    expect(programBound(compile(sql))).toEqual({ loop: false });
  });

  it.each([
    ['the rowid range of workload b', RANGE, 50],
    ['a rowid range backwards', 'SELECT * FROM items WHERE id < ? ORDER BY id DESC LIMIT 50', 50],
    ['a range with both ends', 'SELECT id, name FROM items WHERE id > ? AND id <= ? LIMIT 20', 20],
    ['the table from its start', 'SELECT * FROM items ORDER BY id LIMIT 10', 10],
    [
      'an index range (each row looked up by rowid)',
      'SELECT * FROM items WHERE category > ? ORDER BY category LIMIT 20',
      20,
    ],
    [
      'a unique-index range',
      'SELECT sku, name FROM items WHERE sku >= ? ORDER BY sku LIMIT 20',
      20,
    ],
    [
      'the rows of one value of a non-unique index',
      'SELECT * FROM items WHERE category = ? LIMIT 5',
      5,
    ],
    [
      'a WITHOUT ROWID key prefix',
      'SELECT a, b, v FROM pairs WHERE a = ? AND b > ? ORDER BY b LIMIT 10',
      10,
    ],
    ['a range through a view', 'SELECT * FROM item_names WHERE id > ? ORDER BY id LIMIT 50', 50],
    ['arithmetic on each row', 'SELECT id, price * 2 FROM items WHERE id > ? LIMIT 50', 50],
    [
      `the largest LIMIT, ${BOUNDED_MAX_ROWS}`,
      `SELECT * FROM items WHERE id > ? LIMIT ${BOUNDED_MAX_ROWS}`,
      BOUNDED_MAX_ROWS,
    ],
  ])('bounds %s by its LIMIT', (_what, sql, limit) => {
    expect(programBound(compile(sql))).toEqual({ loop: true, limit });
  });

  it.each([
    // No LIMIT, or none known before the scan runs.
    ['a range without LIMIT', 'SELECT * FROM items WHERE id > ?'],
    ['a full scan', 'SELECT * FROM items'],
    [
      `a LIMIT over ${BOUNDED_MAX_ROWS}`,
      `SELECT * FROM items WHERE id > ? LIMIT ${BOUNDED_MAX_ROWS + 1}`,
    ],
    ['a LIMIT from a parameter', 'SELECT * FROM items WHERE id > ? LIMIT ?'],
    ['a LIMIT from a subquery', 'SELECT * FROM items WHERE id > ? LIMIT (SELECT 5)'],
    ['a LIMIT from an expression', 'SELECT * FROM items WHERE id > ? LIMIT 10 + 40'],
    // A counter from -1 or 0 never reaches zero by counting down.
    ['LIMIT -1 (no limit)', 'SELECT * FROM items WHERE id > ? LIMIT -1'],
    ['LIMIT 0', 'SELECT * FROM items WHERE id > ? LIMIT 0'],
    // OFFSET skips rows without counting them.
    ['an OFFSET', 'SELECT * FROM items WHERE id > ? ORDER BY id LIMIT 50 OFFSET 10'],
    // Rows the loop visits but skips: the scan may walk the whole table for its 50.
    ['a filter on an unindexed column', 'SELECT * FROM items WHERE id > ? AND name = ? LIMIT 50'],
    ['an IS NULL filter', 'SELECT * FROM items WHERE id > ? AND price IS NULL LIMIT 50'],
    [
      'a filter on an index range',
      'SELECT * FROM items WHERE category > ? AND price > ? ORDER BY category LIMIT 50',
    ],
    [
      'a join whose lookup can miss',
      'SELECT * FROM owners o JOIN items i ON i.id = o.item_id WHERE o.id > ? LIMIT 50',
    ],
    [
      'a subquery filter',
      'SELECT * FROM items WHERE id > ? AND id IN (SELECT item_id FROM owners) LIMIT 50',
    ],
    // Sorts, temporary b-trees, more than one loop.
    ['ORDER BY an unindexed column', 'SELECT * FROM items WHERE id > ? ORDER BY name LIMIT 50'],
    ['DISTINCT', 'SELECT DISTINCT name FROM items WHERE id > ? LIMIT 50'],
    ['GROUP BY', 'SELECT category, count(*) FROM items WHERE id > ? GROUP BY category LIMIT 50'],
    ['a nested-loop join', 'SELECT * FROM items a, items b WHERE a.id > ? LIMIT 50'],
    [
      'a LEFT JOIN on a key',
      'SELECT * FROM owners o LEFT JOIN items i ON i.id = o.item_id WHERE o.id > ? LIMIT 50',
    ],
    [
      'a compound of two ranges',
      'SELECT * FROM items WHERE id > ? UNION ALL SELECT * FROM items WHERE id < ? LIMIT 50',
    ],
    ['an IN list', 'SELECT * FROM items WHERE id IN (?, ?, ?) LIMIT 50'],
    [
      'a materialized CTE',
      'WITH r AS MATERIALIZED (SELECT * FROM items WHERE id > ? LIMIT 50) SELECT * FROM r',
    ],
    [
      'a recursive CTE',
      'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c LIMIT 50',
    ],
    [
      'a window function',
      'SELECT id, row_number() OVER (ORDER BY id) FROM items WHERE id > ? LIMIT 50',
    ],
    [
      'a subquery per row',
      'SELECT (SELECT count(*) FROM items) AS n FROM items WHERE id > ? LIMIT 50',
    ],
    // Work per row beyond its inputs.
    ['a function per row', 'SELECT upper(name) FROM items WHERE id > ? LIMIT 50'],
    ['a concatenation per row', 'SELECT name || name FROM items WHERE id > ? LIMIT 50'],
    ['a table-valued function', "SELECT * FROM pragma_table_info('items') LIMIT 5"],
  ])('does not bound %s', (_what, sql) => {
    expect(programBound(compile(sql))).toBeNull();
  });

  describe('on programs altered where SQLite would not (each rule of the proof on its own)', () => {
    it('bounds the unaltered range read', () => {
      expect(programBound(compile(RANGE))).toEqual({ loop: true, limit: 50 });
    });

    it('does not bound it when another instruction writes the counter', () => {
      const program = compile(RANGE);
      const counter = program.find(({ opcode }) => opcode === 'DecrJumpZero')!.p1;
      expect(programBound(altered(addressOf(program, 'Rowid'), { p2: counter }))).toBeNull();
    });

    it('does not bound it when the counter is set inside the loop', () => {
      const program = compile(RANGE);
      const next = addressOf(program, 'Next');
      expect(programBound(altered(next, { p2: addressOf(program, 'Integer') }))).toBeNull();
    });

    it('does not bound it when a path to the loop jumps over the counter', () => {
      const program = compile(RANGE);
      const integer = addressOf(program, 'Integer');
      expect(program[integer - 1].opcode).toBe('Noop');
      const seek = addressOf(program, 'SeekGT');
      expect(
        programBound(altered(integer - 1, { opcode: 'Goto', p1: 0, p2: seek, p3: 0 })),
      ).toBeNull();
    });

    it('does not bound it when a row can skip its ResultRow and count back to the Next', () => {
      const program = compile(RANGE);
      const column = addressOf(program, 'Column');
      const next = addressOf(program, 'Next');
      const skip = { opcode: 'IsNull', p1: 4, p2: next, p3: 0 };
      expect(programBound(altered(column, skip))).toBeNull();
      // Leaving the loop instead (the range's end) keeps it bounded.
      expect(programBound(altered(column, { ...skip, p2: next + 1 }))).toEqual({
        loop: true,
        limit: 50,
      });
    });

    it('does not bound it when something jumps into the closing part (which would run it again)', () => {
      const program = compile(RANGE);
      const closing = program[0].p2;
      expect(programBound(altered(addressOf(program, 'SeekGT'), { p2: closing }))).toBeNull();
    });

    it('does not bound it when the loop is entered past its start', () => {
      const program = compile(RANGE);
      const row = addressOf(program, 'ResultRow');
      expect(programBound(altered(addressOf(program, 'SeekGT'), { p2: row }))).toBeNull();
    });

    it('does not bound an unknown opcode anywhere', () => {
      const program = compile(RANGE);
      expect(
        programBound(altered(addressOf(program, 'RealAffinity'), { opcode: 'Function' })),
      ).toBeNull();
    });
  });
});
