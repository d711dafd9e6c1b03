import type Database from 'better-sqlite3';

// A statement's compiled program (EXPLAIN): what the guard and the inline reader decide on.

export interface Instruction {
  addr: number;
  opcode: string;
  p1: number;
  p2: number;
  p3: number;
  /** Text of the fourth operand: a table name, a function, `vtab:<address>`, ... */
  p4: string | null;
}

/** The statement's compiled program: EXPLAIN compiles it without running it. */
export function programOf(db: Database.Database, sql: string, params: unknown[]): Instruction[] {
  return db.prepare<unknown[], Instruction>(`EXPLAIN ${sql}`).all(...params);
}

/**
 * Opcodes that do a fixed amount of work (by their operands), never jump backwards, and never
 * build a value larger than their inputs: no `Concat`, no function (`a || a || ...` on a 1 MB
 * parameter builds 64 MB), so a program of them costs no more than its inputs' size.
 */
const STRAIGHT_OPCODES = new Set([
  'Transaction',
  'TableLock',
  'OpenRead',
  'ColumnsUsed',
  'CursorHint',
  'Noop',
  'Halt',
  'Variable',
  'Integer',
  'Int64',
  'Real',
  'String8',
  'String',
  'Null',
  'SoftNull',
  'Blob',
  'SCopy',
  'Copy',
  'IntCopy',
  'Rowid',
  'IdxRowid',
  'DeferredSeek',
  'Column',
  'ResultRow',
  'Affinity',
  'RealAffinity',
  'TypeCheck',
  'Cast',
  'Not',
  'And',
  'Or',
  'IsTrue',
  'ZeroOrNull',
  'Add',
  'Subtract',
  'Multiply',
  'Divide',
  'Remainder',
]);
/** Opcodes that may jump (to P2): allowed forwards only. */
const FORWARD_JUMP_OPCODES = new Set([
  'Init',
  'Goto',
  'SeekRowid',
  'NotExists',
  'SeekGE',
  'SeekGT',
  'SeekLE',
  'SeekLT',
  'IdxGT',
  'IdxGE',
  'IdxLT',
  'IdxLE',
  'IsNull',
  'NotNull',
  'Eq',
  'Ne',
  'Lt',
  'Le',
  'Gt',
  'Ge',
  'If',
  'IfNot',
  'MustBeInt',
  // Where a scan starts: the first or last row, or past the end when there is none.
  'Rewind',
  'Last',
  // A LIMIT's counter: jumps out once it reaches zero.
  'DecrJumpZero',
]);
/** Opcodes that step a cursor to its next row and jump back (to P2): the one loop allowed. */
const LOOP_OPCODES = new Set(['Next', 'Prev']);

/**
 * The most rows a bounded scan may be limited to: the query tool's largest max_rows. A scan's
 * LIMIT must be a constant no larger, so the scan's length is known before it runs.
 */
export const BOUNDED_MAX_ROWS = 1000;

/** Registers [first, last] an instruction writes or changes in place (an affinity, a decrement). */
type Written = [number, number] | 'unknown' | null;

/**
 * The registers an opcode of the bounded lists may write, from SQLite's opcode reference
 * (vdbe.c): 'unknown' for an operand it cannot read, which counts as writing every register.
 */
function writtenRegisters({ opcode, p1, p2, p3, p4 }: Instruction): Written {
  switch (opcode) {
    case 'Integer':
    case 'Int64':
    case 'Real':
    case 'String8':
    case 'String':
    case 'Blob':
    case 'Variable':
    case 'SCopy':
    case 'IntCopy':
    case 'Rowid':
    case 'IdxRowid':
    case 'Not':
    case 'IsTrue':
    case 'ZeroOrNull':
      return [p2, p2];
    case 'Copy':
      return [p2, p2 + p3];
    case 'Null':
      return [p2, Math.max(p2, p3)];
    case 'Column':
    case 'And':
    case 'Or':
    case 'Add':
    case 'Subtract':
    case 'Multiply':
    case 'Divide':
    case 'Remainder':
      return [p3, p3];
    case 'SoftNull':
    case 'RealAffinity':
    case 'Cast':
    case 'MustBeInt':
    case 'DecrJumpZero':
      return [p1, p1];
    case 'Affinity':
    case 'TypeCheck':
      return [p1, p1 + p2 - 1];
    // Comparisons may apply an affinity to both operands in place; a seek, to its key.
    case 'Eq':
    case 'Ne':
    case 'Lt':
    case 'Le':
    case 'Gt':
    case 'Ge':
      return [Math.min(p1, p3), Math.max(p1, p3)];
    case 'SeekRowid':
    case 'NotExists':
      return [p3, p3];
    case 'SeekGE':
    case 'SeekGT':
    case 'SeekLE':
    case 'SeekLT':
    case 'IdxGT':
    case 'IdxGE':
    case 'IdxLT':
    case 'IdxLE': {
      const fields = p4 === null ? 1 : Number(p4);
      return Number.isInteger(fields) && fields >= 1 ? [p3, p3 + fields - 1] : 'unknown';
    }
    case 'Init':
    case 'Goto':
    case 'Transaction':
    case 'TableLock':
    case 'OpenRead':
    case 'ColumnsUsed':
    case 'CursorHint':
    case 'Noop':
    case 'Halt':
    case 'ResultRow':
    case 'DeferredSeek':
    case 'IsNull':
    case 'NotNull':
    case 'If':
    case 'IfNot':
    case 'Rewind':
    case 'Last':
    case 'Next':
    case 'Prev':
      return null;
    default:
      return 'unknown';
  }
}

