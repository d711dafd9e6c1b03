import type pg from 'pg';
import { SqlError } from '../sql-values.js';
import { reusable, spoil } from './connection.js';
import { type Deadline, underDeadline } from './deadline.js';
import { timeoutError, toSqlError } from './errors.js';
import type { Prologue } from './statement.js';

// The connection discipline every tool call follows on a pooled connection (the security core).
//
// 1. A call is one transaction: `BEGIN READ ONLY` (reads, always rolled back) or `BEGIN READ
//    WRITE` (writes: committed, or rolled back on a dry run, a refusal or an error), with
//    statement_timeout, lock_timeout and idle_in_transaction_session_timeout SET LOCAL to the
//    call's deadline: integers computed here, sent with the BEGIN in one round trip.
// 2. Caller SQL never travels through the simple protocol (statement.ts): one statement, parsed
//    unnamed, so `SELECT 1; COMMIT; DROP TABLE t` is refused by PostgreSQL itself.
// 3. The session is reset by construction before the call returns, in the same round trip as
//    the ROLLBACK (or right after the COMMIT). Measured on PostgreSQL 15:
//      vector                                 rolled-back READ ONLY   committed write
//      set_config(..., false), SET SESSION    undone by the rollback  kept -> RESET ALL
//      SET ROLE / SET SESSION AUTHORIZATION   undone by the rollback  kept -> SET SESSION AUTHORIZATION DEFAULT
//      pg_advisory_lock (session level)       KEPT -> pg_advisory_unlock_all()  (both)
//      PREPARE p AS ...                       KEPT -> DEALLOCATE ALL            (both)
//      DECLARE ... CURSOR WITH HOLD           dropped by the rollback kept -> CLOSE ALL
//      LISTEN x                               never takes effect      kept -> UNLISTEN *
//      temp tables                            refused (read-only)     kept -> DISCARD TEMP
//      nextval / currval / setval             refused (read-only)     currval kept -> DISCARD SEQUENCES
//                                                                     (a sequence's value is never transactional)
//      COMMIT / ROLLBACK as the statement     refused after the fact (TRANSACTION_CONTROL, statement.ts)
//      COPY                                   refused (COPY_NOT_ALLOWED, statement.ts)
//    The reset is DISCARD ALL's list: DISCARD ALL itself cannot follow a ROLLBACK in one query
//    (it refuses to run in the implicit transaction of a multi-statement query).
// 4. A connection whose reset failed, whose transaction is still open, that lost its server, or
//    whose deadline fired is never reused: releaseClient (connection.ts) destroys it.
// 5. The whole call runs under deadline.ts's backstop, besides the SET LOCAL timeouts.
// The pool must not use named prepared statements (DEALLOCATE ALL would drop them under pg).

const MAX_TIMEOUT_MS = 2_147_483_647;

const RESET_SQL = [
  'CLOSE ALL',
  'SET SESSION AUTHORIZATION DEFAULT',
  'RESET ALL',
  'DEALLOCATE ALL',
  'UNLISTEN *',
  'SELECT pg_catalog.pg_advisory_unlock_all()',
  'DISCARD PLANS',
  'DISCARD TEMP',
  'DISCARD SEQUENCES',
].join('; ');

/**
 * What a rolled-back READ ONLY transaction leaves behind (the table above): session advisory
 * locks and prepared statements, and nothing else.
 */
const READ_ONLY_END = ['ROLLBACK', 'DEALLOCATE ALL', 'SELECT pg_catalog.pg_advisory_unlock_all()'];
const READ_ONLY_END_SQL = READ_ONLY_END.join('; ');
const READ_ONLY_EPILOGUE = READ_ONLY_END.map((text) => ({ text, values: [] }));

/** Runs our closing statements; on failure the connection is spoiled (and will be destroyed). */
async function closeWith(client: pg.ClientBase, sql: string): Promise<boolean> {
  try {
    await client.query(sql);
    return true;
  } catch {
    // The call's own outcome is what its caller needs; this connection is simply not reused.
    spoil(client);
    return false;
  }
}

/**
 * The settings every call's transaction starts with (SET LOCAL: they end with it): the call's
 * deadline, and the text forms values.ts reads, whatever the server's or the role's defaults.
 */
const SETTINGS = [
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'DateStyle',
  'IntervalStyle',
  'bytea_output',
  'extra_float_digits',
] as const;

/** All of SETTINGS in one statement, their values bound ($1 to $7). */
const SETTINGS_SQL = `SELECT ${SETTINGS.map((name, i) => `pg_catalog.set_config('${name}', $${i + 1}, true)`).join(', ')}`;

