// apply_migration across two files: the schema in the application database, the ledger in the
// internal database. A row is written pending with the schema's fingerprints before and after,
// then settled; what a stopped or killed server left pending is settled at start-up by the schema.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { schemaFingerprint } from '../src/database/sqlite/migrations.js';
import { TestIssuer } from './support/issuer.js';
import { type MainServer, startMain, stopMain } from './support/node-process.js';
import { readSqlite, tableNames } from './support/sqlite-files.js';
import { serverClient, textOf } from './support/tool-client.js';

type Row = Record<string, unknown>;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** About a second of work for SQLite, whatever the data: a migration slow enough to kill. */
const SLOW_MIGRATION =
  'CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) SELECT count(*) AS n FROM c';

describe('the migrations ledger across the two files', () => {
  let issuer: TestIssuer;
  let dir: string;
  let server: MainServer | undefined;
  const appPath = () => join(dir, 'data', 'scopedb.sqlite');
  const internalPath = () => join(dir, 'data', 'scopedb-internal.sqlite');
  const ledger = (name: string) =>
    readSqlite(
      internalPath(),
      (db) =>
        db
          .prepare('SELECT * FROM scopedb_migrations WHERE name = ? ORDER BY id')
          .all(name) as Row[],
    );
  const fingerprint = () => readSqlite(appPath(), schemaFingerprint);
  /** The JSON log lines a server wrote whose message contains `text`. */
  const logged = (text: string) =>
    server!
      .output()
      .stdout.split('\n')
      .filter((line) => line.includes(text))
      .map((line) => JSON.parse(line) as { level: number; msg: string });

  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(() => issuer.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-ledger-'));
  });
  afterEach(async () => {
    if (server) await stopMain(server);
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(env: Record<string, string> = {}): Promise<MainServer> {
    server = await startMain(dir, issuer, { LOG_LEVEL: 'info', ...env });
    return server;
  }
  async function stop(): Promise<void> {
    await stopMain(server!);
    server = undefined;
  }
  /** A client of the running server, with a token for it. */
  const client = () => serverClient(server!.url, issuer, 'db:query db:admin');

  it('records the schema before and after each migration it applies', async () => {
    await start();
    const before = fingerprint();

    await client().call('apply_migration', { name: 'm1', sql: 'CREATE TABLE a (x)' });

    expect(ledger('m1')).toEqual([
      expect.objectContaining({
        status: 'applied',
        schemaBefore: before,
        schemaAfter: fingerprint(),
        error: null,
      }),
    ]);
    expect(fingerprint()).not.toBe(before);
  });

  it('settles at start-up what a stopped server left pending: applied, failed or diverged, by the schema', async () => {
    await start();
    await client().call('apply_migration', { name: 'm1', sql: 'CREATE TABLE a (x)' });
    await stop();
    // As a server that stopped between writing each row and settling it would have left them.
    const app = new Database(appPath());
    const f1 = schemaFingerprint(app);
    app.exec('CREATE TABLE b (x)'); // sim_applied was applied, then the server stopped
    const f2 = schemaFingerprint(app);
    let f3 = '';
    const rollback = new Error('rollback');
    try {
      app.transaction(() => {
        app.exec('CREATE TABLE c (x)'); // sim_not_applied never got this far
        f3 = schemaFingerprint(app);
        throw rollback;
      })();
    } catch (error) {
      if (error !== rollback) throw error;
    }
    app.close();
    const pending: [string, string, string, string][] = [
      ['sim_applied', 'CREATE TABLE b (x)', f1, f2],
      ['sim_not_applied', 'CREATE TABLE c (x)', f2, f3],
      ['sim_diverged', 'CREATE TABLE d (x)', '0'.repeat(64), 'f'.repeat(64)],
    ];
    const internal = new Database(internalPath());
    for (const [name, sql, before, after] of pending)
      internal
        .prepare(
          "INSERT INTO scopedb_migrations (name, checksum, sql, appliedAt, appliedBy, status, schemaBefore, schemaAfter) VALUES (?, ?, ?, ?, 'sim', 'pending', ?, ?)",
        )
        .run(name, sha256(sql), sql, new Date().toISOString(), before, after);
    internal.close();

    await start();

    const settled = (name: string) => ledger(name).map(({ status, error }) => ({ status, error }));
    expect(settled('sim_applied')).toEqual([{ status: 'applied', error: null }]);
    expect(settled('sim_not_applied')).toEqual([
      { status: 'failed', error: 'not applied (interrupted: the server stopped)' },
    ]);
    expect(settled('sim_diverged')).toEqual([
      {
        status: 'diverged',
        error:
          'the schema matched neither the state before nor the state after the migration (interrupted: the server stopped)',
      },
    ]);
    expect(logged('Migration sim_diverged did not settle')).toEqual([
      expect.objectContaining({ level: 50 }),
    ]);
    expect(logged('Migration sim_applied had been applied')).toHaveLength(1);
    expect(logged('Migration sim_not_applied was interrupted before it was applied')).toHaveLength(
      1,
    );
    expect(logged('changed outside apply_migration')).toEqual([]);

    const listed = await client().ok<{ migrations: Row[] }>('list_migrations');
    expect(listed.migrations.map(({ name, status }) => [name, status])).toEqual([
      ['m1', 'applied'],
      ['sim_applied', 'applied'],
      ['sim_not_applied', 'failed'],
      ['sim_diverged', 'diverged'],
    ]);
    // A failed attempt does not hold its name; a diverged one does, until someone looks.
    const retried = await client().call('apply_migration', {
      name: 'sim_not_applied',
      sql: 'CREATE TABLE c (x)',
    });
    expect(retried.structuredContent).toMatchObject({ applied: true });
    expect(settled('sim_not_applied').map(({ status }) => status)).toEqual(['failed', 'applied']);
    const diverged = await client().call('apply_migration', {
      name: 'sim_diverged',
      sql: 'CREATE TABLE d (x)',
    });
    expect(textOf(diverged)).toMatch(/^Error \[MIGRATION_DIVERGED\]: /);
    expect(tableNames(appPath())).toEqual(['a', 'b', 'c']);
  });

  it('warns at start-up when the schema was changed outside apply_migration', async () => {
    await start();
    await client().call('apply_migration', { name: 'm1', sql: 'CREATE TABLE a (x)' });
    await stop();
    const app = new Database(appPath());
    app.exec('CREATE TABLE behind_its_back (x)');
    app.close();

    await start();

    expect(
      logged("The application database's schema differs from the one migration m1 left"),
    ).toEqual([expect.objectContaining({ level: 40 })]);
  });

  it('settles a pending row only once nothing writes: a worker of a killed server may still be applying it', async () => {
    await start();
    await stop();
    const app = new Database(appPath());
    const before = schemaFingerprint(app);
    app.exec('BEGIN IMMEDIATE'); // the left-behind worker, in the middle of the migration
    app.exec('CREATE TABLE late (x)');
    const after = schemaFingerprint(app);
    const internal = new Database(internalPath());
    internal
      .prepare(
        "INSERT INTO scopedb_migrations (name, checksum, sql, appliedAt, appliedBy, status, schemaBefore, schemaAfter) VALUES ('late', ?, 'CREATE TABLE late (x)', ?, 'sim', 'pending', ?, ?)",
      )
      .run(sha256('CREATE TABLE late (x)'), new Date().toISOString(), before, after);
    internal.close();

    const starting = startMain(dir, issuer, { LOG_LEVEL: 'info' });
    // Time for the server to reach the ledger while the worker still holds the write lock.
    await new Promise((wait) => setTimeout(wait, 2000));
    app.exec('COMMIT');
    app.close();
    server = await starting;

    expect(ledger('late')).toEqual([expect.objectContaining({ status: 'applied', error: null })]);
  });

  it('settles the row of a migration the server was killed in, once its worker is done with it', async () => {
    // Long enough for a worker the killed server left behind to finish its migration.
    const env = { DATABASE_BUSY_TIMEOUT_MS: '30000' };
    await start(env);
    const before = fingerprint();
    const answer = client()
      .call('apply_migration', { name: 'slow', sql: SLOW_MIGRATION })
      .catch((error: unknown) => error);
    for (;;) {
      const rows = readSqlite(internalPath(), (db) =>
        db.prepare("SELECT status FROM scopedb_migrations WHERE name = 'slow'").pluck().all(),
      );
      if (rows.length > 0) {
        expect(rows).toEqual(['pending']);
        break;
      }
      await new Promise((wait) => setTimeout(wait, 20));
    }

    const killed = server!;
    server = undefined;
    killed.child.kill('SIGKILL');
    expect(await killed.exited).toBe('SIGKILL');
    expect(await answer).toMatchObject({ message: 'fetch failed' }); // the caller got no answer
    await start(env);

    const [row] = ledger('slow');
    const applied = tableNames(appPath()).includes('slow');
    expect(row).toMatchObject({
      status: applied ? 'applied' : 'failed',
      schemaBefore: before,
    });
    expect(fingerprint()).toBe(applied ? row.schemaAfter : before);
    expect(
      logged(applied ? 'Migration slow had been applied' : 'Migration slow was interrupted'),
    ).toHaveLength(1);
  }, 60_000);
});
