/** Real audit-store outages for the fail-closed specs, and what to read back after them. */
import Database from 'better-sqlite3';
import type { NodeProcess } from './node-process.js';
import type { TestPostgresDatabase } from './postgres.js';

/**
 * Another connection takes the SQLite file's write lock (`BEGIN EXCLUSIVE`) and holds it past
 * any busy timeout: every write of the server fails with SQLITE_BUSY until `release()`.
 */
export function lockSqlite(path: string): { release(): void } {
  const db = new Database(path, { fileMustExist: true });
  db.exec('BEGIN EXCLUSIVE');
  return {
    release: () => {
      db.exec('ROLLBACK');
      db.close();
    },
  };
}

/**
 * The PostgreSQL database refuses writes: read-only by default for new sessions, and the
 * server's sessions ended so that its pool reconnects into that. `writable` undoes both.
 */
export async function setPostgresReadOnly(
  postgres: TestPostgresDatabase,
  readOnly: boolean,
): Promise<void> {
  await postgres.client.query(
    `ALTER DATABASE ${postgres.name} SET default_transaction_read_only = ${readOnly ? 'on' : 'off'}`,
  );
  await postgres.client.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [postgres.name],
  );
}

/** Polls `/readyz` until it answers `status` (the server probes on its own); fails after 15 s. */
export async function untilReadiness(baseUrl: string, status: number): Promise<void> {
  let last = 0;
  for (let tries = 0; tries < 150; tries++) {
    last = (await fetch(`${baseUrl}/readyz`)).status;
    if (last === status) return;
    await new Promise((wait) => setTimeout(wait, 100));
  }
  throw new Error(`/readyz still answers ${last}, not ${status}, after 15 s`);
}

/** The JSON log lines of a server whose `msg` matches, once at least `count` have been written. */
export async function logLines(
  server: Pick<NodeProcess, 'output'>,
  pattern: RegExp,
  count = 1,
): Promise<{ msg: string; level: number }[]> {
  let lines: { msg: string; level: number }[] = [];
  for (let tries = 0; tries < 100; tries++) {
    lines = server
      .output()
      .stdout.split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; level: number })
      .filter((line) => pattern.test(line.msg));
    if (lines.length >= count) return lines;
    await new Promise((wait) => setTimeout(wait, 50));
  }
  return lines;
}
