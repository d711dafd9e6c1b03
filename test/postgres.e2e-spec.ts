import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { createScopedbPostgres, type ScopedbPostgres } from './support/postgres.js';
import { type PostgresApp, startPostgresApp } from './support/postgres-app.js';
import { serverClient, textOf, type ToolClient } from './support/tool-client.js';

// The PostgreSQL engine end to end: a real server on the machine's PostgreSQL, with the three
// roles README "PostgreSQL" recommends; every check of the database's state is made as superuser.

const SETUP = `
  CREATE TABLE items (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    price numeric(10, 2) NOT NULL CHECK (price >= 0),
    stock bigint NOT NULL DEFAULT 0,
    added timestamptz NOT NULL DEFAULT '2024-05-01 12:00:00.123456+00',
    photo bytea,
    tags text[],
    extra jsonb
  );
  CREATE SCHEMA sales;
  CREATE TABLE sales.orders (
    id serial PRIMARY KEY,
    item_id integer NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    quantity integer NOT NULL
  );
  CREATE INDEX orders_item ON sales.orders (item_id);
  CREATE VIEW cheap_items AS SELECT id, name FROM items WHERE price < 10;
`;

describe('PostgreSQL as the application database', () => {
  let pg: PostgresApp;
  let issuer: TestIssuer;
  let postgres: ScopedbPostgres;
  let sut: TestApp;
  let client: ToolClient;

  const admin = <T extends Record<string, unknown>>(sql: string, params?: unknown[]) =>
    postgres.rows<T>(sql, params);

  const refused = (name: string, args: Record<string, unknown>) => client.refused(name, args);

  const running = () => postgres.running();

  beforeAll(async () => {
    pg = await startPostgresApp('scopedb_pg', SETUP);
    ({ issuer, postgres, sut, client } = pg);
    await client.ok('insert_rows', {
      table: 'items',
      rows: [
        { name: 'pen', price: 1.5, stock: '9007199254740993', tags: '{a,b}', extra: '{"k":[1,2]}' },
        { name: 'book', price: 12, photo: null },
        { name: 'lamp', price: 30.25 },
      ],
    });
    await admin("UPDATE items SET photo = '\\xdeadbeef' WHERE name = 'pen'");
    await admin(
      `CREATE TABLE big AS SELECT n AS id, repeat('x', 100) AS filler FROM generate_series(1, 200000) AS n`,
    );
    await admin(`ALTER TABLE big OWNER TO ${postgres.roles.tools}`);
    await admin(`GRANT SELECT ON big TO ${postgres.roles.reader}`);
    await client.ok('execute', {
      sql: 'INSERT INTO sales.orders (item_id, quantity) SELECT id, 2 FROM items',
    });
    await admin('ANALYZE');
  });

  afterAll(() => pg?.close());

  describe('every tool', () => {
    it('lists tables of every schema the reader may read, by the names the tools accept', async () => {
      const data = await client.ok('list_tables', {});
      expect(data.tables).toEqual([
        { name: 'big', type: 'table', row_estimate: 200000 },
        { name: 'cheap_items', type: 'view', row_estimate: null },
        { name: 'items', type: 'table', row_estimate: 3 },
        { name: 'sales.orders', type: 'table', row_estimate: 3 },
      ]);
      expect(await client.ok('list_tables', { pattern: 'SALES.%' })).toEqual({
        tables: [
          { name: 'sales.orders', type: 'table', row_estimate: expect.any(Number) as number },
        ],
      });
    });

    it('describes a table in another schema, with its keys and indexes', async () => {
      const data = await client.ok('describe_table', { table: 'sales.orders' });
      expect(data).toMatchObject({
        name: 'sales.orders',
        type: 'table',
        primary_key: ['id'],
        foreign_keys: [
          {
            columns: ['item_id'],
            referenced_table: 'items',
            referenced_columns: ['id'],
            on_delete: 'CASCADE',
          },
        ],
      });
      expect(data.indexes).toEqual(
        expect.arrayContaining([{ name: 'orders_item', columns: ['item_id'], unique: false }]),
      );
      const items = await client.ok('describe_table', { table: 'items' });
      expect(items.referenced_by).toEqual([
        expect.objectContaining({ table: 'sales.orders', columns: ['item_id'] }),
      ]);
      expect(items.checks).toEqual([
        expect.objectContaining({ expression: expect.stringContaining('price') as string }),
      ]);
      expect(await refused('describe_table', { table: 'nope' })).toContain('UNKNOWN_TABLE');
    });

    it('answers a query with bound parameters and truthful types', async () => {
      const data = await client.ok('query', {
        sql: 'SELECT name, price, stock, added, photo, tags, extra FROM items WHERE name = $1',
        params: ['pen'],
      });
      expect(data.rows).toEqual([
        [
          'pen',
          '1.50',
          '9007199254740993',
          '2024-05-01T12:00:00.123456+00:00',
          'base64:3q2+7w==',
          ['a', 'b'],
          { k: [1, 2] },
        ],
      ]);
      expect((data.columns as { type: string }[]).map((c) => c.type)).toEqual([
        'text',
        'numeric',
        'int8',
        'timestamptz',
        'bytea',
        'text[]',
        'jsonb',
      ]);
    });

    it('explains a query without running it', async () => {
      const data = await client.ok('explain_query', {
        sql: 'SELECT * FROM sales.orders WHERE item_id = $1',
        params: [1],
      });
      expect((data.plan as { detail: string }[]).map((step) => step.detail).join('\n')).toMatch(
        /orders/,
      );
    });

    it('updates and deletes rows by filters, within expected_max_rows, and dry-runs', async () => {
      expect(
        await client.ok('update_rows', {
          table: 'items',
          set: { stock: 5 },
          where: [{ column: 'name', op: 'in', value: ['book', 'lamp'] }],
          expected_max_rows: 2,
        }),
      ).toMatchObject({ affected_rows: 2, dry_run: false });
      expect(
        await refused('update_rows', {
          table: 'items',
          set: { stock: 0 },
          where: [{ column: 'price', op: '>', value: 0 }],
          expected_max_rows: 1,
        }),
      ).toContain('TOO_MANY_ROWS');
      expect(await admin('SELECT count(*)::int AS n FROM items WHERE stock = 0')).toEqual([
        { n: 0 },
      ]);
      const dry = await client.ok('delete_rows', {
        table: 'sales.orders',
        where: [{ column: 'quantity', op: '=', value: 2 }],
        expected_max_rows: 10,
        dry_run: true,
      });
      expect(dry).toMatchObject({ affected_rows: 3, dry_run: true });
      expect(await admin('SELECT count(*)::int AS n FROM sales.orders')).toEqual([{ n: 3 }]);
      expect(
        await refused('delete_rows', {
          table: 'items',
          where: [{ column: 'no_such_column', op: '=', value: 1 }],
          expected_max_rows: 1,
        }),
      ).toContain('UNKNOWN_COLUMN');
    });

    it('runs one write statement with RETURNING; refuses anything else and changes nothing', async () => {
      const data = await client.ok('execute', {
        sql: 'UPDATE items SET stock = stock + $1 WHERE name = $2 RETURNING name, stock',
        params: [1, 'book'],
      });
      expect(data).toMatchObject({ affected_rows: 1, rows: [{ name: 'book', stock: '6' }] });
      expect(await refused('execute', { sql: 'SELECT * FROM items' })).toContain('NOT_A_WRITE');
      expect(await refused('execute', { sql: 'DROP TABLE sales.orders' })).toMatch(
        /NOT_A_WRITE|PERMISSION/,
      );
      expect(await admin("SELECT to_regclass('sales.orders') IS NOT NULL AS present")).toEqual([
        { present: true },
      ]);
    });

    it('applies a migration once, records it once, and refuses the same name with other SQL', async () => {
      const sql =
        'CREATE TABLE notes (id serial PRIMARY KEY, body text); CREATE INDEX notes_body ON notes (body)';
      expect(
        await client.ok('apply_migration', { name: 'notes', sql, dry_run: true }),
      ).toMatchObject({
        applied: false,
        dry_run: true,
        statements: 2,
      });
      expect(await admin("SELECT to_regclass('public.notes') AS t")).toEqual([{ t: null }]);
      expect(await client.ok('apply_migration', { name: 'notes', sql })).toMatchObject({
        applied: true,
      });
      expect(await client.ok('apply_migration', { name: 'notes', sql })).toMatchObject({
        applied: false,
      });
      expect(await refused('apply_migration', { name: 'notes', sql: `${sql};` })).toContain(
        'MIGRATION_CONFLICT',
      );
      const { migrations } = await client.ok<{ migrations: { name: string; status: string }[] }>(
        'list_migrations',
      );
      expect(migrations.filter((m) => m.name === 'notes')).toEqual([
        expect.objectContaining({ status: 'applied' }),
      ]);
    });

    it('applies a failing migration not at all, and records the failure', async () => {
      const text = await refused('apply_migration', {
        name: 'half',
        sql: 'CREATE TABLE half_a (id int); CREATE TABLE items (id int)',
      });
      expect(text).toContain('already exists');
      expect(await admin("SELECT to_regclass('public.half_a') AS t")).toEqual([{ t: null }]);
      expect(
        await admin(`SELECT status FROM scopedb.scopedb_migrations WHERE name = 'half'`),
      ).toEqual([{ status: 'failed' }]);
    });

    it('refuses transaction control inside a migration before anything runs', async () => {
      const text = await refused('apply_migration', {
        name: 'sneaky',
        sql: 'CREATE TABLE sneaky_a (id int); COMMIT; CREATE TABLE sneaky_b (id int)',
      });
      expect(text).toContain('TRANSACTION_CONTROL');
      expect(await admin("SELECT to_regclass('public.sneaky_a') AS t")).toEqual([{ t: null }]);
    });
  });

  describe('read-only, by the database', () => {
    it('runs one statement only: the rest of a stacked query never runs', async () => {
      await refused('query', { sql: 'SELECT 1; COMMIT; DROP TABLE sales.orders' });
      expect(await admin("SELECT to_regclass('sales.orders') IS NOT NULL AS present")).toEqual([
        { present: true },
      ]);
    });

    it.each([
      ["INSERT INTO items (name, price) VALUES ('x', 1)"],
      ['WITH gone AS (DELETE FROM items RETURNING 1) SELECT count(*) FROM gone'],
      ["SELECT nextval('items_id_seq')"],
      ['CREATE TABLE t_read (id int)'],
    ])('refuses a write through query: %s', async (sql) => {
      const text = await refused('query', { sql });
      expect(text).toMatch(/NOT_READ_ONLY|PERMISSION_DENIED/);
      expect(await admin('SELECT count(*)::int AS n FROM items')).toEqual([{ n: 3 }]);
    });

    it.each([
      ['a value built in the database', "SELECT repeat('x', 50000000) AS v"],
      ['a notice', "DO $$ BEGIN RAISE NOTICE '%', repeat('x', 50000000); END $$"],
    ])('refuses %s larger than a row may be, before receiving it', async (_label, sql) => {
      expect(await refused('query', { sql })).toContain('RESULT_TOO_LARGE');
      expect(await running()).toEqual([]);
      expect(
        await client.ok('query', { sql: "SELECT length(repeat('x', 1000000)) AS n" }),
      ).toMatchObject({ rows: [[1000000]] });
    });

    // Row 12 divides by zero: the answer shows that no more than max_rows + 1 rows were computed.
    it.each([
      [
        'a streamed series',
        'SELECT n, 1 / (n - 12) AS trap FROM (SELECT generate_series(1, 100000000) AS n) AS s',
      ],
      ['a table scan', 'SELECT id, 1 / (id - 12) AS trap FROM big'],
    ])('cuts %s at max_rows without computing the rest', async (_label, sql) => {
      const data = await client.ok('query', { sql, max_rows: 10 });
      expect(data).toMatchObject({ row_count: 10, truncated: true, truncation_reason: 'max_rows' });
      expect(await running()).toEqual([]);
      expect(await refused('query', { sql, max_rows: 12 })).toContain('division by zero');
    });

    // Past the first batch (20 rows), a read runs again in a transaction of its own, in batches.
    it('reads past the first batch, still no further than max_rows + 1', async () => {
      const sql = 'SELECT id, 1 / (id - 52) AS trap FROM big';
      const data = await client.ok('query', { sql, max_rows: 50 });
      expect(data).toMatchObject({ row_count: 50, truncated: true, truncation_reason: 'max_rows' });
      expect((data.rows as number[][]).map((row) => row[0])).toEqual(
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      expect(await refused('query', { sql, max_rows: 52 })).toContain('division by zero');
      expect(await running()).toEqual([]);
    });
  });

  describe('no session state survives a call', () => {
    // Two connections per role and sequential calls: each call below meets a connection an
    // earlier one used.
    const settingNow = async () => {
      const values = new Set<unknown>();
      for (let i = 0; i < 4; i++) {
        const data = await client.ok('query', {
          sql: "SELECT current_setting('scopedb.leak', true) AS v, current_user AS u",
        });
        values.add((data.rows as unknown[][])[0][0]);
      }
      return [...values];
    };

    it.each([
      [
        'set_config(..., false) in a read',
        "SELECT set_config('scopedb.leak', 'yes', false)",
        'query',
      ],
      ['SET SESSION in a migration', "SET SESSION scopedb.leak = 'yes'", 'migration'],
    ])('%s', async (_label, sql, how) => {
      if (how === 'query') await client.call('query', { sql });
      else await client.call('apply_migration', { name: `leak_${Date.now()}`, sql });
      // A custom setting, once defined on a connection, reads as '' after RESET ALL.
      expect((await settingNow()).filter((value) => value !== null && value !== '')).toEqual([]);
    });

    it('releases advisory locks a call took', async () => {
      await client.call('query', { sql: 'SELECT pg_advisory_lock(4242)' });
      await client.call('execute', {
        sql: "UPDATE items SET stock = stock WHERE name = 'pen' AND pg_advisory_lock(4243) IS NOT NULL",
      });
      expect(await postgres.advisoryLocks()).toEqual([]);
    });

    it.each([
      ['PREPARE leak AS SELECT 1'],
      ['DECLARE leak CURSOR WITH HOLD FOR SELECT 1'],
      ['LISTEN leak'],
    ])('does not keep %s', async (sql) => {
      await client.call('query', { sql });
      await client.call('execute', { sql });
      const data = await client.ok('query', {
        sql: "SELECT (SELECT count(*) FROM pg_prepared_statements WHERE name = 'leak') + (SELECT count(*) FROM pg_cursors WHERE name = 'leak') + (SELECT count(*) FROM pg_listening_channels() c WHERE c = 'leak') AS n",
      });
      expect(data.rows).toEqual([['0']]);
    });
  });

  describe('fair shares of the connections', () => {
    it("answers another principal's read while one principal's slow reads hold what they may", async () => {
      const settled: string[] = [];
      const slow = serverClient(sut.baseUrl, issuer, 'db:query', {
        claims: { sub: 'hog' },
        settled,
      });
      const other = serverClient(sut.baseUrl, issuer, 'db:query', {
        claims: { sub: 'other' },
        settled,
      });
      const hogs = [1, 2, 3].map((i) =>
        slow.timed(`hog ${i}`, 'query', { sql: 'SELECT pg_sleep(1.5)' }),
      );
      // Two connections: the hog holds one at most, so the other principal never waits for it.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await other.timed('other', 'query', { sql: 'SELECT 1' });
      await Promise.all(hogs);
      expect(settled[0]).toBe('other');
      expect(settled.slice(1).sort()).toEqual(['hog 1', 'hog 2', 'hog 3']);
    });
  });

  describe('deadlines stop the database', () => {
    it('cancels pg_sleep at timeout_ms', async () => {
      const text = await refused('query', { sql: 'SELECT pg_sleep(600)', timeout_ms: 300 });
      expect(text).toContain('TIMEOUT');
      expect(await running()).toEqual([]);
    });

    it('cancels a runaway cross join', async () => {
      const text = await refused('query', {
        sql: 'SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b',
        timeout_ms: 300,
      });
      expect(text).toContain('TIMEOUT');
      expect(await running()).toEqual([]);
    });

    it('ends a statement that catches the cancel of its deadline', async () => {
      const sql = `DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(1); EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$`;
      expect(await refused('query', { sql, timeout_ms: 300 })).toContain('TIMEOUT');
      // pg_terminate_backend waited for the backend to end; nothing of the tools' roles runs.
      expect(await running()).toEqual([]);
      expect(await client.ok('query', { sql: 'SELECT 1 AS one' })).toMatchObject({ rows: [[1]] });
    });

    it('cuts a read and a write that wait for a lock', async () => {
      await postgres.admin.query('BEGIN');
      try {
        await postgres.admin.query('LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
        expect(
          await refused('query', { sql: 'SELECT count(*) FROM items', timeout_ms: 300 }),
        ).toContain('TIMEOUT');
        expect(
          await refused('execute', { sql: "UPDATE items SET stock = 1 WHERE name = 'pen'" }),
        ).toContain('TIMEOUT');
      } finally {
        await postgres.admin.query('ROLLBACK');
      }
      expect(await running()).toEqual([]);
    });
  });

  describe('names that could mean two tables', () => {
    it('refuses a name a decoy table shares with schema.name, and writes nothing', async () => {
      await client.ok('apply_migration', {
        name: 'decoy',
        sql: 'CREATE TABLE public."sales.orders" (id int, item_id int, quantity int)',
      });
      try {
        const before = await admin('SELECT count(*)::int AS n FROM sales.orders');
        for (const [tool, args] of [
          ['insert_rows', { table: 'sales.orders', rows: [{ item_id: 1, quantity: 9 }] }],
          [
            'update_rows',
            {
              table: 'sales.orders',
              set: { quantity: 9 },
              where: [{ column: 'quantity', op: '=', value: 2 }],
              expected_max_rows: 10,
            },
          ],
          ['describe_table', { table: 'sales.orders' }],
        ] as const)
          expect(await refused(tool, args)).toContain('AMBIGUOUS_NAME');
        expect(await admin('SELECT count(*)::int AS n FROM sales.orders')).toEqual(before);
        expect(await admin('SELECT count(*)::int AS n FROM public."sales.orders"')).toEqual([
          { n: 0 },
        ]);
      } finally {
        await admin('DROP TABLE public."sales.orders"');
      }
    });
  });

  describe("ScopeDB's own tables are out of reach by privilege", () => {
    it('does not list them', async () => {
      const data = await client.ok('list_tables', { pattern: '%scopedb%' });
      expect(data.tables).toEqual([]);
      expect(await refused('describe_table', { table: 'scopedb.audit_log' })).toContain(
        'UNKNOWN_TABLE',
      );
    });

    it.each([
      ['a plain read', 'SELECT count(*) FROM scopedb.audit_log'],
      ['a subquery', 'SELECT (SELECT max(id) FROM scopedb.audit_log) AS m'],
      ['the ledger', 'SELECT * FROM scopedb.scopedb_migrations'],
    ])('refuses %s through query', async (_label, sql) => {
      expect(await refused('query', { sql })).toContain('PERMISSION_DENIED');
    });

    it.each([
      [
        'RETURNING',
        "UPDATE items SET stock = stock WHERE name = 'pen' RETURNING (SELECT count(*) FROM scopedb.audit_log)",
      ],
      ['a copy', 'INSERT INTO items (name, price) SELECT principal, 0 FROM scopedb.audit_log'],
      ['a forged record', "INSERT INTO scopedb.audit_log (outcome) VALUES ('success')"],
    ])('refuses %s through execute', async (_label, sql) => {
      expect(await refused('execute', { sql })).toContain('PERMISSION_DENIED');
    });

    it.each([
      ['a view', 'CREATE VIEW peek AS SELECT * FROM scopedb.audit_log'],
      [
        'a function',
        'CREATE FUNCTION peek() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM scopedb.audit_log $$',
      ],
      [
        'a trigger',
        `CREATE FUNCTION forge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO scopedb.audit_log (outcome) VALUES ('success'); RETURN NEW; END $$;
                     CREATE TRIGGER forge AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION forge()`,
      ],
    ])('refuses %s over them, whether at creation or when it runs', async (label, sql) => {
      const name = `peek_${label.replace(/\W/g, '_')}`;
      const created = await client.call('apply_migration', { name, sql });
      if (!created.isError) {
        const attempts = [
          await client.call('query', {
            sql: label === 'a view' ? 'SELECT * FROM peek' : 'SELECT peek()',
          }),
          await client.call('insert_rows', {
            table: 'items',
            rows: [{ name: `via ${name}`, price: 1 }],
          }),
        ];
        expect(attempts.some((r) => r.isError && textOf(r).includes('PERMISSION_DENIED'))).toBe(
          true,
        );
      } else expect(textOf(created)).toContain('PERMISSION_DENIED');
      expect(
        await admin(
          "SELECT count(*)::int AS n FROM scopedb.audit_log WHERE subject IS NULL AND outcome = 'success'",
        ),
      ).toEqual([{ n: 0 }]);
    });

    it('audits every call above in the shared store, out of the tools reach', async () => {
      const rows = await admin<{ n: number }>(
        "SELECT count(*)::int AS n FROM scopedb.audit_log WHERE tool = 'query'",
      );
      expect(rows[0].n).toBeGreaterThan(10);
    });
  });
});

describe('PostgreSQL start-up checks', () => {
  let issuer: TestIssuer;
  let postgres: ScopedbPostgres;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    postgres = await createScopedbPostgres('scopedb_pgstart');
  });
  afterAll(async () => {
    await postgres?.drop();
    await issuer?.close();
  });

  const start = (env: Record<string, string>) =>
    startTestApp({
      AUTH_ISSUER: issuer.url,
      INTERNAL_DATABASE_URL: postgres.urls.internal,
      ...env,
    });

  it("refuses a superuser; allowed, only where it cannot reach ScopeDB's own tables", async () => {
    const superuser = new URL(postgres.database.url);
    superuser.username = 'postgres';
    await expect(start({ DATABASE_URL: superuser.toString() })).rejects.toThrow(
      /role postgres of DATABASE_URL is a superuser.*DATABASE_ALLOW_PRIVILEGED_ROLE/,
    );
    // A superuser acts as every role: beside ScopeDB's schema it is refused even when allowed.
    await expect(
      start({ DATABASE_URL: superuser.toString(), DATABASE_ALLOW_PRIVILEGED_ROLE: 'true' }),
    ).rejects.toThrow(/can act as sdb_internal_/);
    const dir = mkdtempSync(join(tmpdir(), 'scopedb-pg-'));
    try {
      const allowed = await start({
        DATABASE_URL: superuser.toString(),
        DATABASE_ALLOW_PRIVILEGED_ROLE: 'true',
        INTERNAL_DATABASE_URL: `sqlite:${join(dir, 'internal.sqlite')}`,
      });
      await allowed.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a role with BYPASSRLS', async () => {
    await postgres.admin.query(`ALTER ROLE ${postgres.roles.reader} BYPASSRLS`);
    try {
      await expect(
        start({ DATABASE_URL: postgres.urls.tools, DATABASE_READER_URL: postgres.urls.reader }),
      ).rejects.toThrow(/DATABASE_READER_URL has BYPASSRLS/);
    } finally {
      await postgres.admin.query(`ALTER ROLE ${postgres.roles.reader} NOBYPASSRLS`);
    }
  });

  it("refuses a tools role that could reach ScopeDB's schema", async () => {
    // The first start creates the schema; then a careless grant.
    const first = await start({ DATABASE_URL: postgres.urls.tools });
    await first.close();
    await postgres.admin.query(`GRANT USAGE ON SCHEMA scopedb TO ${postgres.roles.tools}`);
    try {
      await expect(start({ DATABASE_URL: postgres.urls.tools })).rejects.toThrow(
        /has privileges on the schema scopedb/,
      );
    } finally {
      await postgres.admin.query(`REVOKE USAGE ON SCHEMA scopedb FROM ${postgres.roles.tools}`);
    }
    await postgres.admin.query(`GRANT ${postgres.roles.internal} TO ${postgres.roles.tools}`);
    try {
      await expect(start({ DATABASE_URL: postgres.urls.tools })).rejects.toThrow(/can act as/);
    } finally {
      await postgres.admin.query(`REVOKE ${postgres.roles.internal} FROM ${postgres.roles.tools}`);
    }
  });

  it('refuses INTERNAL_DATABASE_URL with the tools role', async () => {
    await expect(
      startTestApp({
        AUTH_ISSUER: issuer.url,
        DATABASE_URL: postgres.urls.tools,
        INTERNAL_DATABASE_URL: postgres.urls.tools,
      }),
    ).rejects.toThrow(/INTERNAL_DATABASE_URL: connects as the role that runs the tools/);
  });
});
