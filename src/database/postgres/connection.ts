import { Logger } from '@nestjs/common';
import type pg from 'pg';

// Which pooled connections may be reused: a connection whose session reset failed, whose
// transaction is still open, that lost its server or whose deadline fired is destroyed instead.

/** pg 8's runtime fields the deadline backstop uses, which @types/pg does not declare. */
export interface ClientInternals {
  processID: number | null;
  secretKey: number | null;
  host: string;
  port: number;
  connection: { stream: { destroyed: boolean; destroy(): void } };
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

/** Ends a backend (pg_terminate_backend) from a new connection; the pool says how to open one. */
export type BackendTerminator = (pid: number) => Promise<void>;

const terminators = new WeakMap<pg.ClientBase, BackendTerminator>();
const logger = new Logger('PostgresDeadline');

/** Tells how to end this connection's backend should it outlive its deadline (the pool's role). */
export function setTerminator(client: pg.ClientBase, terminate: BackendTerminator): void {
  terminators.set(client, terminate);
}

/** Ends the backend; a failure is logged (the call has its TIMEOUT answer already). */
export async function terminateBackend(client: pg.ClientBase, pid: number): Promise<void> {
  const terminate = terminators.get(client);
  if (!terminate) return;
  try {
    await terminate(pid);
    logger.warn(`backend ${pid} ignored the cancel of its deadline and was terminated`);
  } catch (error) {
    logger.error(
      `backend ${pid} ignored the cancel of its deadline and could not be terminated (${error instanceof Error ? error.message : String(error)}): it runs on until it ends; the role must be allowed to run pg_terminate_backend`,
    );
  }
}
