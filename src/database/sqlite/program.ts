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
]);

/**
 * Whether a compiled program's work is bounded by one row of each table it opens: it only seeks
 * by key (a primary key or a unique index, every column equal to a value), reads columns, compares
 * and returns, and never jumps back, but for the closing `Goto` to the start that every program
 * has (taken once, after `Transaction`). No loop (`Next`, `Prev`, sorters, coroutines,
 * subroutines) and no function call (`Function`, aggregates, virtual tables) can be in it, so it
 * cannot run away, whatever the data; anything not listed counts as unbounded.
 */
export function isBoundedProgram(program: readonly Instruction[]): boolean {
  return program.every(({ addr, opcode, p2 }, index) => {
    if (STRAIGHT_OPCODES.has(opcode)) return true;
    if (!FORWARD_JUMP_OPCODES.has(opcode)) return false;
    if (opcode === 'MustBeInt' && p2 === 0) return true; // no jump: an error if not an integer
    return p2 > addr || (opcode === 'Goto' && p2 === 1 && index === program.length - 1);
  });
}
