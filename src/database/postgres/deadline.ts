import { connect } from 'node:net';
import type pg from 'pg';
import { SqlError } from '../sql-values.js';
import {
  internals,
  MAX_MESSAGE_MIB,
  observerOf,
  oversizedMessage,
  spoil,
  terminateBackend,
} from './connection.js';
import { timeoutError, toSqlError } from './errors.js';

// Deadlines that stop the database's work. The session's SET LOCAL timeouts (session.ts) are the
// first line; this is the backstop: a call that has not answered CANCEL_GRACE_MS after its
// deadline has its backend cancelled (a protocol CancelRequest on a new socket: it needs no pool
// slot and no login), its connection closed and spoiled, and answers TIMEOUT. A backend that
// ignores the cancel is then ended with pg_terminate_backend, from a connection of the same role.

/** A call's time limit and the setting it came from (`timeout_ms`, `WRITE_TIMEOUT_MS`). */
export interface Deadline {
  ms: number;
  source: string;
}

export const CANCEL_GRACE_MS = 250;
/** How long the backstop waits for the cancelled statement to fail before closing the socket. */
const CANCEL_WAIT_MS = 1000;

/** Whether a call's error is its deadline passing (PostgreSQL's statement, lock or idle timeout). */
const isTimeout = (error: unknown) => error instanceof SqlError && error.code === 'TIMEOUT';

/** Sends PostgreSQL's CancelRequest for the connection's backend; resolves once it was sent or failed. */
function cancelBackend(client: pg.ClientBase): Promise<void> {
  const { processID, secretKey, host, port } = internals(client);
  return new Promise((resolve) => {
    if (processID === null || secretKey === null) return resolve();
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4); // the CancelRequest code
    packet.writeInt32BE(processID, 8);
    packet.writeInt32BE(secretKey, 12);
    const socket = host.startsWith('/') ? connect(`${host}/.s.PGSQL.${port}`) : connect(port, host);
    socket.setTimeout(CANCEL_WAIT_MS, () => socket.destroy());
    socket.once('connect', () => socket.end(packet));
    // Best effort: when the cancel cannot be sent, closing the connection still ends the call.
    socket.once('error', () => socket.destroy());
    socket.once('close', () => resolve());
  });
}

/** Closes the connection's socket; resolves once pg reported it closed (or after a while). */
async function destroy(client: pg.ClientBase): Promise<void> {
  const { stream } = internals(client).connection;
  if (stream.destroyed) return;
  let waiting: NodeJS.Timeout | undefined;
  await Promise.race([
    new Promise((resolve) => {
      client.once('end', resolve);
      stream.destroy();
    }),
    new Promise((resolve) => (waiting = setTimeout(resolve, CANCEL_WAIT_MS))),
  ]);
  clearTimeout(waiting);
}

/** Cancels the backend, waits (briefly) for the statement to fail, and closes the connection. */
async function stop(client: pg.ClientBase, running: Promise<unknown>): Promise<void> {
  spoil(client);
  await cancelBackend(client);
  let waiting: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    Promise.allSettled([running]).then(() => true),
    new Promise<false>((resolve) => (waiting = setTimeout(() => resolve(false), CANCEL_WAIT_MS))),
  ]);
  clearTimeout(waiting);
  const { processID } = internals(client);
  await destroy(client);
  // PL/pgSQL can catch a cancel (query_canceled) and go on, and a backend busy in its own loop
  // does not notice its client is gone: such a backend is ended (it cannot catch that).
  if (!settled && processID !== null) await terminateBackend(client, processID, 'deadline');
}

/**
 * Runs `work` on the connection; when it has not settled CANCEL_GRACE_MS after the deadline,
 * stops the backend and closes the connection, and rejects with `timedOut()`. A connection
 * lost meanwhile is spoiled, and its error (PostgreSQL's, or CONNECTION_LOST) is the call's.
 */
export async function underDeadline<T>(
  client: pg.ClientBase,
  deadline: Deadline,
  work: () => Promise<T>,
  timedOut: () => SqlError = () => timeoutError(deadline),
): Promise<T> {
  let lost: unknown;
  // A checked-out pg client has no 'error' listener of the pool's: without one, a server that
  // ends the session (idle_in_transaction_session_timeout, shutdown) would crash the process.
  const onError = (error: unknown) => {
    lost ??= error;
    spoil(client);
  };
  client.on('error', onError);
  let stopping: Promise<void> | undefined;
  const running = work();
  const timer = setTimeout(() => {
    stopping = stop(client, running);
  }, deadline.ms + CANCEL_GRACE_MS);
  try {
    return await running;
  } catch (error) {
    if (stopping) {
      observerOf(client)?.postgresDeadlineExceeded('backstop');
      throw timedOut();
    }
    if (isTimeout(toSqlError(lost ?? error, deadline)))
      observerOf(client)?.postgresDeadlineExceeded('database');
    const tooLarge = oversizedMessage(client);
    if (tooLarge !== undefined) {
      // The closed socket ends the backend only once it tries to send again: it is ended now, so
      // that nothing of the call runs on after its answer.
      const { processID } = internals(client);
      if (processID !== null) await terminateBackend(client, processID, 'oversized_message');
      throw new SqlError(
        `The database sent a value of ${Math.ceil(tooLarge / 1_048_576)} MiB in one row or message, more than ScopeDB receives (${MAX_MESSAGE_MIB} MiB); nothing was changed. Select less of it (substr, left, length) or narrow the query.`,
        'RESULT_TOO_LARGE',
      );
    }
    if (lost === undefined) throw error;
    const cause = toSqlError(lost, deadline);
    throw cause instanceof SqlError
      ? cause
      : new SqlError(
          'The connection to the database was lost during the call; if it was a write, check whether it was applied before retrying.',
          'CONNECTION_LOST',
        );
  } finally {
    clearTimeout(timer);
    await stopping;
    client.off('error', onError);
  }
}
