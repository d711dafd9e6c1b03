// Red team, round 2: what a crash of the main process leaves running. SQL runs in worker
// processes that the main process kills at their deadline; once the main process itself is
// SIGKILLed, nothing enforces that deadline any more. A worker busy in a synchronous SQLite
// statement does not see its parent go (its 'disconnect' handler waits for the statement), so a
// runaway statement started by a caller keeps running, holding the write lock (a write) or a
// core (a read), under the restarted server. Safe behaviour: a worker never outlives its server's
// deadline for it, and the restarted server can write.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestIssuer } from './support/issuer.js';
import { childrenOf, commandLine, isRunning } from './support/proc.js';
import { type MainServer, startMain, stopMain } from './support/node-process.js';
import { serverClient, textOf } from './support/tool-client.js';

/** Counts to ten billion and keeps nothing: CPU only, no memory, no end in sight. */
const RUNAWAY_WRITE =
  'INSERT INTO t (v) SELECT x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) SELECT x FROM c) WHERE x < 0';
const RUNAWAY_READ =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) SELECT count(*) FROM c';

/** Node children only: the workers are `node` processes (started through `sh -c ... exec`). */
const isNode = (pid: number) => commandLine(pid).includes('sql.worker');

describe('red team 2: SQL workers of a SIGKILLed server', () => {
  let issuer: TestIssuer;
  let dir: string;
  let server: MainServer | undefined;
  /** Worker processes this test caused; killed at the end whatever happened. */
  let workers: number[] = [];

  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(() => issuer.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-rt2-orphans-'));
  });
  afterEach(async () => {
    if (server && server.child.exitCode === null && server.child.signalCode === null)
      await stopMain(server);
    server = undefined;
    for (const pid of workers) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    workers = [];
    rmSync(dir, { recursive: true, force: true });
  });

  /** A client of the running server, with a token for it. */
  const client = () => serverClient(server!.url, issuer, 'db:query db:modify db:admin');

  async function crashDuring(sql: string, tool: 'execute' | 'query'): Promise<number[]> {
    server = await startMain(dir, issuer, { WRITE_TIMEOUT_MS: '3000' });
    const created = await client().call('apply_migration', {
      name: 'create_t',
      sql: 'CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)',
    });
    expect(created.isError ?? false).toBe(false);
    const mainPid = server.child.pid!;
    const before = new Set(childrenOf(mainPid).filter(isNode));
    void client()
      .call(tool, { sql, ...(tool === 'query' && { timeout_ms: 3000 }) })
      .catch(() => undefined);
    await new Promise((wait) => setTimeout(wait, 700));
    const running = childrenOf(mainPid).filter(isNode);
    workers = [...new Set([...before, ...running])];
    server.child.kill('SIGKILL');
    await server.exited;
    server = undefined;
    return workers;
  }

  it('a runaway write does not outlive the SIGKILLed server, nor keep its write lock', async () => {
    const pids = await crashDuring(RUNAWAY_WRITE, 'execute');
    // Well past the statement's own deadline (WRITE_TIMEOUT_MS 3000, 0.7 s of it spent).
    await new Promise((wait) => setTimeout(wait, 5000));
    const orphans = pids.filter(isRunning);

    server = await startMain(dir, issuer, { WRITE_TIMEOUT_MS: '3000' });
    const write = await client().call('execute', { sql: 'INSERT INTO t (v) VALUES (1)' });
    // Not `Error [SQLITE_BUSY]: database is locked` (the orphan still holds the write lock).
    expect(textOf(write)).not.toMatch(/^Error/);
    expect(write.isError ?? false).toBe(false);
    expect(orphans).toEqual([]);
  }, 60_000);

  it('a runaway read does not outlive the SIGKILLed server', async () => {
    const pids = await crashDuring(RUNAWAY_READ, 'query');
    await new Promise((wait) => setTimeout(wait, 5000));
    expect(pids.filter(isRunning)).toEqual([]);
  }, 60_000);
});
