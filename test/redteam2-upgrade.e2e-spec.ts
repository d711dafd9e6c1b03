// Red team, round 2: the upgrade from release 0.1.0 on an application database whose audit_log a
// caller of that release had tampered with (a trigger of a user table writing into it, many
// rows). Safe behaviour: start-up succeeds, every legacy record is moved once, and the user's
// tables stay writable.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { TestIssuer } from './support/issuer.js';
import { type MainServer, startMain, stopMain } from './support/node-process.js';
import { readSqlite } from './support/sqlite-files.js';
import { serverClient } from './support/tool-client.js';

const FIXTURE = resolve('test/fixtures/release-0.1.0');
const EXTRA_RECORDS = 30_000;

describe('red team 2: upgrade from 0.1.0 with a tampered audit_log', () => {
  let issuer: TestIssuer;
  let dir: string;
  let server: MainServer | undefined;
  const appPath = () => join(dir, 'data', 'scopedb.sqlite');

  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(() => issuer.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-rt2-upgrade-'));
    mkdirSync(join(dir, 'data'));
    copyFileSync(join(FIXTURE, 'scopedb.sqlite'), appPath());
    const db = new Database(appPath());
    db.exec(
      "CREATE TRIGGER books_forge AFTER INSERT ON books BEGIN INSERT INTO audit_log (time, outcome, subject) VALUES ('2026-01-01T00:00:00.000Z', 'success', 'someone-else'); END",
    );
    const insert = db.prepare(
      "INSERT INTO audit_log (time, outcome, subject, tool) VALUES ('2026-01-02T00:00:00.000Z', 'success', 'bulk', ?)",
    );
    db.transaction(() => {
      for (let i = 0; i < EXTRA_RECORDS; i++) insert.run(`t${i}`);
    })();
    db.close();
  });
  afterEach(async () => {
    if (server) await stopMain(server);
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves every record once, and books stay writable', async () => {
    const legacyCount = readSqlite(appPath(), (db) =>
      db.prepare('SELECT count(*) AS n FROM audit_log').pluck().get(),
    );
    server = await startMain(dir, issuer);
    const moved = readSqlite(join(dir, 'data', 'scopedb-internal.sqlite'), (db) =>
      db.prepare("SELECT count(*) AS n FROM audit_log WHERE outcome <> 'upgrade'").pluck().get(),
    );
    expect(moved).toBe(legacyCount);
    // The forging trigger went with the tables it named; its definition is in the upgrade's record.
    expect(
      readSqlite(appPath(), (db) =>
        db.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'").pluck().all(),
      ),
    ).toEqual([]);
    expect(
      readSqlite(join(dir, 'data', 'scopedb-internal.sqlite'), (db) =>
        db.prepare("SELECT reason, sqlText FROM audit_log WHERE outcome = 'upgrade'").all(),
      ),
    ).toEqual([
      {
        reason: expect.stringContaining(
          'with the trigger books_forge that referred to them',
        ) as unknown,
        sqlText: expect.stringContaining('CREATE TRIGGER books_forge') as unknown,
      },
    ]);

    const result = await serverClient(server.url, issuer, 'db:query db:modify').call(
      'insert_rows',
      { table: 'books', rows: [{ title: 'After the upgrade' }] },
    );
    expect(result.content[0].text).not.toMatch(/no such table/);
    expect(result.isError ?? false).toBe(false);
  }, 120_000);
});
