import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DataSource, type MigrationInterface } from 'typeorm';
import { InternalTables1764000000000 } from './1764000000000-internal-tables.js';
import { AuditDetails1764100000000 } from './1764100000000-audit-details.js';

const NEW_COLUMNS = [
  'principalName',
  'principalEmail',
  'rowCount',
  'sqlText',
  'paramsHash',
  'protocolVersion',
  'userAgent',
];

describe(AuditDetails1764100000000.name, () => {
  let dir: string;
  let path: string;

  async function migrate(
    migrations: (new () => MigrationInterface)[],
    then?: (source: DataSource) => Promise<unknown>,
  ): Promise<void> {
    const source = new DataSource({ type: 'better-sqlite3', database: path, migrations });
    await source.initialize();
    try {
      await source.runMigrations();
      await then?.(source);
    } finally {
      await source.destroy();
    }
  }

  function inspect<T>(read: (db: Database.Database) => T): T {
    const db = new Database(path, { readonly: true });
    try {
      return read(db);
    } finally {
      db.close();
    }
  }
  const columns = () =>
    inspect((db) => db.pragma('table_info(audit_log)') as { name: string }[]).map((c) => c.name);
  const triggers = () =>
    inspect((db) =>
      db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'audit_log'")
        .pluck()
        .all(),
    );

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-migration-'));
    path = join(dir, 'db.sqlite');
    // A database from before: the first migration only, with a record in it.
    await migrate([InternalTables1764000000000]);
    const db = new Database(path);
    db.prepare(
      "INSERT INTO audit_log (time, subject, outcome) VALUES ('2026-01-01T00:00:00.000Z', 'old-sub', 'success')",
    ).run();
    db.close();
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('adds the columns, keeping the records and the append-only triggers', async () => {
    await migrate([InternalTables1764000000000, AuditDetails1764100000000]);

    expect(columns()).toEqual(expect.arrayContaining(NEW_COLUMNS));
    expect(inspect((db) => db.prepare('SELECT * FROM audit_log').all())).toEqual([
      expect.objectContaining({
        subject: 'old-sub',
        ...Object.fromEntries(NEW_COLUMNS.map((name) => [name, null])),
      }),
    ]);
    expect(triggers()).toEqual(
      expect.arrayContaining(['audit_log_no_update', 'audit_log_no_delete']),
    );
  });

  it('is undone by down(), the triggers still in place', async () => {
    await migrate([InternalTables1764000000000, AuditDetails1764100000000], (source) =>
      source.undoLastMigration(),
    );

    expect(columns().filter((name) => NEW_COLUMNS.includes(name))).toEqual([]);
    expect(triggers()).toHaveLength(2);
  });
});
