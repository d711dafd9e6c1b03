import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { CASDOOR_CLAIMS, TestIssuer } from './support/issuer.js';
import { ITEMS as FIVE_ITEMS, itemsAfter } from './support/items.js';
import { match } from './support/matchers.js';
import { notWrites } from './support/refused-statements.js';
import { textOf, toolClient, type ToolClient } from './support/tool-client.js';

type Row = Record<string, unknown>;

const SUBJECT = CASDOOR_CLAIMS.sub as string;
const CLIENT_ID = CASDOOR_CLAIMS.azp as string;
const ALL_SCOPES = 'db:query db:modify db:admin';
const INTERNAL = ['audit_log', 'scopedb_migrations', 'scopedb_internal_migrations'];

describe('database tools', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  /** An independent read-only view of the app's SQLite file, to check what the tools did. */
  let db: Database.Database;
  /** The same of the internal database (the ledger and the audit log). */
  let internal: Database.Database;
  let client: ToolClient;

  const rows = (sql: string, ...params: unknown[]) => db.prepare(sql).all(...params) as Row[];
  const objectExists = (name: string) =>
    rows(
      "SELECT 1 FROM sqlite_schema WHERE name = ? AND type IN ('table', 'view', 'index', 'trigger')",
      name,
    ).length === 1;
  const internalRows = (sql: string, ...params: unknown[]) =>
    internal.prepare(sql).all(...params) as Row[];
  const ledger = (name: string) =>
    internalRows('SELECT * FROM scopedb_migrations WHERE name = ? ORDER BY id', name);
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  /** A path beside the database file (where ATTACH or VACUUM INTO would put one). */
  const besideDatabase = (name: string) => join(dirname(sut.databasePath), name);

  /**
   * Everything a write could change: the schema, a hash of each table's rows and the files beside
   * the database.
   */
  function databaseState() {
    const rowsOf = (table: string) =>
      rows(`SELECT * FROM "${table.replace(/"/g, '""')}" ORDER BY rowid`);
    const snapshot = () => {
      const schema = rows(
        'SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name',
      );
      const content = schema
        .filter((entry) => entry.type === 'table')
        .map(({ name }) => {
          const tableRows = rowsOf(String(name));
          return [name, tableRows.length, sha256(JSON.stringify(tableRows))];
        });
      return { schema, content, files: readdirSync(dirname(sut.databasePath)).sort() };
    };
    const before = snapshot();
    return { before, now: snapshot };
  }

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp({ AUTH_ISSUER: issuer.url });
    client = toolClient(sut.mcpUrl, issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES }), {
      requestIds: 'tools-e2e',
      auditDatabasePath: () => sut.auditDatabasePath,
    });
    // The app created and migrated the file at start-up.
    db = new Database(sut.databasePath, { readonly: true, fileMustExist: true });
    internal = new Database(sut.internalDatabasePath, { readonly: true, fileMustExist: true });
  });
  afterAll(async () => {
    db.close();
    internal.close();
    await sut.close();
    await issuer.close();
  });

  describe('list_tables', () => {
    beforeAll(async () => {
      await client.ok('apply_migration', {
        name: 'list_tables_schema',
        sql: 'CREATE TABLE lt_items (id INTEGER PRIMARY KEY, label TEXT); CREATE VIEW lt_labels AS SELECT label FROM lt_items',
      });
      await client.ok('execute', {
        sql: "INSERT INTO lt_items (label) VALUES ('a'), ('b'), ('c')",
      });
    });

    it('lists tables with their row counts and views without one', async () => {
      const data = await client.ok('list_tables', {});

      expect(data.tables).toEqual(
        match.arrayContaining([
          { name: 'lt_items', type: 'table', row_estimate: 3 },
          { name: 'lt_labels', type: 'view', row_estimate: null },
        ]),
      );
      const names = (data.tables as { name: string }[]).map((table) => table.name);
      expect(names).toEqual([...names].sort());
      expect(names.filter((name) => name.startsWith('sqlite_'))).toEqual([]);
      expect(names.filter((name) => INTERNAL.includes(name))).toEqual([]);
    });

    it.each([
      ['a prefix, case-insensitively', 'LT_%', ['lt_items', 'lt_labels']],
      ['a suffix', '%labels', ['lt_labels']],
      ['_ as any one character', 'lt_item_', ['lt_items']],
      ['. as itself, not as a regular expression', 'lt.items', []],
      ['nothing of ScopeDB', '%audit%', []],
    ])('filters names by a LIKE pattern: %s', async (_case, pattern, expected) => {
      const data = await client.ok('list_tables', { pattern });

      expect((data.tables as { name: string }[]).map((table) => table.name)).toEqual(expected);
    });

    it('leaves views out with include_views=false', async () => {
      const all = await client.ok('list_tables', { pattern: 'lt%' });
      const tablesOnly = await client.ok('list_tables', { pattern: 'lt%', include_views: false });

      expect(all.tables).toEqual([
        { name: 'lt_items', type: 'table', row_estimate: 3 },
        { name: 'lt_labels', type: 'view', row_estimate: null },
      ]);
      expect(tablesOnly.tables).toEqual([{ name: 'lt_items', type: 'table', row_estimate: 3 }]);
    });

    it('says so when no table matches', async () => {
      const result = await client.call('list_tables', { pattern: 'lt_nothing%' });

      expect(result.isError).toBeFalsy();
      expect(result.structuredContent).toEqual({ tables: [] });
      expect(textOf(result)).toBe('No table matches.');
    });
  });

  describe('describe_table', () => {
    beforeAll(async () => {
      await client.ok('apply_migration', {
        name: 'describe_table_schema',
        sql: `
          CREATE TABLE dt_authors (
            id INTEGER NOT NULL PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            email VARCHAR(120),
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired'))
          );
          CREATE TABLE dt_books (
            id INTEGER NOT NULL PRIMARY KEY,
            author_id INTEGER NOT NULL REFERENCES dt_authors (id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            pages INTEGER DEFAULT 0,
            CONSTRAINT "dt_books_pages_nonnegative" CHECK (pages >= 0),
            CHECK (length(title) > 0)
          );
          CREATE INDEX dt_books_title ON dt_books (title);
          CREATE UNIQUE INDEX dt_books_author_title ON dt_books (author_id, title);
          CREATE VIEW dt_titles AS SELECT b.title, a.name FROM dt_books b JOIN dt_authors a ON a.id = b.author_id;
        `,
      });
    });

    it('describes columns, primary key, indexes, checks and outgoing foreign keys', async () => {
      const data = await client.ok('describe_table', { table: 'dt_books' });

      expect(data).toEqual({
        name: 'dt_books',
        type: 'table',
        columns: [
          { name: 'id', type: 'integer', nullable: false, default: null, primary_key: true },
          {
            name: 'author_id',
            type: 'integer',
            nullable: false,
            default: null,
            primary_key: false,
          },
          { name: 'title', type: 'text', nullable: false, default: null, primary_key: false },
          { name: 'pages', type: 'integer', nullable: true, default: '0', primary_key: false },
        ],
        primary_key: ['id'],
        indexes: match.arrayContaining([
          { name: 'dt_books_title', columns: ['title'], unique: false },
          { name: 'dt_books_author_title', columns: ['author_id', 'title'], unique: true },
        ]),
        foreign_keys: [
          {
            columns: ['author_id'],
            referenced_table: 'dt_authors',
            referenced_columns: ['id'],
            on_delete: 'CASCADE',
            on_update: 'NO ACTION',
          },
        ],
        referenced_by: [],
        checks: [
          { name: 'dt_books_pages_nonnegative', expression: 'pages >= 0' },
          { name: null, expression: 'length(title) > 0' },
        ],
      });
      expect(data.indexes).toHaveLength(2);
    });

    it('describes defaults, lengths, unique constraints, a column check and incoming foreign keys', async () => {
      const data = await client.ok('describe_table', { table: 'dt_authors' });

      expect(data).toEqual({
        name: 'dt_authors',
        type: 'table',
        columns: [
          { name: 'id', type: 'integer', nullable: false, default: null, primary_key: true },
          { name: 'name', type: 'text', nullable: false, default: null, primary_key: false },
          {
            name: 'email',
            type: 'varchar(120)',
            nullable: true,
            default: null,
            primary_key: false,
          },
          {
            name: 'status',
            type: 'text',
            nullable: false,
            default: "'active'",
            primary_key: false,
          },
        ],
        primary_key: ['id'],
        indexes: [{ name: match.any(String), columns: ['name'], unique: true }],
        foreign_keys: [],
        referenced_by: [
          {
            table: 'dt_books',
            columns: ['author_id'],
            referenced_table: 'dt_authors',
            referenced_columns: ['id'],
            on_delete: 'CASCADE',
            on_update: 'NO ACTION',
          },
        ],
        checks: [{ name: null, expression: "status IN ('active', 'retired')" }],
      });
    });

    it('describes a view', async () => {
      const data = await client.ok('describe_table', { table: 'dt_titles' });

      expect(data).toMatchObject({
        name: 'dt_titles',
        type: 'view',
        columns: [
          { name: 'title', type: 'text' },
          { name: 'name', type: 'text' },
        ],
        foreign_keys: [],
        referenced_by: [],
        checks: [],
      });
    });

    it.each([
      ['an unknown name', 'no_such_table'],
      ['a name differing in case only', 'DT_BOOKS'],
      ['an injection attempt', 'dt_books"; DROP TABLE dt_books; --'],
      ['an injection attempt through quoting', "dt_books') UNION SELECT * FROM audit_log --"],
    ])('answers %s with an error result naming it, and changes nothing', async (_case, table) => {
      const state = databaseState();

      const result = await client.call('describe_table', { table });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[UNKNOWN_TABLE\]: /);
      expect(textOf(result)).toContain(JSON.stringify(table));
      expect(objectExists('dt_books')).toBe(true);
      expect(state.now()).toEqual(state.before);
    });
  });

  describe('query', () => {
    const itemsBefore = () => rows('SELECT * FROM q_items ORDER BY id');

    beforeAll(async () => {
      await client.ok('apply_migration', {
        name: 'query_schema',
        sql: 'CREATE TABLE q_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL); CREATE TABLE q_numbers (n INTEGER NOT NULL)',
      });
      await client.ok('execute', {
        sql: 'INSERT INTO q_items (id, name, price) VALUES (1, ?, 1.5), (2, ?, 2.5), (3, ?, NULL)',
        params: ['apple', 'banana', 'cherry'],
      });
      await client.ok('execute', {
        sql: 'WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 250) INSERT INTO q_numbers (n) SELECT n FROM seq',
      });
    });

    it('binds positional parameters and lists the columns with their declared types', async () => {
      const data = await client.ok('query', {
        sql: 'SELECT id, name, price FROM q_items WHERE price > ? ORDER BY id',
        params: [2],
      });

      expect(data).toEqual({
        columns: [
          { name: 'id', type: 'INTEGER' },
          { name: 'name', type: 'TEXT' },
          { name: 'price', type: 'REAL' },
        ],
        rows: [[2, 'banana', 2.5]],
        row_count: 1,
        truncated: false,
        truncation_reason: null,
        elapsed_ms: match.any(Number),
      });
    });

    it('binds named parameters from an object', async () => {
      const data = await client.ok('query', {
        sql: 'SELECT name FROM q_items WHERE id = :id OR name = :name ORDER BY id',
        params: { id: 1, name: 'cherry' },
      });

      expect(data.rows).toEqual([['apple'], ['cherry']]);
    });

    it('treats a bound value as data, never as SQL', async () => {
      const data = await client.ok('query', {
        sql: 'SELECT count(*) AS n FROM q_items WHERE name = ?',
        params: ["x' OR '1'='1"],
      });

      expect(data.rows).toEqual([[0]]);
    });

    it('returns at most 100 rows by default, and says it truncated', async () => {
      const data = await client.ok('query', { sql: 'SELECT n FROM q_numbers ORDER BY n' });

      expect(data.row_count).toBe(100);
      expect(data.rows).toHaveLength(100);
      expect((data.rows as unknown[][]).at(-1)).toEqual([100]);
      expect(data.truncated).toBe(true);
    });

    it('returns at most max_rows rows', async () => {
      const data = await client.ok('query', {
        sql: 'SELECT n FROM q_numbers ORDER BY n',
        max_rows: 10,
      });

      expect(data).toMatchObject({ row_count: 10, truncated: true });
      expect(data.rows).toEqual(Array.from({ length: 10 }, (_, i) => [i + 1]));
    });

    it('is not truncated when the rows fit max_rows exactly', async () => {
      const data = await client.ok('query', { sql: 'SELECT n FROM q_numbers', max_rows: 250 });

      expect(data).toMatchObject({ row_count: 250, truncated: false });
    });

    it('refuses max_rows above 1000 in input validation', async () => {
      const result = await client.call('query', { sql: 'SELECT 1', max_rows: 1001 });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/input validation/i);
      expect(textOf(result)).toContain('max_rows');
    });

    describe('refuses anything but one read-only statement, changing nothing', () => {
      const attached = () => besideDatabase('attached.sqlite');
      const copy = () => besideDatabase('copy.sqlite');

      it.each([
        ['stacked statements', () => 'SELECT 1; DROP TABLE q_items', 'MULTIPLE_STATEMENTS'],
        ['a read after a write', () => 'DELETE FROM q_items; SELECT 1', 'MULTIPLE_STATEMENTS'],
        ['a write', () => 'DELETE FROM q_items', 'NOT_READ_ONLY'],
        ['a write returning rows', () => 'DELETE FROM q_items RETURNING *', 'NOT_READ_ONLY'],
        ['DML inside a CTE', () => 'WITH x AS (SELECT 1) DELETE FROM q_items', 'NOT_READ_ONLY'],
        ['a comment before a write', () => '/* hi */ DELETE FROM q_items', 'NOT_READ_ONLY'],
        [
          'a write after a line comment',
          () => '-- SELECT\nUPDATE q_items SET price = 0',
          'NOT_READ_ONLY',
        ],
        ['switching query_only off', () => 'PRAGMA query_only = 0', 'PRAGMA_NOT_ALLOWED'],
        [
          // Refused as an EXPLAIN before anything is compiled, so the PRAGMA never takes effect.
          'switching query_only off under EXPLAIN',
          () => 'EXPLAIN PRAGMA query_only = 0',
          'NOT_READ_ONLY',
        ],
        ['a writable schema', () => 'PRAGMA writable_schema = 1', 'PRAGMA_NOT_ALLOWED'],
        ['ATTACH DATABASE', () => `ATTACH DATABASE '${attached()}' AS x`, 'ATTACH_NOT_ALLOWED'],
        ['ATTACH in lower case', () => `attach '${attached()}' as x`, 'ATTACH_NOT_ALLOWED'],
        ['VACUUM INTO', () => `VACUUM INTO '${copy()}'`, 'VACUUM_NOT_ALLOWED'],
        ['VACUUM after a comment', () => `/* x */ VACUUM INTO '${copy()}'`, 'VACUUM_NOT_ALLOWED'],
        ['a temp table', () => 'CREATE TEMP TABLE q_temp (a)', 'NOT_READ_ONLY'],
        ['BEGIN', () => 'BEGIN', 'BEGIN_NOT_ALLOWED'],
        ['BEGIN IMMEDIATE', () => 'BEGIN IMMEDIATE', 'BEGIN_NOT_ALLOWED'],
        ['SAVEPOINT', () => 'SAVEPOINT s', 'SAVEPOINT_NOT_ALLOWED'],
        ['ANALYZE', () => 'ANALYZE', 'ANALYZE_NOT_ALLOWED'],
        ['REINDEX', () => 'REINDEX', 'REINDEX_NOT_ALLOWED'],
      ])('%s', async (_case, sql, code) => {
        const state = databaseState();

        const result = await client.call('query', { sql: sql() });

        expect(result.isError).toBe(true);
        expect(textOf(result)).toMatch(new RegExp(`^Error \\[${code}\\]: `));
        expect(state.now()).toEqual(state.before);
        expect(itemsBefore()).toHaveLength(3);
        expect(existsSync(attached())).toBe(false);
        expect(existsSync(copy())).toBe(false);
      });

      it('load_extension(), which SQLite does not authorize', async () => {
        const state = databaseState();

        const result = await client.call('query', {
          sql: 'SELECT load_extension(?)',
          params: [besideDatabase('evil.so')],
        });

        expect(result.isError).toBe(true);
        expect(textOf(result)).toBe('Error [SQLITE_ERROR]: not authorized');
        expect(state.now()).toEqual(state.before);
      });
    });

    it('keeps its connection query_only after the PRAGMA attempts', async () => {
      for (const sql of [
        'PRAGMA query_only = 0',
        'EXPLAIN PRAGMA query_only = OFF',
        ';PRAGMA query_only = false',
      ])
        await client.call('query', { sql });

      const data = await client.ok('query', { sql: 'SELECT * FROM pragma_query_only' });

      expect(data.rows).toEqual([[1]]);
    });

    it('answers a bad statement with the SQLite message and code', async () => {
      const result = await client.call('query', { sql: 'SELEC name FROM q_items' });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toBe('Error [SQLITE_ERROR]: near "SELEC": syntax error');
    });

    it('answers an unknown table with the SQLite message', async () => {
      const result = await client.call('query', { sql: 'SELECT * FROM q_nowhere' });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain('no such table: q_nowhere');
    });
  });

  describe('explain_query', () => {
    const details = (data: Record<string, unknown>) =>
      (data.plan as { detail: string }[]).map((step) => step.detail).join('\n');

    beforeAll(async () => {
      await client.ok('apply_migration', {
        name: 'explain_query_schema',
        sql: 'CREATE TABLE xp_orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total INTEGER); CREATE INDEX xp_orders_customer ON xp_orders (customer)',
      });
    });

    it('shows the index a lookup uses', async () => {
      const data = await client.ok('explain_query', {
        sql: 'SELECT total FROM xp_orders WHERE customer = ?',
        params: ['ada'],
      });

      expect(data.plan).toEqual([{ id: match.any(Number), parent: 0, detail: match.any(String) }]);
      expect(details(data)).toMatch(
        /^SEARCH xp_orders USING INDEX xp_orders_customer \(customer=\?\)$/,
      );
    });

    it('shows a primary key lookup and a full scan', async () => {
      const byKey = await client.ok('explain_query', {
        sql: 'SELECT * FROM xp_orders WHERE id = 1',
      });
      const scan = await client.ok('explain_query', {
        sql: 'SELECT * FROM xp_orders WHERE total > 5',
      });

      expect(details(byKey)).toMatch(/USING INTEGER PRIMARY KEY \(rowid=\?\)/);
      expect(details(scan)).toBe('SCAN xp_orders');
    });

    it('nests the steps of a subquery under their parent', async () => {
      const data = await client.ok('explain_query', {
        sql: 'SELECT customer FROM xp_orders WHERE total > (SELECT avg(total) FROM xp_orders)',
      });

      const plan = data.plan as { id: number; parent: number; detail: string }[];
      const subquery = plan.find((step) => /SCALAR SUBQUERY/.test(step.detail));
      expect(subquery).toBeDefined();
      expect(plan.filter((step) => step.parent === subquery!.id)).not.toEqual([]);
    });

    it.each([
      ['a write', 'DELETE FROM xp_orders', 'NOT_READ_ONLY'],
      ['stacked statements', 'SELECT 1; DROP TABLE xp_orders', 'MULTIPLE_STATEMENTS'],
      ['a PRAGMA', 'PRAGMA query_only = 0', 'PRAGMA_NOT_ALLOWED'],
      ['ATTACH', "ATTACH DATABASE ':memory:' AS x", 'ATTACH_NOT_ALLOWED'],
      ['a read of the audit log, in another file', 'SELECT * FROM audit_log', 'SQLITE_ERROR'],
      ['a statement that is already EXPLAIN', 'EXPLAIN QUERY PLAN SELECT 1', 'NOT_READ_ONLY'],
    ])('refuses %s like query does, changing nothing', async (_case, sql, code) => {
      const state = databaseState();

      const result = await client.call('explain_query', { sql });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(new RegExp(`^Error \\[${code}\\]: `));
      expect(state.now()).toEqual(state.before);
    });
  });

  describe('list_migrations', () => {
    const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

    it('lists the applied migrations oldest first, with checksum, who and when', async () => {
      const first = 'CREATE TABLE lm_first (a INTEGER)';
      const second = 'CREATE TABLE lm_second (b INTEGER)';
      await client.ok('apply_migration', { name: 'lm_first', sql: first });
      await client.ok('apply_migration', { name: 'lm_second', sql: second });
      await client.ok('apply_migration', {
        name: 'lm_dry',
        sql: 'CREATE TABLE lm_dry (c)',
        dry_run: true,
      });
      await client.call('apply_migration', {
        name: 'lm_failed',
        sql: 'CREATE TABLE lm_failed (d); SELECT 1',
      });

      const data = await client.ok('list_migrations', {});

      const migrations = data.migrations as { name: string; applied_at: string }[];
      expect(migrations.slice(-2)).toEqual([
        {
          name: 'lm_first',
          checksum: sha256(first),
          applied_at: match.stringMatching(ISO_TIME),
          applied_by: SUBJECT,
          client_id: CLIENT_ID,
          sql: first,
          status: 'applied',
        },
        {
          name: 'lm_second',
          checksum: sha256(second),
          applied_at: match.stringMatching(ISO_TIME),
          applied_by: SUBJECT,
          client_id: CLIENT_ID,
          sql: second,
          status: 'applied',
        },
      ]);
      const times = migrations.map((migration) => migration.applied_at);
      expect(times).toEqual([...times].sort());
      expect(migrations.map((migration) => migration.name)).toEqual(
        internalRows('SELECT name FROM scopedb_migrations ORDER BY appliedAt, id').map(
          (row) => row.name,
        ),
      );
    });
  });

  describe('execute', () => {
    const accounts = () => rows('SELECT id, email, balance FROM ex_accounts ORDER BY id');

    beforeAll(async () => {
      await client.ok('apply_migration', {
        name: 'execute_schema',
        sql: `
          CREATE TABLE ex_accounts (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0)
          );
          CREATE TABLE ex_orders (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES ex_accounts (id));
        `,
      });
    });
    beforeEach(async () => {
      await client.ok('execute', { sql: 'DELETE FROM ex_orders' });
      await client.ok('execute', { sql: 'DELETE FROM ex_accounts' });
      await client.ok('execute', {
        sql: "INSERT INTO ex_accounts (id, email, balance) VALUES (1, 'a@example.com', 10), (2, 'b@example.com', 20)",
      });
    });

    it('inserts with positional parameters and returns affected_rows and the rowid', async () => {
      const data = await client.ok('execute', {
        sql: 'INSERT INTO ex_accounts (email, balance) VALUES (?, ?)',
        params: ['c@example.com', 30],
      });

      expect(data).toEqual({ affected_rows: 1, dry_run: false, last_insert_rowid: 3 });
      expect(accounts()).toContainEqual({ id: 3, email: 'c@example.com', balance: 30 });
    });

    it('updates with named parameters', async () => {
      const data = await client.ok('execute', {
        sql: 'UPDATE ex_accounts SET balance = balance + :amount WHERE balance >= :min',
        params: { amount: 5, min: 10 },
      });

      // An UPDATE inserts nothing, so it reports no rowid (not the connection's last insert).
      expect(data).toEqual({ affected_rows: 2, dry_run: false, last_insert_rowid: null });
      expect(accounts().map((account) => account.balance)).toEqual([15, 25]);
    });

    it('deletes with parameters', async () => {
      const data = await client.ok('execute', {
        sql: 'DELETE FROM ex_accounts WHERE id = ?',
        params: [2],
      });

      expect(data).toEqual({ affected_rows: 1, dry_run: false, last_insert_rowid: null });
      expect(accounts().map((account) => account.id)).toEqual([1]);
    });

    it('returns the rows of INSERT ... RETURNING', async () => {
      const data = await client.ok('execute', {
        sql: 'INSERT INTO ex_accounts (email) VALUES (?), (?) RETURNING id, email, balance',
        params: ['d@example.com', 'e@example.com'],
      });

      expect(data).toEqual({
        affected_rows: 2,
        dry_run: false,
        last_insert_rowid: 4,
        rows: [
          { id: 3, email: 'd@example.com', balance: 0 },
          { id: 4, email: 'e@example.com', balance: 0 },
        ],
        truncated: false,
        truncation_reason: null,
      });
      expect(accounts()).toHaveLength(4);
    });

    it.each([
      ...notWrites('ex_accounts'),
      ['CREATE TABLE', 'CREATE TABLE ex_new (a)', 'NOT_A_WRITE'],
      ['DROP TABLE of another table', 'DROP TABLE ex_orders', 'NOT_A_WRITE'],
      ['ALTER TABLE', 'ALTER TABLE ex_accounts ADD COLUMN note TEXT', 'NOT_A_WRITE'],
      [
        'stacked statements',
        "INSERT INTO ex_accounts (email) VALUES ('x@example.com'); DELETE FROM ex_accounts",
        'MULTIPLE_STATEMENTS',
      ],
    ])('refuses %s and changes nothing', async (_case, sql, code) => {
      const before = accounts();
      const schema = rows('SELECT name, sql FROM sqlite_schema ORDER BY name');

      const result = await client.call('execute', { sql });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain(`[${code}]`);
      expect(accounts()).toEqual(before);
      expect(rows('SELECT name, sql FROM sqlite_schema ORDER BY name')).toEqual(schema);
    });

    // SQLite applies flag PRAGMAs while compiling them: refusing after prepare() would be too late.
    it.each([
      'PRAGMA foreign_keys = OFF',
      'EXPLAIN PRAGMA foreign_keys = OFF',
      'explain query plan pragma foreign_keys = 0',
      '; PRAGMA foreign_keys = OFF',
      '/* x */ PRAGMA ignore_check_constraints = ON',
    ])('refuses %j without applying it', async (sql) => {
      const refused = await client.call('execute', { sql });

      const fk = await client.call('execute', {
        sql: 'INSERT INTO ex_orders (account_id) VALUES (99)',
      });
      const check = await client.call('execute', {
        sql: 'UPDATE ex_accounts SET balance = -1 WHERE id = 1',
      });

      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toContain('[PRAGMA_NOT_ALLOWED]');
      expect(textOf(fk)).toContain('[SQLITE_CONSTRAINT_FOREIGNKEY]');
      expect(textOf(check)).toContain('[SQLITE_CONSTRAINT_CHECK]');
    });

    it.each([
      [
        'UNIQUE',
        "INSERT INTO ex_accounts (email) VALUES ('a@example.com')",
        'SQLITE_CONSTRAINT_UNIQUE',
      ],
      ['NOT NULL', 'INSERT INTO ex_accounts (email) VALUES (NULL)', 'SQLITE_CONSTRAINT_NOTNULL'],
      [
        'FOREIGN KEY',
        'INSERT INTO ex_orders (account_id) VALUES (99)',
        'SQLITE_CONSTRAINT_FOREIGNKEY',
      ],
      [
        'PRIMARY KEY',
        "INSERT INTO ex_accounts (id, email) VALUES (1, 'z@example.com')",
        'SQLITE_CONSTRAINT_PRIMARYKEY',
      ],
      ['CHECK', 'UPDATE ex_accounts SET balance = balance - 15', 'SQLITE_CONSTRAINT_CHECK'],
    ])(
      'answers a %s violation with the SQLite code and changes nothing',
      async (_case, sql, code) => {
        const before = accounts();

        const result = await client.call('execute', { sql });

        expect(result.isError).toBe(true);
        expect(textOf(result)).toContain(`[${code}]`);
        expect(accounts()).toEqual(before);
        expect(rows('SELECT count(*) AS n FROM ex_orders')).toEqual([{ n: 0 }]);
      },
    );

    it('rolls back a multi-row write that fails part-way', async () => {
      const before = accounts();

      const result = await client.call('execute', {
        sql: "INSERT INTO ex_accounts (email) VALUES ('new@example.com'), ('a@example.com')",
      });

      expect(textOf(result)).toContain('[SQLITE_CONSTRAINT_UNIQUE]');
      expect(accounts()).toEqual(before);
    });

    it('rolls back a change of more rows than expected_max_rows, saying how many', async () => {
      const before = accounts();

      const result = await client.call('execute', {
        sql: 'UPDATE ex_accounts SET balance = balance + 1',
        expected_max_rows: 1,
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[TOO_MANY_ROWS\]: .*would affect 2 rows/);
      expect(accounts()).toEqual(before);
    });

    it('applies a change of exactly expected_max_rows rows', async () => {
      const data = await client.ok('execute', {
        sql: 'UPDATE ex_accounts SET balance = balance + 1',
        expected_max_rows: 2,
      });

      expect(data).toMatchObject({ affected_rows: 2, dry_run: false });
      expect(accounts().map((account) => account.balance)).toEqual([11, 21]);
    });

    it('reports what a dry run would change, and changes nothing', async () => {
      const before = accounts();

      const deleted = await client.ok('execute', { sql: 'DELETE FROM ex_accounts', dry_run: true });
      const inserted = await client.ok('execute', {
        sql: "INSERT INTO ex_accounts (email) VALUES ('dry@example.com') RETURNING email",
        dry_run: true,
      });

      expect(deleted).toEqual({ affected_rows: 2, dry_run: true, last_insert_rowid: null });
      expect(inserted).toMatchObject({
        affected_rows: 1,
        dry_run: true,
        rows: [{ email: 'dry@example.com' }],
      });
      expect(accounts()).toEqual(before);
    });
  });

  describe('insert_rows', () => {
    const people = () => rows('SELECT * FROM ir_people ORDER BY id');

    beforeAll(async () => {
      await client.ok('apply_migration', {
        name: 'insert_rows_schema',
        sql: `
          CREATE TABLE ir_people (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            age INTEGER CHECK (age >= 0),
            active INTEGER NOT NULL DEFAULT 1,
            note TEXT
          );
          CREATE VIEW ir_names AS SELECT name FROM ir_people;
        `,
      });
    });
    beforeEach(async () => {
      await client.ok('execute', { sql: 'DELETE FROM ir_people' });
    });

    it('inserts rows with different columns in one call and counts them', async () => {
      const data = await client.ok('insert_rows', {
        table: 'ir_people',
        rows: [
          { name: 'ada', age: 36 },
          { name: 'grace', age: 85, active: false, note: null },
          { id: 10, name: 'linus' },
        ],
      });

      expect(data).toEqual({ affected_rows: 3, dry_run: false });
      expect(people()).toEqual([
        { id: 1, name: 'ada', age: 36, active: 1, note: null },
        { id: 2, name: 'grace', age: 85, active: 0, note: null },
        { id: 10, name: 'linus', age: null, active: 1, note: null },
      ]);
    });

    it('returns the inserted rows, defaults included, with returning', async () => {
      const data = await client.ok('insert_rows', {
        table: 'ir_people',
        rows: [{ name: 'ada' }, { name: 'grace', note: 'admiral' }],
        returning: true,
      });

      expect(data).toEqual({
        affected_rows: 2,
        dry_run: false,
        rows: [
          { id: 1, name: 'ada', age: null, active: 1, note: null },
          { id: 2, name: 'grace', age: null, active: 1, note: 'admiral' },
        ],
        truncated: false,
        truncation_reason: null,
      });
    });

    it('inserts 500 rows in one call', async () => {
      const data = await client.ok('insert_rows', {
        table: 'ir_people',
        rows: Array.from({ length: 500 }, (_, i) => ({ name: `person ${i}` })),
      });

      expect(data).toMatchObject({ affected_rows: 500 });
      expect(rows('SELECT count(*) AS n FROM ir_people')).toEqual([{ n: 500 }]);
    });

    it.each([
      ['501 rows', Array.from({ length: 501 }, (_, i) => ({ name: `person ${i}` }))],
      ['no row', []],
      ['a nested value', [{ name: 'ada', note: { nested: true } }]],
    ])('refuses %s in input validation', async (_case, batch) => {
      const result = await client.call('insert_rows', { table: 'ir_people', rows: batch });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/input validation/i);
      expect(textOf(result)).toContain('rows');
      expect(people()).toEqual([]);
    });

    it.each([
      ['an unknown column', 'nickname'],
      ['a column name carrying SQL', 'name) VALUES (1); DROP TABLE ir_people; --'],
      ['a quoted column name', '"name"'],
    ])('refuses %s with UNKNOWN_COLUMN, inserting none of the rows', async (_case, column) => {
      const result = await client.call('insert_rows', {
        table: 'ir_people',
        rows: [{ name: 'ada' }, { name: 'grace', [column]: 'x' }],
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[UNKNOWN_COLUMN\]: /);
      expect(textOf(result)).toContain(JSON.stringify(column));
      expect(people()).toEqual([]);
      expect(objectExists('ir_people')).toBe(true);
    });

    it.each([
      ['UNIQUE', { name: 'ada' }, 'SQLITE_CONSTRAINT_UNIQUE'],
      ['CHECK', { name: 'carol', age: -1 }, 'SQLITE_CONSTRAINT_CHECK'],
      ['NOT NULL', { name: null }, 'SQLITE_CONSTRAINT_NOTNULL'],
    ])('rolls back all five rows when row 3 breaks a %s constraint', async (_case, third, code) => {
      const result = await client.call('insert_rows', {
        table: 'ir_people',
        rows: [{ name: 'ada' }, { name: 'bob' }, third, { name: 'dan' }, { name: 'eve' }],
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(new RegExp(`^Error \\[${code}\\]: `));
      expect(people()).toEqual([]);
    });

    it('binds values: SQL in a value is stored verbatim', async () => {
      const value = "x'); DROP TABLE ir_people; --";

      await client.ok('insert_rows', {
        table: 'ir_people',
        rows: [{ name: value, note: '1 OR 1=1' }],
      });

      expect(people()).toEqual([{ id: 1, name: value, age: null, active: 1, note: '1 OR 1=1' }]);
    });

    it.each([
      ['a view', 'ir_names'],
      ['an unknown table', 'ir_nowhere'],
      ['a name differing in case only', 'IR_PEOPLE'],
      ['a table name carrying SQL', 'ir_people (name) VALUES (1); --'],
    ])('refuses %s with UNKNOWN_TABLE', async (_case, table) => {
      const state = databaseState();

      const result = await client.call('insert_rows', { table, rows: [{ name: 'ada' }] });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[UNKNOWN_TABLE\]: /);
      expect(state.now()).toEqual(state.before);
    });
  });

  describe.each(['update_rows', 'delete_rows'])('%s', (tool) => {
    /** The items of the row tools' specs, and a name that looks like SQL. */
    const ITEMS = [...FIVE_ITEMS, { id: 6, name: '1 OR 1=1', qty: 1, tag: 'odd' }];
    const table = `${tool === 'update_rows' ? 'ur' : 'dr'}_items`;
    const items = () => rows(`SELECT * FROM ${table} ORDER BY id`);
    /** The table after changing exactly these rows. */
    const changed = (ids: number[]) =>
      itemsAfter(ITEMS, tool === 'update_rows' ? 'update' : 'delete', ids);
    const change = (args: Record<string, unknown>) =>
      tool === 'update_rows' ? { table, set: { tag: 'hit' }, ...args } : { table, ...args };

    beforeAll(async () => {
      await client.ok('apply_migration', {
        name: `${table}_schema`,
        sql: `CREATE TABLE ${table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, tag TEXT)`,
      });
    });
    beforeEach(async () => {
      await client.ok('execute', { sql: `DELETE FROM ${table}` });
      await client.ok('insert_rows', { table, rows: ITEMS });
    });

    it.each([
      ['=', [{ column: 'qty', op: '=', value: 10 }], [2]],
      ['!= (NULL never matches)', [{ column: 'qty', op: '!=', value: 10 }], [1, 3, 5, 6]],
      ['<', [{ column: 'qty', op: '<', value: 5 }], [3, 6]],
      ['<=', [{ column: 'qty', op: '<=', value: 5 }], [1, 3, 6]],
      ['>', [{ column: 'qty', op: '>', value: 10 }], [5]],
      ['>=', [{ column: 'qty', op: '>=', value: 10 }], [2, 5]],
      ['in', [{ column: 'qty', op: 'in', value: [0, 20, 99] }], [3, 5]],
      ['like, case-insensitively', [{ column: 'name', op: 'like', value: 'B%' }], [2]],
      ['like with a wildcard inside', [{ column: 'name', op: 'like', value: '%an%' }], [2, 5]],
      ['is_null', [{ column: 'qty', op: 'is_null' }], [4]],
      ['is_null true', [{ column: 'tag', op: 'is_null', value: true }], [5]],
      ['is_null false', [{ column: 'qty', op: 'is_null', value: false }], [1, 2, 3, 5, 6]],
      [
        'several filters, all of which must hold',
        [
          { column: 'tag', op: '=', value: 'fruit' },
          { column: 'qty', op: '>=', value: 5 },
        ],
        [1, 2],
      ],
      [
        'a value that looks like SQL, compared verbatim',
        [{ column: 'name', op: '=', value: '1 OR 1=1' }],
        [6],
      ],
      ['a quote-breaking value', [{ column: 'name', op: '=', value: "x' OR '1'='1" }], []],
      ['SQL in a value for an INTEGER column', [{ column: 'id', op: '=', value: '1 OR 1=1' }], []],
      ['SQL in an "in" list', [{ column: 'id', op: 'in', value: ['1) OR (1=1'] }], []],
    ])('changes exactly the rows matching %s', async (_case, where, ids) => {
      const data = await client.ok(tool, change({ where, expected_max_rows: 6 }));

      expect(data).toEqual({ affected_rows: ids.length, dry_run: false, last_insert_rowid: null });
      expect(items()).toEqual(changed(ids));
    });

    it('refuses a change of more rows than expected_max_rows, saying how many, and changes nothing', async () => {
      const result = await client.call(
        tool,
        change({ where: [{ column: 'tag', op: '=', value: 'fruit' }], expected_max_rows: 2 }),
      );

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(
        /^Error \[TOO_MANY_ROWS\]: The change would affect 3 rows, more than expected_max_rows=2; nothing was changed\.$/,
      );
      expect(items()).toEqual(ITEMS);
    });

    it('makes a change of exactly expected_max_rows rows', async () => {
      const data = await client.ok(
        tool,
        change({ where: [{ column: 'tag', op: '=', value: 'fruit' }], expected_max_rows: 3 }),
      );

      expect(data).toMatchObject({ affected_rows: 3 });
      expect(items()).toEqual(changed([1, 2, 4]));
    });

    it('reports the count and a preview on a dry run, and changes nothing', async () => {
      const data = await client.ok(
        tool,
        change({
          where: [{ column: 'tag', op: '=', value: 'fruit' }],
          expected_max_rows: 3,
          dry_run: true,
        }),
      );

      const preview = changed([1, 2, 4]).filter((item) => [1, 2, 4].includes(item.id));
      expect(data).toEqual({
        affected_rows: 3,
        dry_run: true,
        rows:
          tool === 'update_rows' ? preview : ITEMS.filter((item) => [1, 2, 4].includes(item.id)),
        truncated: false,
        truncation_reason: null,
        last_insert_rowid: null,
      });
      expect(items()).toEqual(ITEMS);
    });

    it.each([
      ['an unknown column', [{ column: 'colour', op: '=', value: 'red' }], 'UNKNOWN_COLUMN'],
      [
        'a column name carrying SQL',
        [{ column: 'id" OR 1=1 --', op: '=', value: 1 }],
        'UNKNOWN_COLUMN',
      ],
      ['= null', [{ column: 'qty', op: '=', value: null }], 'INVALID_FILTER'],
      ['like with a number', [{ column: 'name', op: 'like', value: 5 }], 'INVALID_FILTER'],
      ['in with one value', [{ column: 'qty', op: 'in', value: 5 }], 'INVALID_FILTER'],
      ['is_null with a value', [{ column: 'qty', op: 'is_null', value: 'x' }], 'INVALID_FILTER'],
      ['< without a value', [{ column: 'qty', op: '<' }], 'INVALID_FILTER'],
    ])('refuses a filter with %s and changes nothing', async (_case, where, code) => {
      const result = await client.call(tool, change({ where, expected_max_rows: 6 }));

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(new RegExp(`^Error \\[${code}\\]: `));
      expect(items()).toEqual(ITEMS);
    });

    it.each([
      ['an empty where', { where: [], expected_max_rows: 6 }, 'where'],
      ['no where', { expected_max_rows: 6 }, 'where'],
      [
        'no expected_max_rows',
        { where: [{ column: 'id', op: '=', value: 1 }] },
        'expected_max_rows',
      ],
      [
        'an unknown operator',
        { where: [{ column: 'id', op: 'OR 1=1 --', value: 1 }], expected_max_rows: 6 },
        'op',
      ],
    ])('refuses %s in input validation', async (_case, args, field) => {
      const result = await client.call(tool, change(args));

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/input validation/i);
      expect(textOf(result)).toContain(field);
      expect(items()).toEqual(ITEMS);
    });

    it.each([
      ['an unknown table', 'nowhere_items'],
      ['a view', 'ir_names'],
      ['the audit log', 'audit_log'],
    ])('refuses %s with UNKNOWN_TABLE', async (_case, target) => {
      const state = databaseState();

      const result = await client.call(tool, {
        ...change({ where: [{ column: 'id', op: '>', value: 0 }], expected_max_rows: 1000 }),
        table: target,
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[UNKNOWN_TABLE\]: /);
      expect(state.now()).toEqual(state.before);
    });
  });

  describe('update_rows', () => {
    const items = () => rows('SELECT * FROM us_items ORDER BY id');

    beforeAll(async () => {
      await client.ok('apply_migration', {
        name: 'update_rows_schema',
        sql: 'CREATE TABLE us_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER)',
      });
    });
    beforeEach(async () => {
      await client.ok('execute', { sql: 'DELETE FROM us_items' });
      await client.ok('execute', {
        sql: "INSERT INTO us_items VALUES (1, 'apple', 5), (2, 'banana', 10)",
      });
    });

    it('stores SQL in a new value verbatim', async () => {
      const value = "'; DROP TABLE us_items; --";

      await client.ok('update_rows', {
        table: 'us_items',
        set: { name: value, qty: true },
        where: [{ column: 'id', op: '=', value: 1 }],
        expected_max_rows: 1,
      });

      expect(items()).toEqual([
        { id: 1, name: value, qty: 1 },
        { id: 2, name: 'banana', qty: 10 },
      ]);
    });

    it.each([
      ['an unknown column', { colour: 'red' }, 'UNKNOWN_COLUMN'],
      ['a column name carrying SQL', { 'qty = 1, name': 'x' }, 'UNKNOWN_COLUMN'],
      ['no column at all', {}, 'INVALID_VALUE'],
      ['a NOT NULL column set to null', { name: null }, 'SQLITE_CONSTRAINT_NOTNULL'],
    ])('refuses a set with %s and changes nothing', async (_case, set, code) => {
      const before = items();

      const result = await client.call('update_rows', {
        table: 'us_items',
        set,
        where: [{ column: 'id', op: '>', value: 0 }],
        expected_max_rows: 2,
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(new RegExp(`^Error \\[${code}\\]: `));
      expect(items()).toEqual(before);
    });
  });

  describe('apply_migration', () => {
    it('applies several statements, a trigger with a BEGIN ... END body among them, and records it', async () => {
      const sql = `
        CREATE TABLE am_orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL); -- the orders
        CREATE TABLE am_order_log (order_id INTEGER NOT NULL, note TEXT);
        CREATE INDEX am_orders_total ON am_orders (total);
        CREATE TRIGGER am_orders_logged AFTER INSERT ON am_orders
        BEGIN
          INSERT INTO am_order_log (order_id, note) VALUES (NEW.id, 'created; logged');
          INSERT INTO am_order_log (order_id, note) VALUES (NEW.id, CASE WHEN NEW.total > 100 THEN 'big' ELSE 'small' END);
        END;
      `;

      const data = await client.ok('apply_migration', { name: 'am_orders', sql });

      const checksum = createHash('sha256').update(sql).digest('hex');
      expect(data).toEqual({
        name: 'am_orders',
        applied: true,
        dry_run: false,
        statements: 4,
        checksum,
      });
      for (const name of ['am_orders', 'am_order_log', 'am_orders_total', 'am_orders_logged'])
        expect({ name, exists: objectExists(name) }).toEqual({ name, exists: true });
      expect(ledger('am_orders')).toEqual([
        {
          id: match.any(Number),
          name: 'am_orders',
          checksum,
          sql,
          appliedAt: match.stringMatching(/^\d{4}-\d\d-\d\dT/),
          appliedBy: SUBJECT,
          clientId: CLIENT_ID,
          status: 'applied',
          schemaBefore: match.stringMatching(/^[0-9a-f]{64}$/),
          schemaAfter: match.stringMatching(/^[0-9a-f]{64}$/),
          error: null,
          settledAt: match.stringMatching(/^\d{4}-\d\d-\d\dT/),
        },
      ]);

      await client.ok('execute', {
        sql: 'INSERT INTO am_orders (total) VALUES (?)',
        params: [250],
      });
      expect(rows('SELECT order_id, note FROM am_order_log ORDER BY rowid')).toEqual([
        { order_id: 1, note: 'created; logged' },
        { order_id: 1, note: 'big' },
      ]);
    });

    it('does nothing when the same name is applied again with the same SQL', async () => {
      const sql = 'CREATE TABLE am_again (a INTEGER)';
      const first = await client.ok('apply_migration', { name: 'am_again', sql });
      const recorded = ledger('am_again');

      const second = await client.ok('apply_migration', { name: 'am_again', sql });

      expect(second).toEqual({ ...first, applied: false });
      expect(ledger('am_again')).toEqual(recorded);
    });

    it('refuses the same name with different SQL', async () => {
      await client.ok('apply_migration', {
        name: 'am_conflict',
        sql: 'CREATE TABLE am_conflict_a (a INTEGER)',
      });

      const result = await client.call('apply_migration', {
        name: 'am_conflict',
        sql: 'CREATE TABLE am_conflict_b (b INTEGER)',
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain('[MIGRATION_CONFLICT]');
      expect(objectExists('am_conflict_b')).toBe(false);
      expect(ledger('am_conflict')).toEqual([
        match.objectContaining({ sql: 'CREATE TABLE am_conflict_a (a INTEGER)' }),
      ]);
    });

    it('rolls everything back when a statement in the middle fails', async () => {
      const result = await client.call('apply_migration', {
        name: 'am_broken',
        sql: 'CREATE TABLE am_first (a INTEGER); CREATE INDEX am_missing_idx ON am_missing (a); CREATE TABLE am_third (c INTEGER)',
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain('[SQLITE_ERROR]');
      expect(textOf(result)).toContain('am_missing');
      expect(objectExists('am_first')).toBe(false);
      expect(objectExists('am_third')).toBe(false);
      expect(ledger('am_broken')).toEqual([]);
    });

    it.each([
      ['INSERT', "INSERT INTO lt_items (label) VALUES ('x')", 'NOT_DDL'],
      ['SELECT', 'SELECT 1', 'NOT_DDL'],
      ['PRAGMA', 'PRAGMA foreign_keys = OFF', 'PRAGMA_NOT_ALLOWED'],
      ['BEGIN', 'BEGIN', 'BEGIN_NOT_ALLOWED'],
      ['ATTACH', "ATTACH DATABASE ':memory:' AS other", 'ATTACH_NOT_ALLOWED'],
    ])(
      'refuses a non-DDL statement (%s) and rolls back the DDL before it',
      async (keyword, statement, code) => {
        const name = `am_not_ddl_${keyword.toLowerCase()}`;
        const migrations = internalRows('SELECT * FROM scopedb_migrations ORDER BY id');

        const result = await client.call('apply_migration', {
          name,
          sql: `CREATE TABLE ${name} (a INTEGER); ${statement}`,
        });

        expect(result.isError).toBe(true);
        expect(textOf(result)).toContain(`[${code}]`);
        expect(objectExists(name)).toBe(false);
        expect(internalRows('SELECT * FROM scopedb_migrations ORDER BY id')).toEqual(migrations);
      },
    );

    it('checks a migration on a dry run and rolls it back, then applies it for real', async () => {
      const sql = 'CREATE TABLE am_dry (a INTEGER); CREATE INDEX am_dry_a ON am_dry (a)';
      const state = databaseState();

      const dry = await client.ok('apply_migration', { name: 'am_dry', sql, dry_run: true });

      expect(dry).toEqual({
        name: 'am_dry',
        applied: false,
        dry_run: true,
        statements: 2,
        checksum: sha256(sql),
      });
      expect(state.now()).toEqual(state.before);
      expect(objectExists('am_dry')).toBe(false);
      expect(ledger('am_dry')).toEqual([]);

      const real = await client.ok('apply_migration', { name: 'am_dry', sql });

      expect(real).toEqual({ ...dry, applied: true, dry_run: false });
      expect(objectExists('am_dry')).toBe(true);
      expect(objectExists('am_dry_a')).toBe(true);
      expect(ledger('am_dry')).toEqual([match.objectContaining({ checksum: sha256(sql), sql })]);
    });

    it('answers a dry run with the error the real run would meet', async () => {
      const result = await client.call('apply_migration', {
        name: 'am_dry_broken',
        sql: 'CREATE TABLE am_dry_broken (a INTEGER); CREATE INDEX am_dry_broken_b ON am_dry_broken (b)',
        dry_run: true,
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[SQLITE_ERROR\]: .*\bb\b/);
      expect(objectExists('am_dry_broken')).toBe(false);
      expect(ledger('am_dry_broken')).toEqual([]);
    });

    it('refuses an invalid name in input validation', async () => {
      const result = await client.call('apply_migration', {
        name: 'Bad-Name',
        sql: 'CREATE TABLE am_bad_name (a INTEGER)',
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/input validation/i);
      expect(textOf(result)).toContain('name');
      expect(objectExists('am_bad_name')).toBe(false);
      expect(ledger('Bad-Name')).toEqual([]);
    });
  });

  describe("ScopeDB's own tables", () => {
    beforeAll(async () => {
      await client.ok('apply_migration', {
        name: 'internal_tables_schema',
        sql: 'CREATE TABLE it_users (id INTEGER PRIMARY KEY, name TEXT)',
      });
    });

    it('are in the internal database, none in the application database', () => {
      const tables = (connection: Database.Database) =>
        connection
          .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
          .pluck()
          .all() as string[];

      expect(tables(internal)).toEqual(
        expect.arrayContaining(['audit_log', 'scopedb_migrations', 'scopedb_state']),
      );
      expect(tables(db).filter((name) => INTERNAL.includes(name))).toEqual([]);
      expect(
        rows("SELECT name FROM sqlite_schema WHERE name LIKE '%scopedb%' OR name LIKE '%audit%'"),
      ).toEqual([]);
    });

    let reserved = 0;
    it.each([
      ['a table named audit_log', 'CREATE TABLE audit_log (x)'],
      ['a view named scopedb_migrations', 'CREATE VIEW scopedb_migrations AS SELECT 1 AS x'],
      ['a reserved name in capitals', 'CREATE TABLE "SCOPEDB_INTERNAL_MIGRATIONS" (x)'],
    ])('apply_migration refuses %s: the names stay reserved', async (_case, sql) => {
      const name = `it_reserved_${++reserved}`;
      const state = databaseState();

      const result = await client.call('apply_migration', {
        name,
        sql: `CREATE TABLE ${name} (a); ${sql}`,
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[RESERVED_NAME\]: /);
      expect(state.now()).toEqual(state.before);
      expect(ledger(name)).toEqual([]);
    });

    it('keeps the ledger append-only in the internal database, but for settling a pending row once', () => {
      const writer = new Database(sut.internalDatabasePath);
      try {
        expect(() => writer.prepare('DELETE FROM scopedb_migrations').run()).toThrow(
          /scopedb_migrations keeps every row/,
        );
        expect(() =>
          writer.prepare("UPDATE scopedb_migrations SET status = 'failed'").run(),
        ).toThrow(/changes once, from pending/);
        writer
          .prepare(
            "INSERT INTO scopedb_migrations (name, checksum, sql, appliedAt, appliedBy, status) VALUES ('it_probe', 'x', 'x', 'x', 'x', 'pending')",
          )
          .run();
        const probe = (sql: string) => () => writer.prepare(sql).run();
        expect(probe("UPDATE scopedb_migrations SET sql = 'y' WHERE name = 'it_probe'")).toThrow(
          /changes once, from pending/,
        );
        expect(
          probe("UPDATE scopedb_migrations SET status = 'failed' WHERE name = 'it_probe'")(),
        ).toMatchObject({ changes: 1 });
        expect(
          probe("UPDATE scopedb_migrations SET status = 'applied' WHERE name = 'it_probe'"),
        ).toThrow(/changes once, from pending/);
        expect(() => writer.prepare('DELETE FROM audit_log').run()).toThrow(
          /audit_log is append-only/,
        );
        expect(() => writer.prepare("UPDATE audit_log SET outcome = 'x'").run()).toThrow(
          /audit_log is append-only/,
        );
      } finally {
        writer.close();
      }
    });

    it('leaves them out of list_tables and describe_table', async () => {
      const result = await client.call('describe_table', { table: 'audit_log' });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[UNKNOWN_TABLE\]: /);
    });
  });

  describe('audit', () => {
    it('records a successful call with who, which client, which tool and how long', async () => {
      const { result, records } = await client.audited('query', { sql: 'SELECT 1' });

      expect(result.isError).toBeFalsy();
      expect(records).toEqual([
        match.objectContaining({
          outcome: 'success',
          tool: 'query',
          subject: SUBJECT,
          subjectUnverified: 0,
          clientId: CLIENT_ID,
          tokenId: CASDOOR_CLAIMS.jti,
          grantedScopes: match.stringContaining('db:admin'),
          requiredScopes: 'db:query',
          sqlText: 'SELECT 1',
          paramsHash: null,
          rowCount: 1,
          durationMs: match.any(Number),
          reason: null,
        }),
      ]);
    });

    it('records a failed call as tool_error with the reason', async () => {
      const { result, records } = await client.audited('describe_table', {
        table: 'audit_nowhere',
      });

      expect(result.isError).toBe(true);
      expect(records).toEqual([
        match.objectContaining({
          outcome: 'tool_error',
          tool: 'describe_table',
          subject: SUBJECT,
          clientId: CLIENT_ID,
          durationMs: match.any(Number),
          reason: match.stringContaining('audit_nowhere'),
        }),
      ]);
    });

    it('records a database error of execute as tool_error', async () => {
      const { records } = await client.audited('execute', { sql: 'DELETE FROM audit_nowhere' });

      expect(records).toEqual([
        match.objectContaining({
          outcome: 'tool_error',
          tool: 'execute',
          requiredScopes: 'db:modify',
          sqlText: 'DELETE FROM audit_nowhere',
          rowCount: null,
          reason: match.stringContaining('no such table'),
        }),
      ]);
    });
  });
});
