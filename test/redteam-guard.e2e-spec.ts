// Red team: one rule for every tool that runs SQL, attacked past the issue's examples. Each test
// asserts the safe behaviour; the application database is read directly after each attack.
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { readSqlite } from './support/sqlite-files.js';
import { textOf, type ToolClient, toolClient } from './support/tool-client.js';

type Row = Record<string, unknown>;

const SEED = `
  CREATE TABLE rt_items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, qty INTEGER);
  CREATE INDEX rt_items_qty ON rt_items (qty);
  CREATE TABLE rt_sink (x);
  INSERT INTO rt_items (name, qty) VALUES ('apple', 1), ('pear', 2), ('fig', 3);
  ANALYZE;
`;

/** The error code of a refused call (`Error [CODE]: ...`), or `succeeded` with its text. */
async function outcomeOf(client: ToolClient, name: string, args: Row): Promise<string> {
  const result = await client.call(name, args);
  const text = textOf(result);
  if (!result.isError) return `succeeded: ${text}`;
  return /^Error \[(\w+)\]/.exec(text)?.[1] ?? text;
}

describe('red team: the statement guard', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let admin: ToolClient;
  let migrations = 0;

  const rows = (sql: string) =>
    readSqlite(sut.databasePath, (db) => db.prepare(sql).all() as Row[]);
  /** SQLite's own tables and the schema: what no tool may change but through DDL of its own. */
  const system = () => ({
    sequence: rows('SELECT * FROM sqlite_sequence ORDER BY name'),
    stat1: rows('SELECT * FROM sqlite_stat1 ORDER BY tbl, idx'),
  });
  const migrate = (sql: string) =>
    outcomeOf(admin, 'apply_migration', { name: `rt_${++migrations}`, sql });

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp(
      { AUTH_ISSUER: issuer.url },
      { prepareDatabase: (path) => new Database(path).exec(SEED).close() },
    );
    admin = toolClient(
      sut.mcpUrl,
      issuer.token({ audience: sut.mcpUrl, scope: 'db:query db:modify db:admin' }),
    );
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
  });

  describe('storage virtual tables', () => {
    it.each([
      // SQLite reads bytes >= 0x80 as identifier characters; JavaScript's \s takes U+00A0 as a
      // space. The module check reads `fts5` after the first `using` it sees; SQLite reads dbstat.
      ['a name whose non-breaking spaces hide a fake USING', 'a\u00a0using\u00a0fts5'],
      ['a name starting with a non-ASCII letter', '\u00e9using\u00a0fts5'],
    ])(
      'apply_migration refuses a dbstat table behind %s, and no read reaches it',
      async (_how, name) => {
        const outcome = await migrate(`CREATE VIRTUAL TABLE ${name} USING dbstat`);
        const created = readSqlite(sut.databasePath, (db) =>
          db.prepare('SELECT name FROM sqlite_schema WHERE name = ?').all(name),
        );
        const read = await outcomeOf(admin, 'query', {
          sql: `SELECT name, pgsize FROM "${name}"`,
        });

        expect({ outcome, created, read }).toEqual({
          outcome: 'VIRTUAL_TABLE_MODULE',
          created: [],
          read: expect.not.stringMatching(/^succeeded/) as unknown,
        });
      },
    );

    it.each([
      'SELECT * FROM "main"."dbstat"',
      'SELECT * FROM MAIN.DbStat',
      "SELECT * FROM dbstat('main', 1)",
      'SELECT (SELECT count(*) FROM dbstat) AS n',
      'WITH d AS (SELECT * FROM dbstat) SELECT * FROM d',
      'SELECT * FROM rt_items WHERE id IN (SELECT pageno FROM dbstat)',
    ])('query refuses %s', async (sql) => {
      expect(await outcomeOf(admin, 'query', { sql })).toBe('STORAGE_NOT_ALLOWED');
    });

    it('refuses pragma_optimize (it would ANALYZE) through a migration, and stat1 is unchanged', async () => {
      const before = system();

      expect(await migrate('CREATE TABLE rt_opt AS SELECT * FROM pragma_optimize(0x10002)')).toBe(
        'STORAGE_NOT_ALLOWED',
      );
      expect(system()).toEqual(before);
    });
  });

  describe("SQLite's own tables through triggers and foreign-key actions", () => {
    it('apply_migration: DROP TABLE whose foreign-key cascade fires a trigger writing sqlite_sequence and sqlite_stat1 is refused', async () => {
      expect(
        await migrate(`
          CREATE TABLE rt_parent (id INTEGER PRIMARY KEY);
          CREATE TABLE rt_child (pid INTEGER REFERENCES rt_parent (id) ON DELETE CASCADE);
          CREATE TRIGGER rt_child_gone AFTER DELETE ON rt_child BEGIN
            UPDATE sqlite_sequence SET seq = 9223372036854775807 WHERE name = 'rt_items';
            INSERT INTO sqlite_stat1 VALUES ('rt_items', 'rt_items_qty', '1000000 1');
          END`),
      ).toMatch(/^succeeded/);
      await admin.ok('insert_rows', { table: 'rt_parent', rows: [{ id: 1 }] });
      await admin.ok('insert_rows', { table: 'rt_child', rows: [{ pid: 1 }] });
      const before = system();
      // The row tool that would fire the trigger is refused, as the README says.
      expect(
        await outcomeOf(admin, 'delete_rows', {
          table: 'rt_child',
          where: [{ column: 'pid', op: '=', value: 1 }],
          expected_max_rows: 1,
        }),
      ).toBe('SYSTEM_TABLE');

      const drop = await migrate('DROP TABLE rt_parent');
      const after = system();
      const insert = await outcomeOf(admin, 'execute', {
        sql: "INSERT INTO rt_items (name, qty) VALUES ('kiwi', 4)",
      });

      expect({ drop, after, insert }).toEqual({
        drop: 'SYSTEM_TABLE',
        after: before,
        insert: expect.stringMatching(/^succeeded/) as unknown,
      });
    });

    it.each([
      [
        'an INSTEAD OF trigger on a view',
        `CREATE VIEW rt_v1 AS SELECT 1 AS x;
         CREATE TRIGGER rt_v1_ins INSTEAD OF INSERT ON rt_v1 BEGIN DELETE FROM sqlite_sequence; END`,
        'INSERT INTO rt_v1 VALUES (1)',
      ],
      [
        'a trigger two levels down (recursive triggers)',
        `CREATE TABLE rt_a (x); CREATE TABLE rt_b (x);
         CREATE TRIGGER rt_a_ins AFTER INSERT ON rt_a BEGIN INSERT INTO rt_b VALUES (new.x); END;
         CREATE TRIGGER rt_b_ins AFTER INSERT ON rt_b BEGIN UPDATE sqlite_stat1 SET stat = '1 1'; END`,
        'INSERT INTO rt_a VALUES (1)',
      ],
      [
        'a REPLACE whose conflict (its second run) deletes a row with a delete trigger',
        `CREATE TABLE rt_r (id INTEGER PRIMARY KEY, v);
         CREATE TRIGGER rt_r_del AFTER DELETE ON rt_r BEGIN DELETE FROM sqlite_stat1; END`,
        'REPLACE INTO rt_r (id, v) VALUES (1, 2)',
      ],
      [
        'an UPSERT whose DO UPDATE fires an update trigger',
        `CREATE TABLE rt_u (id INTEGER PRIMARY KEY, v);
         CREATE TRIGGER rt_u_upd AFTER UPDATE ON rt_u BEGIN UPDATE sqlite_sequence SET seq = 0; END`,
        'INSERT INTO rt_u (id, v) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET v = excluded.v + 1',
      ],
      [
        'an ON UPDATE SET NULL action firing a trigger on the child',
        `CREATE TABLE rt_p2 (id INTEGER PRIMARY KEY);
         CREATE TABLE rt_c2 (pid INTEGER REFERENCES rt_p2 (id) ON UPDATE SET NULL);
         CREATE TRIGGER rt_c2_upd AFTER UPDATE ON rt_c2 BEGIN DELETE FROM sqlite_sequence; END`,
        'UPDATE rt_p2 SET id = id + 100',
      ],
    ])(
      'execute leaves sqlite_* unchanged by a write that reaches it through %s',
      async (_how, ddl, sql) => {
        expect(await migrate(ddl)).toMatch(/^succeeded/);
        const before = system();

        // Refused, or (a trigger SQLite does not fire: recursive_triggers is off) run harmlessly.
        const outcomes = [
          await outcomeOf(admin, 'execute', { sql, dry_run: true }),
          await outcomeOf(admin, 'execute', { sql }),
          await outcomeOf(admin, 'execute', { sql }),
        ];
        expect(outcomes).toEqual(
          outcomes.map(() => expect.stringMatching(/^(SYSTEM_TABLE|succeeded)/) as unknown),
        );
        expect(system()).toEqual(before);
      },
    );
  });

  describe('temporary objects and names', () => {
    it.each([
      'SELECT * FROM temp.sqlite_master',
      'SELECT * FROM sqlite_temp_master',
      'SELECT * FROM "TEMP"."sqlite_schema"',
    ])('query refuses %s', async (sql) => {
      expect(await outcomeOf(admin, 'query', { sql })).toBe('TEMPORARY_OBJECT');
    });

    it.each([
      'CREATE TEMP TABLE rt_t AS SELECT 1',
      'CREATE TABLE rt_ok2 (x); CREATE TEMP TRIGGER rt_tt AFTER INSERT ON main.rt_ok2 BEGIN SELECT 1; END',
      "CREATE TABLE rt_ctas AS SELECT * FROM sqlite_temp_master WHERE type = 'table'",
    ])('apply_migration refuses %s and leaves nothing', async (sql) => {
      const before = rows('SELECT type, name FROM sqlite_schema ORDER BY name');

      expect(await migrate(sql)).toBe('TEMPORARY_OBJECT');
      expect(rows('SELECT type, name FROM sqlite_schema ORDER BY name')).toEqual(before);
    });

    it.each([
      'CREATE VIEW rt_tv AS SELECT * FROM temp.sqlite_master',
      'ALTER TABLE rt_sink RENAME TO sqlite_x',
      'ALTER TABLE rt_sink RENAME TO "SQLite_x"',
      'CREATE TABLE "Audit_Log" (x)',
      'ALTER TABLE rt_sink RENAME TO [SCOPEDB_MIGRATIONS]',
      'CREATE INDEX audit_log ON rt_sink (x)',
      'CREATE VIEW scopedb_internal_migrations AS SELECT 1',
    ])('apply_migration refuses %s and leaves the schema as it was', async (sql) => {
      const before = rows('SELECT type, name FROM sqlite_schema ORDER BY name');

      expect(await migrate(sql)).not.toMatch(/^succeeded/);
      expect(rows('SELECT type, name FROM sqlite_schema ORDER BY name')).toEqual(before);
    });
  });

  it('left the audit store without a record of a tool it did not see', () => {
    const tools = readSqlite(sut.auditDatabasePath, (db) =>
      db
        .prepare<[], string>('SELECT DISTINCT tool FROM audit_log WHERE tool IS NOT NULL')
        .pluck()
        .all(),
    );
    expect(tools.sort()).toEqual(
      ['apply_migration', 'delete_rows', 'execute', 'insert_rows', 'query'].sort(),
    );
  });
});