/** The values of SETTINGS for a call: ours (integers computed here, constants), never a caller's. */
function settingValues(deadline: Deadline): string[] {
  const { ms } = deadline;
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_TIMEOUT_MS)
    throw new Error(`deadline must be an integer number of ms, got ${ms}`);
  // A lock wait ends a little before the statement does, so that its error says it was a lock.
  const lock = Math.max(1, Math.floor(ms * 0.9));
  return [String(ms), String(lock), String(ms), 'ISO', 'postgres', 'hex', '1'];
}

/** BEGIN and the settings as one simple-protocol message: one round trip. */
function beginSql(mode: 'READ ONLY' | 'READ WRITE', deadline: Deadline): string {
  const values = settingValues(deadline);
  return [`BEGIN ${mode}`, ...SETTINGS.map((name, i) => `SET LOCAL ${name} = '${values[i]}'`)].join(
    '; ',
  );
}

/**
 * BEGIN and the settings as statements the transaction's first caller statement carries in its
 * round trip (statement.ts); for a read, its end too.
 */
function prologueOf(mode: 'READ ONLY' | 'READ WRITE', deadline: Deadline): Prologue {
  return {
    statements: [
      { text: `BEGIN ${mode}`, values: [] },
      { text: SETTINGS_SQL, values: settingValues(deadline) },
    ],
    epilogue: mode === 'READ ONLY' ? READ_ONLY_EPILOGUE : undefined,
  };
}

/**
 * One transaction under the deadline, ended (and the session reset) before it returns. With
 * `lazy`, nothing is sent up front: fn gets the prologue and must hand it to its first
 * runStatement, which sends it in the same round trip.
 */
async function transaction<T>(
  client: pg.ClientBase,
  deadline: Deadline,
  mode: 'READ ONLY' | 'READ WRITE',
  commit: boolean,
  fn: (prologue: Prologue | undefined) => Promise<T>,
  lazy = false,
): Promise<T> {
  const prologue = lazy ? prologueOf(mode, deadline) : undefined;
  const begin = prologue ? undefined : beginSql(mode, deadline);
  if (!reusable(client)) throw new Error('this database connection cannot be used again');
  let phase: 'running' | 'committing' | 'committed' = 'running';
  let clean = false;
  // A READ ONLY transaction that is rolled back leaves less to reset than a write.
  const rollback = mode === 'READ ONLY' ? READ_ONLY_END_SQL : `ROLLBACK; ${RESET_SQL}`;
  const run = async () => {
    if (begin) await client.query(begin);
    let value: T;
    try {
      value = await fn(prologue);
    } catch (error) {
      clean = await closeWith(client, rollback);
      throw error;
    }
    if (!commit) {
      // A read's first batch may have carried its end already (statement.ts).
      clean = prologue?.ended === true || (await closeWith(client, rollback));
      return value;
    }
    phase = 'committing';
    try {
      await client.query('COMMIT');
      phase = 'committed';
    } finally {
      clean = await closeWith(client, RESET_SQL);
    }
    return value;
  };
  const timedOut = () =>
    phase === 'committing'
      ? new SqlError(
          `The deadline (${deadline.ms} ms, ${deadline.source}) passed while the change was being committed: whether it was committed is unknown. Check before retrying.`,
          'TIMEOUT',
        )
      : timeoutError(deadline);
  try {
    return await underDeadline(client, deadline, run, timedOut);
  } catch (error) {
    throw toSqlError(error, deadline);
  } finally {
    if (!clean) spoil(client);
  }
}

/** A READ ONLY transaction, always rolled back. */
export function readTransaction<T>(
  client: pg.ClientBase,
  deadline: Deadline,
  fn: () => Promise<T>,
): Promise<T> {
  return transaction(client, deadline, 'READ ONLY', false, fn);
}

/**
 * A READ ONLY transaction, always rolled back, opened by fn's first statement: fn passes the
 * prologue to runStatement and sends nothing else before it.
 */
export function readStatementTransaction<T>(
  client: pg.ClientBase,
  deadline: Deadline,
  fn: (prologue: Prologue | undefined) => Promise<T>,
): Promise<T> {
  return transaction(client, deadline, 'READ ONLY', false, fn, true);
}

/** A READ WRITE transaction: committed when `commit` and fn succeeds, else rolled back. */
export function writeTransaction<T>(
  client: pg.ClientBase,
  deadline: Deadline,
  fn: () => Promise<T>,
  options: { commit: boolean },
): Promise<T> {
  return transaction(client, deadline, 'READ WRITE', options.commit, fn);
}
