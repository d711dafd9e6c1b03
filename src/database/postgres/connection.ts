import { Logger } from '@nestjs/common';
import type pg from 'pg';
import type { Metrics, TerminationReason } from '../../metrics/metrics.service.js';

// Which pooled connections may be reused: a connection whose session reset failed, whose
// transaction is still open, that lost its server or whose deadline fired is destroyed instead.

/** pg 8's runtime fields the deadline backstop uses, which @types/pg does not declare. */
export interface ClientInternals {
  processID: number | null;
  secretKey: number | null;
  host: string;
  port: number;
  connection: {
    stream: {
      destroyed: boolean;
      destroy(): void;
      prependListener(event: 'data', listener: (chunk: Buffer) => void): void;
    };
  };
}

export function internals(client: pg.ClientBase): ClientInternals {
  return client as unknown as ClientInternals;
}

/** Connections that must not go back to the pool. */
const spoiled = new WeakSet<pg.ClientBase>();

/** Marks the connection as never to be reused. */
export function spoil(client: pg.ClientBase): void {
  spoiled.add(client);
}

/** Whether the connection may be reused: not spoiled, and outside any transaction. */
export function reusable(client: pg.ClientBase): boolean {
  return !spoiled.has(client) && client.getTransactionStatus() === 'I';
}

/** Back to the pool when reusable, else destroyed. */
export function releaseClient(client: pg.PoolClient): void {
  client.release(reusable(client) ? undefined : true);
}

/** Who hears what the deadlines did to a connection's calls (the metrics). */
export type DeadlineObserver = Pick<
  Metrics,
  'postgresDeadlineExceeded' | 'postgresBackendTerminated'
>;

/** How the pool's connections are watched over: set by the pool, per connection. */
export interface BackendControl {
  /**
   * Ends a backend (pg_terminate_backend) from a new connection, once it is gone; false when it
   * had ended already. The pool says how to open the connection (the pool's role).
   */
  terminate(pid: number): Promise<boolean>;
  observer: DeadlineObserver;
}

const controls = new WeakMap<pg.ClientBase, BackendControl>();
const logger = new Logger('PostgresDeadline');

/** Tells how to end this connection's backend should it outlive its call, and whom to tell. */
export function setBackendControl(client: pg.ClientBase, control: BackendControl): void {
  controls.set(client, control);
}

/** Who hears what the deadlines do to this connection's calls, if anyone. */
export function observerOf(client: pg.ClientBase): DeadlineObserver | undefined {
  return controls.get(client)?.observer;
}

/** What a backend that is terminated did, for the log line. */
const TERMINATED_BECAUSE: Record<TerminationReason, string> = {
  deadline: 'ignored the cancel of its deadline',
  oversized_message: 'sent a message larger than the limit',
};

/**
 * Ends the connection's backend and waits for it to be gone. A failure is logged: the call has
 * its answer already.
 */
export async function terminateBackend(
  client: pg.ClientBase,
  pid: number,
  reason: TerminationReason,
): Promise<void> {
  const control = controls.get(client);
  if (!control) return;
  const why = TERMINATED_BECAUSE[reason];
  try {
    if (await control.terminate(pid)) {
      control.observer.postgresBackendTerminated(reason);
      logger.warn(`backend ${pid} ${why} and was terminated`);
    }
  } catch (error) {
    logger.error(
      `backend ${pid} ${why} and could not be terminated (${error instanceof Error ? error.message : String(error)}): it runs on until it ends; the role must be allowed to run pg_terminate_backend`,
    );
  }
}

/** The largest message a tool connection receives: a row (every column), a notice, an error. */
export const MAX_MESSAGE_MIB = 16;

/** Connections closed because the database sent a message larger than their limit (its size). */
const oversized = new WeakMap<pg.ClientBase, number>();

/**
 * Closes the connection as soon as the database announces a message (a row, a notice, an error)
 * larger than maxBytes, before it is received: pg would buffer it whole in this process, so one
 * caller's `SELECT repeat('x', 500000000)` would cost everyone the memory and the time to copy it.
 * Attached once the connection is ready, at a message boundary; messages are a type byte and a
 * 4-byte length (which counts itself).
 */
export function limitMessages(client: pg.ClientBase, maxBytes: number): void {
  const { stream } = internals(client).connection;
  const header = Buffer.alloc(5);
  let filled = 0;
  let remaining = 0;
  stream.prependListener('data', (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length && !oversized.has(client)) {
      if (remaining > 0) {
        const skip = Math.min(remaining, chunk.length - at);
        remaining -= skip;
        at += skip;
        continue;
      }
      const take = Math.min(5 - filled, chunk.length - at);
      chunk.copy(header, filled, at, at + take);
      filled += take;
      at += take;
      if (filled < 5) break;
      filled = 0;
      const length = header.readUInt32BE(1);
      remaining = length - 4;
      if (length > maxBytes) {
        oversized.set(client, length);
        spoil(client);
        stream.destroy();
      }
    }
  });
}

/** The size of the message that closed this connection, if one did. */
export function oversizedMessage(client: pg.ClientBase): number | undefined {
  return oversized.get(client);
}
