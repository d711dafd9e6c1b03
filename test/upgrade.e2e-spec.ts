// The first start on a data directory made by release 0.1.0 (test/fixtures/release-0.1.0): its
// audit records and migrations ledger move out of the application database, nothing lost, the
// move itself recorded; restarts and crashes part-way neither lose nor duplicate anything.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { TestIssuer } from './support/issuer.js';
import { type MainServer, startMain, stopMain } from './support/node-process.js';
import { createTestDatabase, type TestPostgresDatabase } from './support/postgres.js';
import { readSqlite, tableNames } from './support/sqlite-files.js';
import { serverClient } from './support/tool-client.js';

type Row = Record<string, unknown>;

const FIXTURE = resolve('test/fixtures/release-0.1.0');
/** What release 0.1.0 left in its application database (phase 1 of the fixture's script). */
const legacy = (sql: string) =>
  readSqlite(join(FIXTURE, 'scopedb.sqlite'), (db) => db.prepare(sql).all() as Row[]);
const LEGACY_AUDIT = legacy('SELECT * FROM audit_log ORDER BY id');
const LEGACY_LEDGER = legacy('SELECT * FROM scopedb_migrations ORDER BY appliedAt, name');
const USER_SCHEMA = legacy(
  "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name IN ('books', 'books_year', 'recent_books') ORDER BY name",
);
const BOOKS = legacy('SELECT * FROM books ORDER BY id');

/** A record as it was, without its id (records get new ids where they go). */
const withoutId = ({ id: _id, ...record }: Row): Row => ({
  ...record,
  subjectUnverified: Boolean(record.subjectUnverified),
});

