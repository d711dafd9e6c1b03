import pg from 'pg';
import { SqlError } from '../sql-values.js';
import { releaseClient } from './connection.js';
import { InFlightLimit } from '../in-flight-limit.js';

export interface FairPoolOptions {
  /** Connections (pg.Pool's max). */
  size: number;
  /** Longest wait for a free connection, ms: past it the call is refused, never run. */
  queueTimeoutMs: number;
  /** Jobs per principal queued or running at once (shared with the other pool of the engine). */
  inFlight: InFlightLimit;
}

interface Waiter {
  principal: string;
  resolve: (lease: Lease) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** A connection lent to one call; `done` gives it back (or destroys it: connection.ts). */
export interface Lease {
  client: pg.PoolClient;
  done(): void;
}

/**
 * pg.Pool behind fair shares: one principal holds at most size - 1 connections (one when the pool
 * has one), so another principal's call always finds one free once a call ends; waiting calls are
 * served one principal at a time, in turn. A call that waits past queueTimeoutMs is refused.
 */
export class FairPool {
  private readonly holding = new Map<string, number>();
  private readonly queues = new Map<string, Waiter[]>();
  private held = 0;
  private closed = false;

  constructor(
    readonly pool: pg.Pool,
    private readonly options: FairPoolOptions,
  ) {}

  private get share(): number {
    return Math.max(1, this.options.size - 1);
  }

  acquire(principal: string): Promise<Lease> {
    if (this.closed)
      return Promise.reject(new SqlError('The server is shutting down.', 'SHUTDOWN'));
    const { inFlight } = this.options;
    if (!inFlight.tryAcquire(principal))
      return Promise.reject(
        new SqlError(
          `You already have ${inFlight.max} SQL statements running or waiting for a database connection (SQL_MAX_IN_FLIGHT_PER_PRINCIPAL=${inFlight.max}); nothing was run. Wait for one to finish.`,
          'IN_FLIGHT_LIMIT',
        ),
      );
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = {
        principal,
        resolve,
        reject,
        timer: setTimeout(() => this.expire(waiter), this.options.queueTimeoutMs),
      };
      const queue = this.queues.get(principal);
      if (queue) queue.push(waiter);
      else this.queues.set(principal, [waiter]);
      this.dispatch();
    });
  }

  /** Refuses what waits; connections in use are closed as their calls end. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const queue of this.queues.values())
      for (const waiter of queue)
        this.fail(waiter, new SqlError('The server is shutting down.', 'SHUTDOWN'));
    this.queues.clear();
    await this.pool.end();
  }

  /** Starts the next waiting call of each principal in turn while connections and shares allow. */
  private dispatch(): void {
    for (const [principal, queue] of this.queues) {
      if (this.held >= this.options.size) return;
      if ((this.holding.get(principal) ?? 0) >= this.share) continue;
      const waiter = queue.shift()!;
      if (queue.length === 0) this.queues.delete(principal);
      // Served: the next round starts after it (Map order is insertion order).
      else {
        this.queues.delete(principal);
        this.queues.set(principal, queue);
      }
      this.start(waiter);
    }
  }

  private start(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    this.held++;
    this.holding.set(waiter.principal, (this.holding.get(waiter.principal) ?? 0) + 1);
    let returned = false;
    const giveBack = () => {
      if (returned) return;
      returned = true;
      this.held--;
      const count = (this.holding.get(waiter.principal) ?? 0) - 1;
      if (count > 0) this.holding.set(waiter.principal, count);
      else this.holding.delete(waiter.principal);
      this.options.inFlight.release(waiter.principal);
      this.dispatch();
    };
    this.pool.connect().then(
      (client) =>
        waiter.resolve({
          client,
          done: () => {
            if (returned) return;
            releaseClient(client);
            giveBack();
          },
        }),
      (error: Error) => {
        giveBack();
        waiter.reject(
          new SqlError(
            `The database could not be reached: ${error.message}`,
            'DATABASE_UNAVAILABLE',
          ),
        );
      },
    );
  }

  private expire(waiter: Waiter): void {
    const queue = this.queues.get(waiter.principal);
    const at = queue?.indexOf(waiter) ?? -1;
    if (!queue || at < 0) return;
    queue.splice(at, 1);
    if (queue.length === 0) this.queues.delete(waiter.principal);
    this.fail(
      waiter,
      new SqlError(
        `Waited ${this.options.queueTimeoutMs} ms for a free database connection (SQL_QUEUE_TIMEOUT_MS); nothing was run. Every connection is busy: try again shortly.`,
        'QUEUE_TIMEOUT',
      ),
    );
  }

  private fail(waiter: Waiter, error: Error): void {
    clearTimeout(waiter.timer);
    this.options.inFlight.release(waiter.principal);
    waiter.reject(error);
  }
}
