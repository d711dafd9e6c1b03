import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { CASDOOR_CLAIMS, TestIssuer } from './support/issuer.js';
import { callTool, postMcp } from './support/mcp-http.js';
import { match } from './support/matchers.js';

interface ToolResult {
  isError?: boolean;
  content: { type: string; text: string }[];
  structuredContent?: Record<string, unknown>;
}

type Row = Record<string, unknown>;

const SUBJECT = CASDOOR_CLAIMS.sub as string;
const CLIENT_ID = CASDOOR_CLAIMS.azp as string;
const ALL_SCOPES = 'db:query db:modify db:admin';
const INTERNAL = ['audit_log', 'scopedb_migrations', 'scopedb_internal_migrations'];

describe('database tools', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let token: string;
  /** An independent read-only view of the app's SQLite file, to check what the tools did. */
  let db: Database.Database;
  let scratch: string;
  let requests = 0;

  async function call(
    name: string,
    args: Record<string, unknown>,
    requestId?: string,
  ): Promise<ToolResult> {
    const response = await postMcp(sut.mcpUrl, callTool(name, args), {
      token,
      headers: requestId ? { 'X-Request-Id': requestId } : undefined,
    });
    expect(response.status).toBe(200);
    const result = response.message?.result as ToolResult | undefined;
    if (!result) throw new Error(`no tools/call result: ${response.body}`);
    return result;
  }

  /** A successful call's structured result (fails the test with the tool's text otherwise). */
  async function ok(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const result = await call(name, args);
    expect({ isError: result.isError ?? false, text: textOf(result) }).toEqual({
      isError: false,
      text: match.any(String),
    });
    return result.structuredContent!;
  }

  const textOf = (result: ToolResult) => result.content.map((block) => block.text).join('\n');
  const rows = (sql: string, ...params: unknown[]) => db.prepare(sql).all(...params) as Row[];
  const objectExists = (name: string) =>
    rows(
      "SELECT 1 FROM sqlite_schema WHERE name = ? AND type IN ('table', 'view', 'index', 'trigger')",
      name,
    ).length === 1;
  const ledger = (name: string) => rows('SELECT * FROM scopedb_migrations WHERE name = ?', name);
  const nextRequestId = () => `tools-e2e-${process.pid}-${++requests}`;

  /** The audit row of one request; the interceptor writes it without delaying the response. */
  async function auditRowsOf(requestId: string): Promise<Row[]> {
    const deadline = Date.now() + 2000;
    for (;;) {
      const found = rows('SELECT * FROM audit_log WHERE requestId = ?', requestId);
      if (found.length > 0 || Date.now() > deadline) return found;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp({ AUTH_ISSUER: issuer.url });
    token = issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES });
    // The app created and migrated the file at start-up.
    db = new Database(sut.databasePath, { readonly: true, fileMustExist: true });
    scratch = mkdtempSync(join(tmpdir(), 'scopedb-tools-'));
  });
  afterAll(async () => {
    db.close();
    rmSync(scratch, { recursive: true, force: true });
    await sut.close();
    await issuer.close();
  });

  describe('list_tables', () => {
    beforeAll(async () => {
      await ok('apply_migration', {
        name: 'list_tables_schema',
        sql: 'CREATE TABLE lt_items (id INTEGER PRIMARY KEY, label TEXT); CREATE VIEW lt_labels AS SELECT label FROM lt_items',
      });
      await ok('execute', { sql: "INSERT INTO lt_items (label) VALUES ('a'), ('b'), ('c')" });
    });

    it('lists tables with their row counts and views without one', async () => {
      const data = await ok('list_tables', {});

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
  });

  describe('describe_table', () => {
    beforeAll(async () => {
      await ok('apply_migration', {
        name: 'describe_table_schema',
        sql: `
          CREATE TABLE dt_authors (
            id INTEGER NOT NULL PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            email VARCHAR(120),
            status TEXT NOT NULL DEFAULT 'active'
          );
          CREATE TABLE dt_books (
            id INTEGER NOT NULL PRIMARY KEY,
            author_id INTEGER NOT NULL REFERENCES dt_authors (id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            pages INTEGER DEFAULT 0
          );
          CREATE INDEX dt_books_title ON dt_books (title);
          CREATE UNIQUE INDEX dt_books_author_title ON dt_books (author_id, title);
          CREATE VIEW dt_titles AS SELECT b.title, a.name FROM dt_books b JOIN dt_authors a ON a.id = b.author_id;
        `,
      });
    });

    it('describes columns, primary key, indexes and outgoing foreign keys', async () => {
      const data = await ok('describe_table', { table: 'dt_books' });

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
      });
      expect(data.indexes).toHaveLength(2);
    });

    it('describes defaults, lengths, unique constraints and incoming foreign keys', async () => {
      const data = await ok('describe_table', { table: 'dt_authors' });

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
      });
    });

    it('describes a view', async () => {
      const data = await ok('describe_table', { table: 'dt_titles' });

      expect(data).toMatchObject({
        name: 'dt_titles',
        type: 'view',
        columns: [
          { name: 'title', type: 'text' },
          { name: 'name', type: 'text' },
        ],
        foreign_keys: [],
        referenced_by: [],
      });
    });

    it.each([
      ['an unknown name', 'no_such_table'],
      ['a name differing in case only', 'DT_BOOKS'],
      ['an injection attempt', 'dt_books"; DROP TABLE dt_books; --'],
    ])('answers %s with an error result naming it, and changes nothing', async (_case, table) => {
      const result = await call('describe_table', { table });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain('UNKNOWN_TABLE');
      expect(textOf(result)).toContain(JSON.stringify(table));
      expect(objectExists('dt_books')).toBe(true);
    });
  });

  describe('query', () => {
    const itemsBefore = () => rows('SELECT * FROM q_items ORDER BY id');

    beforeAll(async () => {
      await ok('apply_migration', {
        name: 'query_schema',
        sql: 'CREATE TABLE q_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL); CREATE TABLE q_numbers (n INTEGER NOT NULL)',
      });
      await ok('execute', {
        sql: 'INSERT INTO q_items (id, name, price) VALUES (1, ?, 1.5), (2, ?, 2.5), (3, ?, NULL)',
        params: ['apple', 'banana', 'cherry'],
      });
      await ok('execute', {
        sql: 'WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 250) INSERT INTO q_numbers (n) SELECT n FROM seq',
      });
    });

    it('binds positional parameters and lists the columns with their declared types', async () => {
      const data = await ok('query', {
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
      });
    });

    it('binds named parameters from an object', async () => {
      const data = await ok('query', {
        sql: 'SELECT name FROM q_items WHERE id = :id OR name = :name ORDER BY id',
        params: { id: 1, name: 'cherry' },
      });

      expect(data.rows).toEqual([['apple'], ['cherry']]);
    });

    it('treats a bound value as data, never as SQL', async () => {
      const data = await ok('query', {
        sql: 'SELECT count(*) AS n FROM q_items WHERE name = ?',
        params: ["x' OR '1'='1"],
      });

      expect(data.rows).toEqual([[0]]);
    });

    it('returns at most 100 rows by default, and says it truncated', async () => {
      const data = await ok('query', { sql: 'SELECT n FROM q_numbers ORDER BY n' });

      expect(data.row_count).toBe(100);
      expect(data.rows).toHaveLength(100);
      expect((data.rows as unknown[][]).at(-1)).toEqual([100]);
      expect(data.truncated).toBe(true);
    });

    it('returns at most max_rows rows', async () => {
      const data = await ok('query', { sql: 'SELECT n FROM q_numbers ORDER BY n', max_rows: 10 });

      expect(data).toMatchObject({ row_count: 10, truncated: true });
      expect(data.rows).toEqual(Array.from({ length: 10 }, (_, i) => [i + 1]));
    });

    it('is not truncated when the rows fit max_rows exactly', async () => {
      const data = await ok('query', { sql: 'SELECT n FROM q_numbers', max_rows: 250 });

      expect(data).toMatchObject({ row_count: 250, truncated: false });
    });

    it('refuses max_rows above 1000 in input validation', async () => {
      const result = await call('query', { sql: 'SELECT 1', max_rows: 1001 });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/input validation/i);
      expect(textOf(result)).toContain('max_rows');
    });

    describe('refuses anything but one read-only statement', () => {
      const target = () => join(scratch, 'copy.sqlite');

      it.each([
        ['stacked statements', () => 'SELECT 1; DROP TABLE q_items', 'MULTIPLE_STATEMENTS'],
        ['a write', () => 'DELETE FROM q_items', 'NOT_READ_ONLY'],
        ['switching query_only off', () => 'PRAGMA query_only = 0', 'PRAGMA_NOT_ALLOWED'],
        [
          'switching query_only off under EXPLAIN',
          () => 'EXPLAIN PRAGMA query_only = 0',
          'PRAGMA_NOT_ALLOWED',
        ],
        ['ATTACH DATABASE', () => `ATTACH DATABASE '${target()}' AS x`, 'NOT_READ_ONLY'],
        ['VACUUM INTO', () => `VACUUM INTO '${target()}'`, 'NOT_READ_ONLY'],
        ['DML inside a CTE', () => 'WITH x AS (SELECT 1) DELETE FROM q_items', 'NOT_READ_ONLY'],
        ['a comment before a write', () => '/* hi */ DELETE FROM q_items', 'NOT_READ_ONLY'],
        [
          'a write after a line comment',
          () => '-- SELECT\nUPDATE q_items SET price = 0',
          'NOT_READ_ONLY',
        ],
      ])('%s', async (_case, sql, code) => {
        const before = itemsBefore();

        const result = await call('query', { sql: sql() });

        expect(result.isError).toBe(true);
        expect(textOf(result)).toContain(`[${code}]`);
        expect(itemsBefore()).toEqual(before);
        expect(before).toHaveLength(3);
        expect(existsSync(target())).toBe(false);
      });
    });

    it('keeps its connection query_only after the PRAGMA attempts', async () => {
      for (const sql of [
        'PRAGMA query_only = 0',
        'EXPLAIN PRAGMA query_only = OFF',
        ';PRAGMA query_only = false',
      ])
        await call('query', { sql });

      const data = await ok('query', { sql: 'SELECT * FROM pragma_query_only' });

      expect(data.rows).toEqual([[1]]);
    });

    it('answers a bad statement with the SQLite message and code', async () => {
      const result = await call('query', { sql: 'SELEC name FROM q_items' });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toBe('Error [SQLITE_ERROR]: near "SELEC": syntax error');
    });

    it('answers an unknown table with the SQLite message', async () => {
      const result = await call('query', { sql: 'SELECT * FROM q_nowhere' });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain('no such table: q_nowhere');
    });
  });

  describe('execute', () => {
    const accounts = () => rows('SELECT id, email, balance FROM ex_accounts ORDER BY id');

    beforeAll(async () => {
      await ok('apply_migration', {
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
      await ok('execute', { sql: 'DELETE FROM ex_orders' });
      await ok('execute', { sql: 'DELETE FROM ex_accounts' });
      await ok('execute', {
        sql: "INSERT INTO ex_accounts (id, email, balance) VALUES (1, 'a@example.com', 10), (2, 'b@example.com', 20)",
      });
    });

    it('inserts with positional parameters and returns affected_rows and the rowid', async () => {
      const data = await ok('execute', {
        sql: 'INSERT INTO ex_accounts (email, balance) VALUES (?, ?)',
        params: ['c@example.com', 30],
      });

      expect(data).toEqual({ affected_rows: 1, last_insert_rowid: 3 });
      expect(accounts()).toContainEqual({ id: 3, email: 'c@example.com', balance: 30 });
    });

    it('updates with named parameters', async () => {
      const data = await ok('execute', {
        sql: 'UPDATE ex_accounts SET balance = balance + :amount WHERE balance >= :min',
        params: { amount: 5, min: 10 },
      });

      // An UPDATE inserts nothing, so it reports no rowid (not the connection's last insert).
      expect(data).toEqual({ affected_rows: 2, last_insert_rowid: null });
      expect(accounts().map((account) => account.balance)).toEqual([15, 25]);
    });

    it('deletes with parameters', async () => {
      const data = await ok('execute', {
        sql: 'DELETE FROM ex_accounts WHERE id = ?',
        params: [2],
      });

      expect(data).toEqual({ affected_rows: 1, last_insert_rowid: null });
      expect(accounts().map((account) => account.id)).toEqual([1]);
    });

    it('returns the rows of INSERT ... RETURNING', async () => {
      const data = await ok('execute', {
        sql: 'INSERT INTO ex_accounts (email) VALUES (?), (?) RETURNING id, email, balance',
        params: ['d@example.com', 'e@example.com'],
      });

      expect(data).toEqual({
        affected_rows: 2,
        last_insert_rowid: 4,
        returned: {
          columns: [
            { name: 'id', type: 'INTEGER' },
            { name: 'email', type: 'TEXT' },
            { name: 'balance', type: 'INTEGER' },
          ],
          rows: [
            [3, 'd@example.com', 0],
            [4, 'e@example.com', 0],
          ],
          row_count: 2,
          truncated: false,
        },
      });
      expect(accounts()).toHaveLength(4);
    });

    it.each([
      ['CREATE TABLE', 'CREATE TABLE ex_new (a)', 'NOT_A_WRITE'],
      ['DROP TABLE', 'DROP TABLE ex_orders', 'NOT_A_WRITE'],
      ['ALTER TABLE', 'ALTER TABLE ex_accounts ADD COLUMN note TEXT', 'NOT_A_WRITE'],
      [
        'stacked statements',
        "INSERT INTO ex_accounts (email) VALUES ('x@example.com'); DELETE FROM ex_accounts",
        'MULTIPLE_STATEMENTS',
      ],
      ['SELECT', 'SELECT * FROM ex_accounts', 'NOT_A_WRITE'],
      ['BEGIN', 'BEGIN', 'NOT_A_WRITE'],
      ['COMMIT', 'COMMIT', 'NOT_A_WRITE'],
      ['PRAGMA', 'PRAGMA foreign_keys = OFF', 'PRAGMA_NOT_ALLOWED'],
    ])('refuses %s and changes nothing', async (_case, sql, code) => {
      const before = accounts();
      const schema = rows('SELECT name, sql FROM sqlite_schema ORDER BY name');

      const result = await call('execute', { sql });

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
      const refused = await call('execute', { sql });

      const fk = await call('execute', { sql: 'INSERT INTO ex_orders (account_id) VALUES (99)' });
      const check = await call('execute', {
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

        const result = await call('execute', { sql });

        expect(result.isError).toBe(true);
        expect(textOf(result)).toContain(`[${code}]`);
        expect(accounts()).toEqual(before);
        expect(rows('SELECT count(*) AS n FROM ex_orders')).toEqual([{ n: 0 }]);
      },
    );

    it('rolls back a multi-row write that fails part-way', async () => {
      const before = accounts();

      const result = await call('execute', {
        sql: "INSERT INTO ex_accounts (email) VALUES ('new@example.com'), ('a@example.com')",
      });

      expect(textOf(result)).toContain('[SQLITE_CONSTRAINT_UNIQUE]');
      expect(accounts()).toEqual(before);
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

      const data = await ok('apply_migration', { name: 'am_orders', sql });

      const checksum = createHash('sha256').update(sql).digest('hex');
      expect(data).toEqual({ name: 'am_orders', applied: true, statements: 4, checksum });
      for (const name of ['am_orders', 'am_order_log', 'am_orders_total', 'am_orders_logged'])
        expect({ name, exists: objectExists(name) }).toEqual({ name, exists: true });
      expect(ledger('am_orders')).toEqual([
        {
          name: 'am_orders',
          checksum,
          sql,
          appliedAt: match.stringMatching(/^\d{4}-\d\d-\d\dT/),
          appliedBy: SUBJECT,
          clientId: CLIENT_ID,
        },
      ]);

      await ok('execute', { sql: 'INSERT INTO am_orders (total) VALUES (?)', params: [250] });
      expect(rows('SELECT order_id, note FROM am_order_log ORDER BY rowid')).toEqual([
        { order_id: 1, note: 'created; logged' },
        { order_id: 1, note: 'big' },
      ]);
    });

    it('does nothing when the same name is applied again with the same SQL', async () => {
      const sql = 'CREATE TABLE am_again (a INTEGER)';
      const first = await ok('apply_migration', { name: 'am_again', sql });
      const recorded = ledger('am_again');

      const second = await ok('apply_migration', { name: 'am_again', sql });

      expect(second).toEqual({ ...first, applied: false });
      expect(ledger('am_again')).toEqual(recorded);
    });

    it('refuses the same name with different SQL', async () => {
      await ok('apply_migration', {
        name: 'am_conflict',
        sql: 'CREATE TABLE am_conflict_a (a INTEGER)',
      });

      const result = await call('apply_migration', {
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
      const result = await call('apply_migration', {
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
      [
        'INSERT',
        "INSERT INTO scopedb_migrations (name, checksum, sql, appliedAt, appliedBy) VALUES ('x', 'x', 'x', 'x', 'x')",
        'NOT_DDL',
      ],
      ['SELECT', 'SELECT 1', 'NOT_DDL'],
      ['PRAGMA', 'PRAGMA foreign_keys = OFF', 'PRAGMA_NOT_ALLOWED'],
      ['BEGIN', 'BEGIN', 'NOT_DDL'],
      ['ATTACH', "ATTACH DATABASE ':memory:' AS other", 'NOT_DDL'],
    ])(
      'refuses a non-DDL statement (%s) and rolls back the DDL before it',
      async (keyword, statement, code) => {
        const name = `am_not_ddl_${keyword.toLowerCase()}`;
        const migrations = rows('SELECT name FROM scopedb_migrations ORDER BY name');

        const result = await call('apply_migration', {
          name,
          sql: `CREATE TABLE ${name} (a INTEGER); ${statement}`,
        });

        expect(result.isError).toBe(true);
        expect(textOf(result)).toContain(`[${code}]`);
        expect(objectExists(name)).toBe(false);
        expect(rows('SELECT name FROM scopedb_migrations ORDER BY name')).toEqual(migrations);
      },
    );

    it('refuses an invalid name in input validation', async () => {
      const result = await call('apply_migration', {
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
    const schemaOf = (table: string) =>
      rows('SELECT type, name, sql FROM sqlite_schema WHERE tbl_name = ? ORDER BY name', table);
    let auditSchema: Row[];
    let ledgerSchema: Row[];
    beforeAll(async () => {
      await ok('apply_migration', {
        name: 'internal_tables_schema',
        sql: 'CREATE TABLE it_users (id INTEGER PRIMARY KEY, name TEXT)',
      });
      await ok('query', { sql: 'SELECT 1' }); // leaves at least one audit row
      auditSchema = schemaOf('audit_log');
      ledgerSchema = schemaOf('scopedb_migrations');
    });

    const auditCount = () => rows('SELECT count(*) AS n FROM audit_log')[0].n as number;
    const ledgerCount = () => rows('SELECT count(*) AS n FROM scopedb_migrations')[0].n as number;

    it.each([
      ['a plain read', 'SELECT * FROM audit_log'],
      ['a read through a CTE', 'WITH a AS (SELECT subject FROM audit_log) SELECT count(*) FROM a'],
      ['a read in a subquery', 'SELECT (SELECT max(id) FROM audit_log) AS newest'],
      ['a join', 'SELECT u.name FROM it_users u JOIN audit_log a ON a.subject = u.name'],
    ])('query refuses %s of the audit log', async (_case, sql) => {
      const result = await call('query', { sql });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[INTERNAL_TABLE\]: /);
    });

    it.each([
      ['DELETE FROM audit_log'],
      ['DELETE FROM audit_log WHERE id > 0'],
      ["UPDATE audit_log SET outcome = 'success'"],
      ["INSERT INTO audit_log (time, outcome) VALUES ('2026-01-01T00:00:00Z', 'success')"],
      ['DELETE FROM scopedb_migrations'],
      ["UPDATE scopedb_migrations SET checksum = 'x'"],
      ['DELETE FROM scopedb_internal_migrations'],
      ['WITH doomed AS (SELECT id FROM audit_log) DELETE FROM audit_log WHERE id IN doomed'],
    ])('execute refuses %s and changes nothing', async (sql) => {
      const [audit, ledger] = [auditCount(), ledgerCount()];

      const result = await call('execute', { sql });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[INTERNAL_TABLE\]: /);
      expect(ledgerCount()).toBe(ledger);
      expect(auditCount()).toBeGreaterThanOrEqual(audit); // the refused call is itself audited
      expect(
        rows("SELECT count(*) AS n FROM audit_log WHERE time = '2026-01-01T00:00:00Z'")[0].n,
      ).toBe(0);
    });

    it.each([
      ['drop_audit', 'DROP TABLE audit_log'],
      ['alter_audit', 'ALTER TABLE audit_log ADD COLUMN extra TEXT'],
      ['drop_guard', 'DROP TRIGGER audit_log_no_delete'],
      ['index_audit', 'CREATE INDEX audit_extra ON audit_log (reason)'],
      ['drop_ledger', 'DROP TABLE scopedb_migrations'],
      [
        'trigger_into_audit',
        "CREATE TRIGGER it_forge AFTER INSERT ON it_users BEGIN INSERT INTO audit_log (time, outcome) VALUES ('x', 'success'); END",
      ],
      ['view_on_audit', 'CREATE VIEW it_audit AS SELECT * FROM "audit_log"'],
    ])('apply_migration refuses %s and rolls back', async (name, sql) => {
      const result = await call('apply_migration', {
        name,
        sql: `CREATE TABLE ${name}_first (a INTEGER); ${sql}`,
      });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[INTERNAL_TABLE\]: /);
      expect(schemaOf('audit_log')).toEqual(auditSchema);
      expect(schemaOf('scopedb_migrations')).toEqual(ledgerSchema);
      expect(objectExists(`${name}_first`)).toBe(false);
      expect(ledger(name)).toEqual([]);
    });

    it('is append-only in the database itself, whatever connection tries', () => {
      const writer = new Database(sut.databasePath);
      try {
        expect(() => writer.prepare('DELETE FROM audit_log').run()).toThrow(
          /audit_log is append-only/,
        );
        expect(() => writer.prepare("UPDATE audit_log SET outcome = 'x'").run()).toThrow(
          /audit_log is append-only/,
        );
        expect(() => writer.prepare('DELETE FROM scopedb_migrations').run()).toThrow(
          /scopedb_migrations is append-only/,
        );
      } finally {
        writer.close();
      }
    });

    it('leaves them out of list_tables and describe_table', async () => {
      const result = await call('describe_table', { table: 'audit_log' });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[UNKNOWN_TABLE\]: /);
    });
  });

  describe('audit', () => {
    it('records a successful call with who, which client, which tool and how long', async () => {
      const requestId = nextRequestId();

      const result = await call('query', { sql: 'SELECT 1' }, requestId);

      expect(result.isError).toBeFalsy();
      expect(await auditRowsOf(requestId)).toEqual([
        match.objectContaining({
          outcome: 'success',
          tool: 'query',
          subject: SUBJECT,
          subjectUnverified: 0,
          clientId: CLIENT_ID,
          tokenId: CASDOOR_CLAIMS.jti,
          grantedScopes: match.stringContaining('db:admin'),
          durationMs: match.any(Number),
          reason: null,
        }),
      ]);
    });

    it('records a failed call as tool_error with the reason', async () => {
      const requestId = nextRequestId();

      const result = await call('describe_table', { table: 'audit_nowhere' }, requestId);

      expect(result.isError).toBe(true);
      expect(await auditRowsOf(requestId)).toEqual([
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
      const requestId = nextRequestId();

      await call('execute', { sql: 'DELETE FROM audit_nowhere' }, requestId);

      expect(await auditRowsOf(requestId)).toEqual([
        match.objectContaining({
          outcome: 'tool_error',
          tool: 'execute',
          reason: match.stringContaining('no such table'),
        }),
      ]);
    });
  });
});
