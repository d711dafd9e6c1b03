import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { refusal } from '../../../test/support/sql-errors.js';
import { applyMigration, planMigration, schemaFingerprint } from './migrations.js';

describe('migrations (worker side)', () => {
  let dir: string;
  let db: Database.Database;
  const schema = () => db.prepare('SELECT * FROM sqlite_schema ORDER BY type, name').all();
  const temporary = () => db.prepare('SELECT * FROM sqlite_temp_schema').all();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-migrations-'));
    db = new Database(join(dir, 'app.sqlite'));
    db.pragma('journal_mode = WAL');
    db.exec(
      "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items VALUES (1, 'a')",
    );
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe(schemaFingerprint.name, () => {
    const sut = schemaFingerprint;

    it('changes with the schema, not with the data', () => {
      const before = sut(db);

      db.exec("INSERT INTO items VALUES (2, 'b')");
      const withData = sut(db);
      db.exec('CREATE INDEX items_name ON items (name)');

      expect(withData).toBe(before);
      expect(sut(db)).not.toBe(before);
      expect(sut(db)).toMatch(/^[0-9a-f]{64}$/);
    });

    it('is the same for the same schema built in another order (other root pages)', () => {
      const other = new Database(join(dir, 'other.sqlite'));
      try {
        other.exec(
          'CREATE TABLE filler (x); CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)',
        );
        other.exec('DROP TABLE filler');
        const rootpage = (connection: Database.Database) =>
          connection
            .prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'items'")
            .pluck()
            .get();
        expect(rootpage(other)).not.toBe(rootpage(db));

        expect(sut(other)).toBe(sut(db));
      } finally {
        other.close();
      }
    });
  });

  describe(planMigration.name, () => {
    const sut = planMigration;

    it('gives the statement count and the fingerprints before and after, and changes nothing', () => {
      const sql = 'CREATE TABLE tags (name TEXT); CREATE INDEX tags_name ON tags (name)';
      const before = schema();

      const plan = sut(db, sql);

      expect(schema()).toEqual(before);
      expect(plan.statements).toBe(2);
      expect(plan.before).toBe(schemaFingerprint(db));
      db.exec(sql);
      expect(plan.after).toBe(schemaFingerprint(db));
    });

    it.each([
      ['no statement', '-- nothing;', 'EMPTY_MIGRATION'],
      ['a write', "CREATE TABLE w (x); INSERT INTO items (name) VALUES ('fig')", 'NOT_DDL'],
      ['a read', 'CREATE TABLE w (x); SELECT 1', 'NOT_DDL'],
      ['ATTACH', "CREATE TABLE w (x); ATTACH ':memory:' AS x", 'ATTACH_NOT_ALLOWED'],
      ['PRAGMA', 'CREATE TABLE w (x); PRAGMA foreign_keys = OFF', 'PRAGMA_NOT_ALLOWED'],
      ['a table with a reserved name', 'CREATE TABLE audit_log (x)', 'RESERVED_NAME'],
      ['a reserved name in capitals', 'CREATE TABLE "AUDIT_LOG" (x)', 'RESERVED_NAME'],
      [
        'a reserved name with a zero-width space',
        'CREATE TABLE "audit_log\u200b" (x)',
        'RESERVED_NAME',
      ],
      [
        'a reserved name in full-width letters',
        'CREATE TABLE "ａｕｄｉｔ_log" (x)',
        'RESERVED_NAME',
      ],
      [
        'a view with a reserved name',
        'CREATE VIEW scopedb_migrations AS SELECT 1',
        'RESERVED_NAME',
      ],
    ])('refuses %s and rolls back', (_case, sql, code) => {
      const before = schema();

      expect(refusal(() => sut(db, sql)).code).toBe(code);
      expect(schema()).toEqual(before);
    });

    it('refuses a temporary object, which would live on one connection only', () => {
      const error = refusal(() => sut(db, 'CREATE TEMP TABLE scratch (x)'));

      expect(error.code).toMatch(/TEMP/);
      expect(temporary()).toEqual([]);
    });

    it('answers with the error the real run would meet', () => {
      expect(() => sut(db, 'CREATE INDEX i ON items (missing)')).toThrow(/missing/);
    });
  });

  describe(applyMigration.name, () => {
    const sut = applyMigration;
    const sql = 'CREATE TABLE tags (name TEXT); ALTER TABLE items ADD COLUMN tag TEXT';

    it('applies a planned migration from the state it was planned on', () => {
      const plan = planMigration(db, sql);

      expect(sut(db, { sql, ...plan })).toEqual({ applied: true });
      expect(schemaFingerprint(db)).toBe(plan.after);
      expect(db.prepare('SELECT * FROM items').all()).toEqual([{ id: 1, name: 'a', tag: null }]);
    });

    it('applies nothing when the schema changed after the plan', () => {
      const plan = planMigration(db, sql);
      db.exec('CREATE TABLE meanwhile (x)');
      const changed = schemaFingerprint(db);

      expect(sut(db, { sql, ...plan })).toEqual({
        applied: false,
        code: 'SCHEMA_CHANGED',
        message: expect.stringContaining('nothing was applied') as string,
      });
      expect(schemaFingerprint(db)).toBe(changed);
    });

    it('applies nothing when the result is not the planned one', () => {
      const plan = planMigration(db, sql);

      const outcome = sut(db, { sql, before: plan.before, after: plan.before });

      expect(outcome).toMatchObject({ applied: false, code: 'SCHEMA_CHANGED' });
      expect(schemaFingerprint(db)).toBe(plan.before);
    });

    it('answers a failing statement with its error, rolled back', () => {
      const plan = planMigration(db, sql);

      const outcome = sut(db, {
        sql: 'CREATE TABLE tags (name TEXT); CREATE INDEX i ON nowhere (x)',
        before: plan.before,
        after: plan.after,
      });

      expect(outcome).toMatchObject({ applied: false, code: 'SQLITE_ERROR' });
      expect(schemaFingerprint(db)).toBe(plan.before);
    });
  });
});
