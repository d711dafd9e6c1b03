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