describe('upgrade from release 0.1.0', () => {
  let issuer: TestIssuer;
  let dir: string;
  let server: MainServer | undefined;
  let postgres: TestPostgresDatabase | undefined;
  const appPath = () => join(dir, 'data', 'scopedb.sqlite');
  const internalPath = () => join(dir, 'data', 'scopedb-internal.sqlite');
  const read = (path: string, sql: string, ...params: unknown[]) =>
    readSqlite(path, (db) => db.prepare(sql).all(...params) as Row[]);
  const upgradeState = () =>
    read(internalPath(), "SELECT value FROM scopedb_state WHERE key = 'upgrade_from_0.1.0'").map(
      (row) => JSON.parse(String(row.value)) as { step: string; marker?: string },
    );

  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(() => issuer.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-upgrade-'));
    mkdirSync(join(dir, 'data'));
    copyFileSync(join(FIXTURE, 'scopedb.sqlite'), appPath());
  });
  afterEach(async () => {
    if (server) await stopMain(server);
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
    await postgres?.drop();
    postgres = undefined;
  });

  async function start(env: Record<string, string> = {}): Promise<MainServer> {
    server = await startMain(dir, issuer, env);
    return server;
  }
  async function restart(env: Record<string, string> = {}): Promise<MainServer> {
    if (server) await stopMain(server);
    return start(env);
  }
  /** A client of the running server, with a token for it. */
  const client = () => serverClient(server!.url, issuer, 'db:query db:modify db:admin');

  /** The application database after the upgrade: the user's objects and rows, nothing else. */
  function expectOnlyUserData(): void {
    expect(tableNames(appPath())).toEqual(['books']);
    expect(
      read(
        appPath(),
        "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
      ),
    ).toEqual(USER_SCHEMA);
    expect(read(appPath(), 'SELECT * FROM books ORDER BY id')).toEqual(BOOKS);
    expect(read(appPath(), 'SELECT * FROM sqlite_sequence')).toEqual([]);
  }

  /** The ledger rows of release 0.1.0, as applied rows of the internal ledger. */
  function expectLedgerMoved(): void {
    expect(
      read(
        internalPath(),
        'SELECT name, checksum, sql, appliedAt, appliedBy, clientId, status, settledAt FROM scopedb_migrations ORDER BY id',
      ).slice(0, LEGACY_LEDGER.length),
    ).toEqual(
      LEGACY_LEDGER.map((row) => ({ ...row, status: 'applied', settledAt: row.appliedAt })),
    );
  }

  /** The moved records (in id order, every field but the id) and the upgrade's own after them. */
  function expectAuditMoved(records: Row[], firstId: number): void {
    const moved = records.filter((record) => Number(record.id) >= firstId);
    // Release 0.1.0 had no tableName column: the audit store's later migration adds it, empty.
    expect(moved.slice(0, LEGACY_AUDIT.length).map(withoutId)).toEqual(
      LEGACY_AUDIT.map((record) => ({ ...withoutId(record), tableName: null })),
    );
    expect(moved.slice(0, LEGACY_AUDIT.length).map((record) => record.id)).toEqual(
      LEGACY_AUDIT.map((_record, index) => firstId + index),
    );
    const upgrades = records.filter((record) => record.outcome === 'upgrade');
    expect(upgrades).toEqual([moved[LEGACY_AUDIT.length]]);
    const lastId = firstId + LEGACY_AUDIT.length - 1;
    expect(upgrades[0]).toMatchObject({
      requestId: expect.stringMatching(/^upgrade-0\.1\.0:[0-9a-f]{50}$/) as string,
      rowCount: LEGACY_AUDIT.length,
      tool: null,
      subject: null,
      reason: `Upgrade from release 0.1.0: moved ${LEGACY_AUDIT.length} audit records (ids 1-${LEGACY_AUDIT.length} there, ${firstId}-${lastId} here) and ${LEGACY_LEDGER.length} migrations (to the ledger of the internal database) out of the application database ${appPath()}, whose tables ${['audit_log', 'scopedb_migrations', 'scopedb_internal_migrations'].join(', ')} are then dropped.`,
    });
  }

  it('moves every record and migration into the internal database, records it, and leaves only user data', async () => {
    await start();

    const records = read(internalPath(), 'SELECT * FROM audit_log ORDER BY id');
    expectAuditMoved(records, 1);
    expectLedgerMoved();
    expectOnlyUserData();
    expect(upgradeState()).toEqual([
      { step: 'done', marker: records[LEGACY_AUDIT.length].requestId },
    ]);

    // The tools see the moved state: the ledger with its statuses, the records with get_audit_log.
    const listed = await client().ok<{ migrations: Row[] }>('list_migrations');
    expect(listed.migrations.map((row) => [row.name, row.status])).toEqual(
      LEGACY_LEDGER.map((row) => [row.name, 'applied']),
    );
    const upgrade = await client().ok<{ records: Row[] }>('get_audit_log', { outcome: 'upgrade' });
    expect(upgrade.records).toEqual([
      expect.objectContaining({ id: LEGACY_AUDIT.length + 1, outcome: 'upgrade' }),
    ]);
    // And the user's data still serves.
    const books = await client().call('query', {
      sql: 'SELECT title, year FROM books ORDER BY id',
    });
    expect(books.structuredContent).toMatchObject({
      rows: [
        ['Dune', 1965],
        ['Anathem', 2009],
      ],
    });
  });

  it('changes nothing on a second start, and goes on with a ledger that fingerprints', async () => {
    await start();
    const snapshot = () => ({
      audit: read(internalPath(), 'SELECT * FROM audit_log ORDER BY id'),
      ledger: read(internalPath(), 'SELECT * FROM scopedb_migrations ORDER BY id'),
      state: upgradeState(),
      app: read(appPath(), 'SELECT type, name, sql FROM sqlite_schema ORDER BY name'),
    });
    const first = snapshot();

    await restart();

    expect(snapshot()).toEqual(first);
    const applied = await client().call('apply_migration', {
      name: 'books_publisher',
      sql: 'ALTER TABLE books ADD COLUMN publisher TEXT',
    });
    expect(applied.structuredContent).toMatchObject({ applied: true });
    expect(
      read(
        internalPath(),
        "SELECT status, schemaBefore, schemaAfter FROM scopedb_migrations WHERE name = 'books_publisher'",
      ),
    ).toEqual([
      {
        status: 'applied',
        schemaBefore: expect.stringMatching(/^[0-9a-f]{64}$/) as string,
        schemaAfter: expect.stringMatching(/^[0-9a-f]{64}$/) as string,
      },
    ]);
  });

  it('appends to an AUDIT_DATABASE_URL file that release 0.1.0 already wrote to', async () => {
    const auditPath = join(dir, 'audit.sqlite');
    copyFileSync(join(FIXTURE, 'audit.sqlite'), auditPath);
    const earlier = read(auditPath, 'SELECT * FROM audit_log ORDER BY id');

    await start({ AUDIT_DATABASE_URL: 'sqlite:audit.sqlite' });

    const records = read(auditPath, 'SELECT * FROM audit_log ORDER BY id');
    expect(records.slice(0, earlier.length)).toEqual(
      earlier.map((record) => ({ ...record, tableName: null })),
    );
    expectAuditMoved(records, earlier.length + 1);
    expect(tableNames(internalPath())).not.toContain('audit_log');
    expectLedgerMoved();
    expectOnlyUserData();
  });

  it('moves the records into PostgreSQL (AUDIT_DATABASE_URL), in one transaction with its own', async () => {
    postgres = await createTestDatabase('scopedb_upgrade');

    await start({ AUDIT_DATABASE_URL: postgres.url });

    const { rows } = await postgres.client.query<Row>('SELECT * FROM audit_log ORDER BY id');
    expectAuditMoved(rows, Number(rows[0].id));
    expectLedgerMoved();
    expectOnlyUserData();

    await restart({ AUDIT_DATABASE_URL: postgres.url });
    const again = await postgres.client.query<Row>('SELECT * FROM audit_log ORDER BY id');
    expect(again.rows).toEqual(rows);
  });

  describe('after a crash part-way', () => {
    /** The upgrade's own record, the files as the full upgrade left them. */
    let upgraded: { audit: Row[]; ledger: Row[]; marker: string };

    beforeEach(async () => {
      await start();
      await stopMain(server!);
      server = undefined;
      const audit = read(internalPath(), 'SELECT * FROM audit_log ORDER BY id');
      upgraded = {
        audit,
        ledger: read(internalPath(), 'SELECT * FROM scopedb_migrations ORDER BY id'),
        marker: String(audit.find((record) => record.outcome === 'upgrade')!.requestId),
      };
    });

    /** Puts the files back as a crash at that point would have left them. */
    function crashedAt(state: { step: string; marker?: string } | undefined, tablesBack: boolean) {
      if (tablesBack) {
        // The file as it was: without the write-ahead log of the run that dropped the tables.
        for (const suffix of ['-wal', '-shm']) rmSync(`${appPath()}${suffix}`, { force: true });
        copyFileSync(join(FIXTURE, 'scopedb.sqlite'), appPath());
      }
      const db = new Database(internalPath());
      try {
        if (state === undefined) db.prepare('DELETE FROM scopedb_state').run();
        else db.prepare('UPDATE scopedb_state SET value = ?').run(JSON.stringify(state));
      } finally {
        db.close();
      }
    }

    it.each([
      ['after the copy, before it was noted', undefined, true],
      ['after the note, before the drop', 'copied', true],
      ['after the drop, before the last note', 'copied', false],
    ])('%s: finishes, with nothing lost or twice', async (_case, step, tablesBack) => {
      crashedAt(step === undefined ? undefined : { step, marker: upgraded.marker }, tablesBack);

      await start();

      expect(read(internalPath(), 'SELECT * FROM audit_log ORDER BY id')).toEqual(upgraded.audit);
      expect(read(internalPath(), 'SELECT * FROM scopedb_migrations ORDER BY id')).toEqual(
        upgraded.ledger,
      );
      expect(upgradeState()).toEqual([{ step: 'done', marker: upgraded.marker }]);
      expectOnlyUserData();
    });

    it('refuses to start when the tables changed after they were copied', async () => {
      crashedAt({ step: 'copied', marker: upgraded.marker }, true);
      const db = new Database(appPath());
      db.exec('DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id = 8');
      db.close();

      await expect(start()).rejects.toThrow(
        /Start-up failed: the application database's tables audit_log, scopedb_migrations, scopedb_internal_migrations changed after they were copied/,
      );
      expect(tableNames(appPath())).toEqual([
        'audit_log',
        'books',
        'scopedb_internal_migrations',
        'scopedb_migrations',
      ]);
    });

    it("never reads tables of those names again once done: whoever made them, they are not ScopeDB's", async () => {
      const db = new Database(appPath());
      db.exec(
        "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, time TEXT, outcome TEXT); INSERT INTO audit_log (time, outcome) VALUES ('2020-01-01T00:00:00.000Z', 'success')",
      );
      db.close();

      await start({ LOG_LEVEL: 'warn' });

      expect(read(internalPath(), 'SELECT * FROM audit_log ORDER BY id')).toEqual(upgraded.audit);
      expect(read(appPath(), 'SELECT count(*) AS n FROM audit_log')).toEqual([{ n: 1 }]);
      expect(server!.output().stdout).toContain(
        'The application database has tables named audit_log; ScopeDB no longer keeps anything there and leaves them alone',
      );
    });
  });

  it('needs no upgrade on a fresh data directory, and says so once', async () => {
    rmSync(appPath());

    await start();

    expect(upgradeState()).toEqual([{ step: 'none' }]);
    expect(tableNames(appPath())).toEqual([]);
    expect(
      read(internalPath(), "SELECT count(*) AS n FROM audit_log WHERE outcome = 'upgrade'"),
    ).toEqual([{ n: 0 }]);
    expect(tableNames(internalPath())).toEqual([
      'audit_log',
      'scopedb_audit_migrations',
      'scopedb_migrations',
      'scopedb_state',
      'scopedb_store_migrations',
    ]);
  });
});
