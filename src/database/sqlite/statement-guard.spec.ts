import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { refusal } from '../../../test/support/sql-errors.js';
import { splitStatements } from './sql-statements.js';
import { bindable } from './bindable.js';
import {
  guardBuiltWrite,
  guardDdl,
  guardRead,
  guardSchemaAfterDdl,
  guardWrite,
} from './statement-guard.js';

// The guard as an attacker meets it: each statement is compiled by a real SQLite connection, as
// a worker's, against a schema with AUTOINCREMENT, statistics, triggers and foreign keys.
const SCHEMA = `
  CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, qty INTEGER);
  CREATE TABLE notes (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items(id) ON DELETE CASCADE, body TEXT);
  CREATE TABLE history (item_id INTEGER, change TEXT);
  CREATE TRIGGER items_history AFTER UPDATE ON items BEGIN
    INSERT INTO history VALUES (new.id, 'updated');
  END;
  INSERT INTO items (name, qty) VALUES ('apple', 1), ('pear', 2);
  INSERT INTO notes (item_id, body) VALUES (1, 'crisp');
  ANALYZE;
`;

describe('statement guard', () => {
  let dir: string;
  let db: Database.Database;
  let reader: Database.Database;
  const sequence = () =>
    db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'items'").pluck().get();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-guard-'));
    const path = join(dir, 'app.sqlite');
    db = new Database(path);
    db.pragma('foreign_keys = ON');
    db.exec(SCHEMA);
    reader = new Database(path, { readonly: true });
    reader.pragma('query_only = 1');
  });

  afterEach(() => {
    reader.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe(guardRead.name, () => {
    it.each([
      'SELECT * FROM items WHERE id = ?',
      'SELECT name FROM items JOIN notes ON notes.item_id = items.id',
      "SELECT * FROM pragma_table_info('items')",
      'SELECT * FROM sqlite_sequence',
      "SELECT value FROM json_each('[1,2]')",
      'VALUES (1), (2)',
    ])('lets a plain read through: %s', (sql) => {
      expect(() => guardRead(reader, sql, sql.includes('?') ? [1] : [])).not.toThrow();
    });

    it.each([
      'SELECT * FROM dbstat',
      'SELECT * FROM main.dbstat',
      'SELECT * FROM "DBSTAT"',
      "SELECT * FROM dbstat('main')",
      "SELECT count(*) FROM dbstat AS d WHERE d.name = 'items'",
      'WITH s AS (SELECT * FROM dbstat) SELECT * FROM s',
      'SELECT (SELECT sum(pgsize) FROM dbstat) AS size',
      'SELECT * FROM items WHERE id IN (SELECT pageno FROM dbstat)',
      'SELECT * FROM pragma_optimize',
    ])('refuses a storage-exposing virtual table: %s', (sql) => {
      expect(refusal(() => guardRead(reader, sql, [])).code).toBe('STORAGE_NOT_ALLOWED');
    });

    it('refuses a virtual table of a storage module made before the rule (or by other means)', () => {
      db.exec('CREATE VIRTUAL TABLE pages USING dbstat');

      expect(refusal(() => guardRead(reader, 'SELECT name, pgsize FROM pages', [])).code).toBe(
        'STORAGE_NOT_ALLOWED',
      );
    });

    it('refuses a temporary object, should one exist on the connection', () => {
      db.exec('CREATE TEMP TABLE stash (x)');

      expect(refusal(() => guardRead(db, 'SELECT * FROM stash', [])).code).toBe('TEMPORARY_OBJECT');
    });

    it.each([
      ['a write', 'UPDATE items SET qty = 0', 'NOT_READ_ONLY'],
      ['a write in a CTE', 'WITH x AS (SELECT 1) DELETE FROM items', 'NOT_READ_ONLY'],
      ['an EXPLAIN', 'EXPLAIN SELECT 1', 'NOT_READ_ONLY'],
      ['an ATTACH', `ATTACH '${'/tmp/x.sqlite'}' AS x`, 'ATTACH_NOT_ALLOWED'],
      ['a PRAGMA', 'PRAGMA query_only = 0', 'PRAGMA_NOT_ALLOWED'],
      ['two statements', 'SELECT 1; SELECT 2', 'MULTIPLE_STATEMENTS'],
      ['a table named like the audit log', 'SELECT * FROM audit_log', 'INTERNAL_TABLE'],
    ])('refuses %s', (_case, sql, code) => {
      if (code === 'INTERNAL_TABLE') db.exec('CREATE TABLE audit_log (x)');

      expect(refusal(() => guardRead(reader, sql, [])).code).toBe(code);
    });
  });

  describe(guardWrite.name, () => {
    it.each([
      ["INSERT INTO items (name, qty) VALUES ('fig', 3)"],
      ["UPDATE items SET qty = qty + 1 WHERE name = 'apple'"],
      ['DELETE FROM items WHERE id = 1'],
      ["REPLACE INTO items (id, name, qty) VALUES (2, 'pear', 9) RETURNING id"],
    ])(
      'lets a change of application rows through, AUTOINCREMENT and triggers included: %s',
      (sql) => {
        const statement = guardWrite(db, sql, []);
        statement.run();

        expect(statement.readonly).toBe(false);
      },
    );

    it.each([
      "UPDATE sqlite_sequence SET seq = 9223372036854775807 WHERE name = 'items'",
      'DELETE FROM sqlite_sequence',
      "DELETE FROM sqlite_sequence WHERE name = 'items'",
      "INSERT INTO sqlite_sequence (name, seq) VALUES ('items', 1000000)",
      "REPLACE INTO sqlite_sequence (name, seq) VALUES ('items', 1000000)",
      "UPDATE sqlite_stat1 SET stat = '1 1'",
      "INSERT INTO sqlite_stat1 VALUES ('items', NULL, '999999')",
      'DELETE FROM sqlite_stat1',
    ])('refuses a change of SQLite’s own tables: %s', (sql) => {
      const before = sequence();

      expect(refusal(() => guardWrite(db, sql, [])).code).toBe('SYSTEM_TABLE');
      expect(sequence()).toBe(before);
    });

    it('refuses a change whose trigger writes sqlite_sequence', () => {
      db.exec(
        "CREATE TRIGGER sneaky AFTER INSERT ON history BEGIN UPDATE sqlite_sequence SET seq = 0 WHERE name = 'items'; END",
      );

      expect(refusal(() => guardWrite(db, "INSERT INTO history VALUES (1, 'x')", [])).code).toBe(
        'SYSTEM_TABLE',
      );
      expect(refusal(() => guardWrite(db, 'UPDATE items SET qty = 5', [])).code).toBe(
        'SYSTEM_TABLE',
      ); // items' own trigger inserts into history, whose trigger writes sqlite_sequence
    });

    it.each([
      ['RETURNING', 'UPDATE items SET qty = 1 RETURNING (SELECT count(*) FROM dbstat)'],
      ['INSERT ... SELECT', 'INSERT INTO history SELECT pageno, name FROM dbstat'],
    ])('refuses reading a storage virtual table through %s', (_case, sql) => {
      expect(refusal(() => guardWrite(db, sql, [])).code).toBe('STORAGE_NOT_ALLOWED');
    });

    it('refuses writing a temporary table, should one exist on the connection', () => {
      db.exec('CREATE TEMP TABLE stash (x)');

      expect(refusal(() => guardWrite(db, 'INSERT INTO stash VALUES (1)', [])).code).toBe(
        'TEMPORARY_OBJECT',
      );
      expect(refusal(() => guardWrite(db, 'INSERT INTO temp.stash VALUES (1)', [])).code).toBe(
        'TEMPORARY_OBJECT',
      );
    });

    it.each([
      ['a read', 'SELECT * FROM items', 'NOT_A_WRITE'],
      ['DDL', 'CREATE TABLE t (x)', 'NOT_A_WRITE'],
      ['a temporary table', 'CREATE TEMP TABLE t (x)', 'NOT_A_WRITE'],
      ['transaction control', 'COMMIT', 'COMMIT_NOT_ALLOWED'],
      ['VACUUM INTO', "VACUUM INTO '/tmp/copy.sqlite'", 'VACUUM_NOT_ALLOWED'],
    ])('refuses %s', (_case, sql, code) => {
      expect(refusal(() => guardWrite(db, sql, [])).code).toBe(code);
    });
  });

  describe(guardBuiltWrite.name, () => {
    it('holds a built change to the same rules as execute, through the triggers it fires', () => {
      db.exec(
        "CREATE TRIGGER sneaky AFTER DELETE ON notes BEGIN INSERT INTO sqlite_stat1 VALUES ('notes', NULL, '1'); END",
      );
      const params = bindable([1]);

      expect(
        refusal(() => guardBuiltWrite(db, 'DELETE FROM "notes" WHERE "id" = ? RETURNING *', params))
          .code,
      ).toBe('SYSTEM_TABLE');
      // A delete from items cascades to notes (a foreign-key action), whose trigger is refused too.
      expect(
        refusal(() => guardBuiltWrite(db, 'DELETE FROM "items" WHERE "id" = ? RETURNING *', params))
          .code,
      ).toBe('SYSTEM_TABLE');
    });
  });

  describe(guardDdl.name, () => {
    /** Runs a migration script as apply_migration does, in a transaction rolled back on refusal. */
    function migrate(script: string): void {
      db.transaction(() => {
        splitStatements(script).forEach((text, index) => guardDdl(db, text, index).run());
        guardSchemaAfterDdl(db);
      })();
    }
    const schema = () =>
      db.prepare('SELECT type, name, sql FROM sqlite_schema ORDER BY type, name').all();
    const temporary = () => db.prepare('SELECT name FROM temp.sqlite_schema').pluck().all();

    it.each([
      'CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)',
      'CREATE INDEX items_qty ON items (qty)',
      'CREATE VIEW cheap AS SELECT * FROM items WHERE qty < 2',
      'CREATE TRIGGER notes_log AFTER INSERT ON notes BEGIN INSERT INTO history VALUES (new.item_id, new.body); END',
      'CREATE VIRTUAL TABLE docs USING fts5(body)',
      'CREATE VIRTUAL TABLE "places" USING rtree(id, minx, maxx)',
      'CREATE TABLE copy AS SELECT * FROM items',
      'ALTER TABLE items ADD COLUMN tag TEXT',
      'DROP TABLE history',
    ])('applies DDL on the application tables: %s', (sql) => {
      expect(() => migrate(sql)).not.toThrow();
    });

    it.each([
      'CREATE TEMP TABLE stash (x)',
      'CREATE TEMPORARY TABLE stash (x)',
      'CREATE TABLE temp.stash (x)',
      'CREATE TEMP VIEW v AS SELECT * FROM items',
      "CREATE TEMP TRIGGER t AFTER INSERT ON main.items BEGIN INSERT INTO history VALUES (1, 'x'); END",
      'CREATE TABLE x (a); CREATE TEMP TABLE y (b)',
    ])('refuses a temporary object and leaves nothing behind: %s', (script) => {
      const before = schema();

      expect(['TEMPORARY_OBJECT']).toContain(refusal(() => migrate(script)).code);
      expect(schema()).toEqual(before);
      expect(temporary()).toEqual([]);
    });

    it.each([
      'CREATE VIRTUAL TABLE pages USING dbstat',
      'CREATE VIRTUAL TABLE "b USING fts5" USING dbstat',
      'CREATE VIRTUAL TABLE IF NOT EXISTS pages USING "dbstat"(main)',
      'CREATE VIRTUAL TABLE words USING fts5vocab(docs, row)',
      // SQLite reads U+00A0 and é as parts of the name, not as a blank before another USING.
      'CREATE VIRTUAL TABLE a\u00a0using\u00a0fts5 USING dbstat',
      'CREATE VIRTUAL TABLE \u00e9using\u00a0fts5 USING dbstat',
    ])('refuses a virtual table of a module not allowed: %s', (sql) => {
      expect(refusal(() => migrate(sql)).code).toBe('VIRTUAL_TABLE_MODULE');
    });

    it.each([
      'CREATE TABLE copy AS SELECT * FROM dbstat',
      "CREATE TABLE sizes AS SELECT name, pgsize FROM dbstat WHERE name = 'items'",
    ])('refuses copying a storage virtual table: %s', (sql) => {
      expect(refusal(() => migrate(sql)).code).toBe('STORAGE_NOT_ALLOWED');
    });

    it('refuses the triggers a DROP TABLE fires through its foreign-key actions', () => {
      migrate(
        "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (pid REFERENCES p(id) ON DELETE CASCADE); CREATE TRIGGER c_gone AFTER DELETE ON c BEGIN UPDATE sqlite_sequence SET seq = 9223372036854775807 WHERE name = 'items'; END",
      );
      db.exec('INSERT INTO p VALUES (1); INSERT INTO c VALUES (1)');
      const before = sequence();

      expect(refusal(() => migrate('DROP TABLE p')).code).toBe('SYSTEM_TABLE');
      expect(sequence()).toBe(before);
      expect(schema()).toContainEqual(expect.objectContaining({ name: 'p' }));
    });

    it('lets a DROP TABLE do its own upkeep of sqlite_stat1 and sqlite_sequence', () => {
      expect(() => migrate('DROP TABLE items')).not.toThrow();
      expect(
        db.prepare("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'items'").pluck().get(),
      ).toBe(0);
    });

    it('leaves a view over a storage virtual table unreadable (SQLite marks dbstat direct-only)', () => {
      migrate('CREATE VIEW pages AS SELECT * FROM dbstat');

      expect(() => guardRead(reader, 'SELECT * FROM pages', [])).toThrow(
        'unsafe use of virtual table "dbstat"',
      );
    });

    it.each([
      ['a write', "INSERT INTO items (name) VALUES ('x')", 'NOT_DDL'],
      ['a read', 'SELECT 1', 'NOT_DDL'],
      ['an ATTACH', "ATTACH 'x.sqlite' AS x", 'ATTACH_NOT_ALLOWED'],
      ['a PRAGMA', 'PRAGMA writable_schema = 1', 'PRAGMA_NOT_ALLOWED'],
      ['dropping SQLite’s statistics', 'DROP TABLE sqlite_stat1', 'SYSTEM_TABLE'],
    ])('refuses %s', (_case, sql, code) => {
      expect(refusal(() => migrate(sql)).code).toBe(code);
    });
  });
});