/** Where an instruction of the bounded lists may jump, if anywhere (MustBeInt with P2 0 errs). */
function jumpTarget({ opcode, p2 }: Instruction): number | undefined {
  if (!FORWARD_JUMP_OPCODES.has(opcode) && !LOOP_OPCODES.has(opcode)) return undefined;
  return opcode === 'MustBeInt' && p2 === 0 ? undefined : p2;
}

/**
 * How a compiled program's work is bounded, or null when it is not:
 * - `{ loop: false }`: by one row of each table it opens. It only seeks by key (a primary key or
 *   a unique index, every column equal to a value), reads columns, compares and returns, and
 *   never jumps back, but for the closing `Goto` to the start that every program has.
 * - `{ loop: true, limit }`: by `limit` rows of a scan. Besides that, the program has one loop:
 *   a cursor that steps (`Next`/`Prev`) through a range of a table or index, from a seek or an
 *   end, under a LIMIT that is a constant between 1 and BOUNDED_MAX_ROWS, and every pass
 *   through the loop returns its row and counts it against that LIMIT. A row the loop skipped
 *   (a filter on a column the range does not bound, a join that finds no match) would let it
 *   walk the whole table for its few rows, so such a program is not bounded; a condition that
 *   ends the scan (the range's upper end) only shortens it.
 *
 * The proof, for `{ loop: true }`: the loop's `DecrJumpZero` counts down a register that one
 * `Integer limit` sets before the loop and nothing but that `DecrJumpZero` changes (by
 * writtenRegisters); no jump inside the loop skips its one `ResultRow` or its count without
 * leaving the loop, and nothing outside jumps into the loop past its first instruction; so each
 * pass returns one row and counts once, and the pass that counts to zero jumps out: at most
 * `limit` passes of straight-line work, each ending in a row handed to the caller, who may stop
 * there (SQLite runs no further than the row asked for). The `Integer` is on every path to the
 * loop and runs once: the only jumps back are the loop's, to past it, and the closing `Goto`,
 * which runs once because nothing jumps into the program's closing part (from `Init`'s target)
 * but `Init`. No loop of any other kind (sorters, coroutines, subroutines, `OFFSET`'s skip) and
 * no function call (`Function`, aggregates, virtual tables) can be in it, so it cannot run
 * away, whatever the data; anything not listed counts as unbounded.
 */
export function programBound(
  program: readonly Instruction[],
): { loop: false } | { loop: true; limit: number } | null {
  const closing = program[0]?.opcode === 'Init' ? program[0].p2 : program.length;
  let loop: { start: number; end: number } | undefined;
  for (const [index, instruction] of program.entries()) {
    const { addr, opcode } = instruction;
    if (addr !== index) return null;
    if (STRAIGHT_OPCODES.has(opcode)) continue;
    const target = jumpTarget(instruction);
    if (target === undefined) {
      if (opcode === 'MustBeInt') continue;
      return null;
    }
    if (index === 0) continue; // Init, to the closing part
    if (opcode === 'Goto' && target === 1 && index === program.length - 1) continue;
    // Nothing but Init enters the closing part: its Goto to the start then runs once.
    if (addr < closing && target >= closing) return null;
    if (LOOP_OPCODES.has(opcode)) {
      if (loop || target >= addr || addr >= closing) return null;
      loop = { start: target, end: addr };
    } else if (target <= addr) return null;
  }
  if (!loop) return { loop: false };
  return countedLoop(program, loop.start, loop.end);
}

/** The LIMIT that bounds the loop from `start` to `end` (its Next or Prev), as programBound says. */
function countedLoop(
  program: readonly Instruction[],
  start: number,
  end: number,
): { loop: true; limit: number } | null {
  const inside = (addr: number) => addr >= start && addr <= end;
  const rows = program.filter(({ opcode, addr }) => opcode === 'ResultRow' && inside(addr));
  const counts = program.filter(({ opcode }) => opcode === 'DecrJumpZero');
  if (rows.length !== 1 || counts.length !== 1) return null;
  const [row] = rows;
  const [count] = counts;
  if (count.addr < row.addr || count.addr > end || count.p2 <= end) return null;
  const counter = count.p1;
  const writes = program.filter((instruction) => {
    const written = writtenRegisters(instruction);
    return (
      written === 'unknown' || (written !== null && written[0] <= counter && counter <= written[1])
    );
  });
  const set = writes.find((instruction) => instruction !== count);
  if (
    writes.length !== 2 ||
    set?.opcode !== 'Integer' ||
    set.addr >= start ||
    set.p1 < 1 ||
    set.p1 > BOUNDED_MAX_ROWS
  )
    return null;
  for (const instruction of program) {
    const { addr } = instruction;
    const target = jumpTarget(instruction);
    if (target === undefined || addr === 0 || addr === end || addr >= program.length - 1) continue;
    // Every path from the start to the loop sets the counter (Init's comes back through the
    // closing Goto to address 1, not past it).
    if (addr < set.addr && target > set.addr) return null;
    // Nothing enters the loop but at its first instruction.
    if (!inside(addr) && inside(target) && target !== start) return null;
    // Each pass returns its row, then counts, or leaves the loop: no jump skips either.
    for (const checkpoint of [row.addr, count.addr])
      if (inside(addr) && addr < checkpoint && target > checkpoint && target <= end) return null;
  }
  return { loop: true, limit: set.p1 };
}

/** Whether a compiled program's work is bounded (programBound). */
export function isBoundedProgram(program: readonly Instruction[]): boolean {
  return programBound(program) !== null;
}
