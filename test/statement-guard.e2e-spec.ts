// One rule for every tool that runs SQL, sent as an attacker would with ordinary tokens: SQLite's
// own tables, temporary objects, storage virtual tables and triggers, through query, execute,
// the row tools and apply_migration. After each attack the application database is read directly.
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { textOf, toolClient, type ToolClient } from './support/tool-client.js';

type Row = Record<string, unknown>;

const SEED = `
  CREATE TABLE sg_items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, qty INTEGER);
  CREATE TABLE sg_log (item_id INTEGER, what TEXT);
  INSERT INTO sg_items (name, qty) VALUES ('apple', 1), ('pear', 2), ('fig', 3);
  ANALYZE;
`;

describe('statement guard, end to end', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let client: ToolClient;
  let db: Database.Database;

  /**
   * The error code a refused call names (`Error [CODE]: ...`), or the success text; a refusal
   * must have left exactly one record saying so, with the SQL that was refused.
   */
  async function refusedWith(name: string, args: Record<string, unknown>): Promise<string> {
    const { result, records } = await client.audited(name, args);
    const text = textOf(result);
    if (!result.isError) return `succeeded: ${text}`;
    expect(
      records.map(({ outcome, tool, sqlText, reason }) => ({ outcome, tool, sqlText, reason })),
    ).toEqual([
      {
        outcome: 'tool_error',
        tool: name,
        sqlText: typeof args.sql === 'string' ? args.sql : null,
        reason: text.replace(/^Error \[\w+\]: /, ''),
      },
    ]);
    return /^Error \[(\w+)\]/.exec(text)?.[1] ?? text;
  }
  const rows = (sql: string) => db.prepare(sql).all() as Row[];
  /** What an attack could change in the application database: schema, rows, SQLite's tables. */
  const state = () => ({
    schema: rows('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name'),
    sequence: rows('SELECT * FROM sqlite_sequence ORDER BY name'),
    stat: rows('SELECT * FROM sqlite_stat1 ORDER BY tbl, idx'),
    items: rows('SELECT * FROM sg_items ORDER BY id'),
    log: rows('SELECT * FROM sg_log ORDER BY rowid'),
  });

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp(
      { AUTH_ISSUER: issuer.url },
      { prepareDatabase: (path) => new Database(path).exec(SEED).close() },
    );
    client = toolClient(
      sut.mcpUrl,
      issuer.token({ audience: sut.mcpUrl, scope: 'db:query db:modify db:admin' }),
      { requestIds: 'guard-e2e', auditDatabasePath: () => sut.auditDatabasePath },
    );
    db = new Database(sut.databasePath, { readonly: true, fileMustExist: true });
  });
  afterAll(async () => {
    db.close();
    await sut.close();
    await issuer.close();
  });

  describe("SQLite's own tables are out of reach of the write tools", () => {
    it.each([
      "UPDATE sqlite_sequence SET seq = 9223372036854775807 WHERE name = 'sg_items'",
      'DELETE FROM sqlite_sequence',
      "INSERT INTO sqlite_sequence (name, seq) VALUES ('sg_items', 1)",
      "REPLACE INTO sqlite_sequence (name, seq) VALUES ('sg_items', 1)",
      "UPDATE sqlite_stat1 SET stat = '1'",
      "INSERT INTO sqlite_stat1 VALUES ('sg_items', NULL, '1000000')",
      'WITH s AS (SELECT 1) UPDATE sqlite_sequence SET seq = 0',
    ])('execute refuses %s, dry run or not, and nothing changes', async (sql) => {
      const before = state();

      expect(await refusedWith('execute', { sql })).toBe('SYSTEM_TABLE');
      expect(await refusedWith('execute', { sql, dry_run: true })).toBe('SYSTEM_TABLE');
      expect(state()).toEqual(before);
    });

    it.each([
      ['insert_rows', { table: 'sqlite_sequence', rows: [{ name: 'x', seq: 1 }] }],
      [
        'update_rows',
        {
          table: 'sqlite_stat1',
          set: { stat: '1' },
          where: [{ column: 'tbl', op: '=', value: 'sg_items' }],
          expected_max_rows: 10,
        },
      ],
      [
        'delete_rows',
        {
          table: 'sqlite_sequence',
          where: [{ column: 'name', op: 'like', value: '%' }],
          expected_max_rows: 10,
        },
      ],
      [
        'delete_rows',
        {
          table: 'sqlite_schema',
          where: [{ column: 'name', op: 'like', value: '%' }],
          expected_max_rows: 10,
        },
      ],
    ])('%s cannot name them', async (tool, args) => {
      const before = state();

      expect(await refusedWith(tool, args)).toBe('UNKNOWN_TABLE');
      expect(state()).toEqual(before);
    });

    it('holds the row tools and execute to the rule through the triggers they fire', async () => {
      expect(
        await refusedWith('apply_migration', {
          name: 'sg_sneaky_trigger',
          sql: "CREATE TRIGGER sg_sneaky AFTER INSERT ON sg_log BEGIN UPDATE sqlite_sequence SET seq = 0 WHERE name = 'sg_items'; END",
        }),
      ).toMatch(/^succeeded/);
      const before = state();
      const insert = { table: 'sg_log', rows: [{ item_id: 1, what: 'x' }] };

      expect(await refusedWith('insert_rows', insert)).toBe('SYSTEM_TABLE');
      expect(await refusedWith('insert_rows', { ...insert, returning: true })).toBe('SYSTEM_TABLE');
      expect(await refusedWith('execute', { sql: "INSERT INTO sg_log VALUES (1, 'x')" })).toBe(
        'SYSTEM_TABLE',
      );
      expect(state()).toEqual(before);

      expect(
        await refusedWith('apply_migration', {
          name: 'sg_drop_sneaky',
          sql: 'DROP TRIGGER sg_sneaky',
        }),
      ).toMatch(/^succeeded/);
      expect(await refusedWith('insert_rows', insert)).toMatch(/^succeeded/);
    });

    it('lets AUTOINCREMENT do its own upkeep of sqlite_sequence', async () => {
      expect(
        await refusedWith('insert_rows', { table: 'sg_items', rows: [{ name: 'kiwi', qty: 4 }] }),
      ).toMatch(/^succeeded/);
      expect(rows("SELECT seq FROM sqlite_sequence WHERE name = 'sg_items'")).toEqual([{ seq: 4 }]);
    });
  });

  describe('temporary objects are refused', () => {
    it.each([
      "CREATE TEMP TRIGGER sg_t AFTER INSERT ON main.sg_items BEGIN INSERT INTO sg_log VALUES (new.id, 'forged'); END",
      'CREATE TEMP VIEW sg_v AS SELECT * FROM sg_items',
      'CREATE TEMPORARY TABLE sg_stash (x)',
      'CREATE TABLE temp.sg_stash (x)',
      'CREATE TABLE sg_ok (x); CREATE TEMP TABLE sg_stash (x)',
    ])('apply_migration refuses %s, dry run or not, and records nothing', async (sql) => {
      const before = state();
      const name = `sg_temp_${before.schema.length}`;

      expect(await refusedWith('apply_migration', { name, sql })).toBe('TEMPORARY_OBJECT');
      expect(await refusedWith('apply_migration', { name, sql, dry_run: true })).toBe(
        'TEMPORARY_OBJECT',
      );
      expect(state()).toEqual(before);
      const ledger = await client.ok<{ migrations: { name: string }[] }>('list_migrations');
      expect(ledger.migrations.map((m) => m.name)).not.toContain(name);
      // Nothing the refused migration meant to set up fires on a later write.
      expect(
        await refusedWith('insert_rows', {
          table: 'sg_log',
          rows: [{ item_id: 9, what: 'probe' }],
        }),
      ).toMatch(/^succeeded/);
      expect(rows("SELECT * FROM sg_log WHERE what = 'forged'")).toEqual([]);
    });

    it.each([
      ['execute', { sql: 'CREATE TEMP TABLE sg_stash (x)' }, 'NOT_A_WRITE'],
      ['execute', { sql: 'INSERT INTO temp.sg_stash VALUES (1)' }, 'SQLITE_ERROR'],
      ['query', { sql: 'SELECT * FROM temp.sqlite_schema' }, 'TEMPORARY_OBJECT'],
    ])('%s refuses %j', async (tool, args, code) => {
      expect(await refusedWith(tool, args)).toBe(code);
    });
  });

  describe('virtual tables that expose storage are refused', () => {
    it.each([
      ['query', { sql: 'SELECT * FROM dbstat' }],
      ['query', { sql: "SELECT sum(pgsize) FROM main.dbstat WHERE name = 'sg_items'" }],
      ['query', { sql: 'SELECT * FROM "DbStat"' }],
      ['query', { sql: 'SELECT (SELECT count(*) FROM dbstat) AS pages' }],
      ['query', { sql: 'SELECT * FROM pragma_optimize' }],
      ['explain_query', { sql: 'SELECT * FROM dbstat' }],
      ['execute', { sql: 'UPDATE sg_items SET qty = qty RETURNING (SELECT count(*) FROM dbstat)' }],
      [
        'execute',
        {
          sql: 'UPDATE sg_items SET qty = qty RETURNING (SELECT count(*) FROM dbstat)',
          dry_run: true,
        },
      ],
      ['execute', { sql: 'INSERT INTO sg_log SELECT pageno, name FROM dbstat' }],
      [
        'apply_migration',
        { name: 'sg_copy_dbstat', sql: 'CREATE TABLE sg_pages AS SELECT * FROM dbstat' },
      ],
    ])('%s refuses %j', async (tool, args) => {
      const before = state();

      expect(await refusedWith(tool, args)).toBe('STORAGE_NOT_ALLOWED');
      expect(state()).toEqual(before);
    });

    it.each([
      'CREATE VIRTUAL TABLE sg_pages USING dbstat',
      'CREATE VIRTUAL TABLE "sg USING fts5" USING dbstat',
    ])('apply_migration refuses %s', async (sql) => {
      expect(await refusedWith('apply_migration', { name: 'sg_vtab', sql })).toBe(
        'VIRTUAL_TABLE_MODULE',
      );
    });

    it('allows full-text search tables', async () => {
      expect(
        await refusedWith('apply_migration', {
          name: 'sg_fts',
          sql: 'CREATE VIRTUAL TABLE sg_docs USING fts5(body)',
        }),
      ).toMatch(/^succeeded/);
      expect(
        await refusedWith('insert_rows', { table: 'sg_docs', rows: [{ body: 'hello world' }] }),
      ).toMatch(/^succeeded/);
      const found = await client.call('query', {
        sql: "SELECT body FROM sg_docs WHERE sg_docs MATCH 'hello'",
      });
      expect(found.structuredContent?.rows).toEqual([['hello world']]);
    });
  });
});
