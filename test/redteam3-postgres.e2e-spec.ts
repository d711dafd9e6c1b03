import type { ScopedbPostgres } from './support/postgres.js';
import { type PostgresApp, startPostgresApp } from './support/postgres-app.js';
import type { ToolClient } from './support/tool-client.js';

// Red team 3 on the PostgreSQL engine: attacks by a caller holding a valid token that ScopeDB
// refuses. Each test asserts the refusal, then checks the database as superuser.

const SETUP = `
  CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
  INSERT INTO items (name) SELECT 'item ' || n FROM generate_series(1, 100) AS n;
  CREATE SEQUENCE rt_seq;
`;

describe('PostgreSQL engine under attack (red team 3)', () => {
  let pg: PostgresApp;
  let postgres: ScopedbPostgres;
  let client: ToolClient;

  const admin = <T extends Record<string, unknown>>(sql: string, params?: unknown[]) =>
    postgres.rows<T>(sql, params);

  const refused = (name: string, args: Record<string, unknown>) => client.refused(name, args);

  const itemCount = async () =>
    (await admin<{ n: number }>('SELECT count(*)::int AS n FROM items'))[0].n;

  const running = () => postgres.running();

  const ledgerNames = async () =>
    (await admin<{ name: string }>('SELECT name FROM scopedb.scopedb_migrations ORDER BY id')).map(
      (row) => row.name,
    );

  beforeAll(async () => {
    pg = await startPostgresApp('scopedb_rt3', SETUP);
    ({ postgres, client } = pg);
  });

  afterAll(() => pg?.close());

  it('refuses a second statement on every path, and runs neither', async () => {
    expect(await refused('query', { sql: 'SELECT 1; DROP TABLE items' })).toMatch(
      /MULTIPLE_STATEMENTS|PG_42601/,
    );
    expect(
      await refused('execute', { sql: "INSERT INTO items (name) VALUES ('x'); DROP TABLE items" }),
    ).toMatch(/MULTIPLE_STATEMENTS|PG_42601/);
    expect(
      await refused('explain_query', { sql: 'SELECT 1) ; DROP TABLE items; SELECT (1' }),
    ).toContain('SYNTAX_ERROR');
    expect(await admin("SELECT to_regclass('public.items') IS NOT NULL AS present")).toEqual([
      { present: true },
    ]);
    expect(await itemCount()).toBe(100);
  });

  it('refuses COPY FROM STDIN on every path and keeps the connection in step', async () => {
    expect(await refused('query', { sql: 'COPY items FROM STDIN' })).toMatch(
      /COPY_NOT_ALLOWED|PERMISSION_DENIED/,
    );
    expect(await refused('execute', { sql: 'COPY items (name) FROM STDIN' })).toContain(
      'COPY_NOT_ALLOWED',
    );
    expect(
      await refused('apply_migration', { name: 'copy_in', sql: 'COPY items (name) FROM STDIN' }),
    ).toContain('COPY_NOT_ALLOWED');
    expect(
      await admin("SELECT status FROM scopedb.scopedb_migrations WHERE name = 'copy_in'"),
    ).toEqual([{ status: 'failed' }]);
    // Each later call on the same connections gets its own answer, not a stale one.
    for (const word of ['one', 'two', 'three', 'four'])
      expect(await client.ok('query', { sql: 'SELECT $1::text AS w', params: [word] })).toEqual(
        expect.objectContaining({ rows: [[word]] }),
      );
    for (const word of ['five', 'six'])
      expect(
        await client.ok('execute', {
          sql: 'INSERT INTO items (name) VALUES ($1) RETURNING name',
          params: [word],
        }),
      ).toMatchObject({ rows: [{ name: word }] });
    expect(await itemCount()).toBe(102);
    await admin("DELETE FROM items WHERE name IN ('five', 'six')");
  });

  it('refuses transaction control in one statement, AND CHAIN and PREPARE TRANSACTION included', async () => {
    expect(await refused('query', { sql: 'COMMIT AND CHAIN' })).toContain('TRANSACTION_CONTROL');
    expect(await refused('query', { sql: 'ROLLBACK AND CHAIN' })).toContain('TRANSACTION_CONTROL');
    expect(await refused('execute', { sql: 'COMMIT AND CHAIN' })).toContain('NOT_A_WRITE');
    expect(await refused('execute', { sql: "PREPARE TRANSACTION 'rt3'" })).toMatch(/Error \[/);
    expect(await admin('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
    // The connections are clean: every call is a transaction of its own again.
    expect(
      await client.ok('execute', {
        sql: "INSERT INTO items (name) VALUES ('chained') RETURNING name",
      }),
    ).toMatchObject({ rows: [{ name: 'chained' }] });
    expect(await itemCount()).toBe(101);
    await admin("DELETE FROM items WHERE name = 'chained'");
  });

  it('splits migrations as PostgreSQL lexes them: no COMMIT hides in a string, comment or body', async () => {
    const attempts: [string, string][] = [
      ['begin_atomic', 'CREATE FUNCTION ba() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END'],
      [
        'nonstandard_strings',
        "SET LOCAL standard_conforming_strings = off; CREATE TABLE ns (a text DEFAULT 'a\\'); COMMIT AND CHAIN; CREATE TABLE ns2 (b text DEFAULT '1')",
      ],
      [
        'e_string',
        "CREATE TABLE es (a text DEFAULT E'\\';'); COMMIT AND CHAIN; CREATE TABLE es2 ()",
      ],
      ['end_word', 'CREATE TABLE ew (a int); /* c */ END'],
      ['savepoint', 'CREATE TABLE sp (a int); -- c\n  SAVEPOINT s; CREATE TABLE sp2 (a int)'],
    ];
    for (const [name, sql] of attempts)
      expect(await refused('apply_migration', { name, sql })).toContain('TRANSACTION_CONTROL');
    // Semicolons and COMMIT inside nested comments and dollar quotes are not statements.
    const hidden = `CREATE TABLE hid_a (a int); /* outer /* inner */ ; COMMIT; */
      CREATE FUNCTION hid_f() RETURNS text LANGUAGE sql AS $body$ SELECT ';COMMIT;' $body$`;
    expect(await client.ok('apply_migration', { name: 'hidden', sql: hidden })).toMatchObject({
      applied: true,
      statements: 2,
    });
    expect(
      await admin(
        `SELECT to_regclass('public.ns') AS ns, to_regclass('public.es') AS es, to_regclass('public.ew') AS ew,
                to_regclass('public.sp') AS sp, to_regprocedure('public.ba()') AS ba,
                to_regclass('public.hid_a')::text AS hid`,
      ),
    ).toEqual([{ ns: null, es: null, ew: null, sp: null, ba: null, hid: 'hid_a' }]);
    // Refused before anything ran: not even a ledger row.
    const names = await ledgerNames();
    for (const [name] of attempts) expect(names).not.toContain(name);
    expect(names.filter((name) => name === 'hidden')).toEqual(['hidden']);
  });

  it("keeps ScopeDB's own tables and the server's files out of reach of what db:admin creates", async () => {
    expect(
      await client.ok('apply_migration', {
        name: 'definer',
        sql: `CREATE FUNCTION leak() RETURNS bigint SECURITY DEFINER LANGUAGE plpgsql
                AS $$ BEGIN RETURN (SELECT count(*) FROM scopedb.audit_log); END $$;
              CREATE FUNCTION forge() RETURNS bigint SECURITY DEFINER LANGUAGE plpgsql
                AS $$ BEGIN UPDATE scopedb.scopedb_migrations SET status = 'failed'; RETURN 1; END $$`,
      }),
    ).toMatchObject({ applied: true });
    expect(await refused('query', { sql: 'SELECT leak()' })).toContain('PERMISSION_DENIED');
    expect(
      await refused('execute', { sql: 'INSERT INTO items (name) SELECT forge()::text' }),
    ).toContain('PERMISSION_DENIED');
    const attempts: [string, string][] = [
      [
        'event_trigger',
        'CREATE FUNCTION et() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$; CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION et()',
      ],
      ['publication_all', 'CREATE PUBLICATION pub_all FOR ALL TABLES'],
      ['publication_audit', 'CREATE PUBLICATION pub_audit FOR TABLE scopedb.audit_log'],
      ['grant_internal', `GRANT ${postgres.roles.internal} TO CURRENT_USER`],
    ];
    for (const [name, sql] of attempts)
      expect(await refused('apply_migration', { name, sql })).toContain('PERMISSION_DENIED');
    const reads = [
      `SET ROLE ${postgres.roles.internal}`,
      "SELECT pg_read_file('postgresql.auto.conf')",
      "SELECT pg_ls_dir('.')",
      "SELECT lo_import('/etc/hostname')",
    ];
    for (const sql of reads) expect(await refused('query', { sql })).toContain('PERMISSION_DENIED');
    expect(
      await refused('execute', {
        sql: "INSERT INTO scopedb.scopedb_migrations (name, checksum, sql, applied_by, status) VALUES ('x', 'x', 'x', 'x', 'applied')",
      }),
    ).toContain('PERMISSION_DENIED');
    // Another role's statements show no text.
    const activity = await client.ok('query', {
      sql: 'SELECT DISTINCT query FROM pg_stat_activity WHERE usename = $1',
      params: [postgres.roles.internal],
    });
    expect(activity.rows).toEqual([['<insufficient privilege>']]);
    expect(
      await admin(
        `SELECT (SELECT count(*)::int FROM pg_event_trigger) AS triggers,
                (SELECT count(*)::int FROM pg_publication) AS publications,
                (SELECT count(*)::int FROM pg_largeobject_metadata) AS large_objects,
                (SELECT count(*)::int FROM scopedb.scopedb_migrations WHERE status = 'failed' AND error IS NULL) AS forged`,
      ),
    ).toEqual([{ triggers: 0, publications: 0, large_objects: 0, forged: 0 }]);
    expect(await ledgerNames()).not.toContain('x');
  });

  it('leaves no session state of a committed write to the next call on the connection', async () => {
    expect(
      await client.ok('execute', {
        sql: `INSERT INTO items (name)
              SELECT concat_ws(',', set_config('search_path', 'pg_catalog', false),
                     set_config('client_encoding', 'LATIN1', false),
                     set_config('TimeZone', 'Asia/Tokyo', false),
                     set_config('statement_timeout', '0', false),
                     pg_advisory_lock(4242), nextval('rt_seq'))
              RETURNING id`,
      }),
    ).toMatchObject({ affected_rows: 1 });
    // Pool of two: three calls meet that connection at least once.
    for (let i = 0; i < 3; i++) {
      expect(
        await client.ok('execute', {
          sql: `UPDATE items SET name = name WHERE id = 1
                RETURNING current_setting('search_path') AS path, current_setting('client_encoding') AS enc,
                          current_setting('TimeZone') AS tz, 'é' AS accent`,
        }),
      ).toMatchObject({
        rows: [{ path: '"$user", public', enc: 'UTF8', tz: 'Etc/UTC', accent: 'é' }],
      });
      expect(
        await refused('execute', {
          sql: "UPDATE items SET name = name WHERE id = currval('rt_seq')",
        }),
      ).toContain('currval of sequence "rt_seq" is not yet defined in this session');
    }
    expect(await postgres.advisoryLocks()).toEqual([]);
    await admin('DELETE FROM items WHERE id > 100');
  });

  it("ends a read at its deadline even when its rows lift the transaction's statement_timeout", async () => {
    expect(
      await refused('query', {
        sql: `SELECT set_config('statement_timeout', '0', true), pg_sleep(CASE WHEN g > 25 THEN 1 ELSE 0 END)
              FROM generate_series(1, 60) AS g`,
        timeout_ms: 1000,
        max_rows: 100,
      }),
    ).toContain('TIMEOUT');
    expect(await running()).toEqual([]);
  });

  it('fails a read that errors in the middle of its pipelined batches, and the next read is whole', async () => {
    for (const [stop, rows] of [
      [20, 30],
      [40, 60],
    ])
      expect(
        await refused('query', {
          sql: 'SELECT 1 / ($1::int - g) FROM generate_series(1, $2::int) AS g',
          params: [stop, rows],
          max_rows: 100,
        }),
      ).toContain('PG_22012');
    const data = await client.ok('query', {
      sql: 'SELECT id FROM items ORDER BY id',
      max_rows: 100,
    });
    expect(data.rows).toHaveLength(100);
    expect(data.truncated).toBe(false);
  });

  it('plans in explain_query without running or locking anything', async () => {
    expect(await refused('explain_query', { sql: 'ANALYZE items' })).toContain('NOT_READ_ONLY');
    expect(await refused('explain_query', { sql: 'SELECT * FROM items FOR UPDATE' })).toMatch(
      /NOT_READ_ONLY|PERMISSION_DENIED/,
    );
    expect(await refused('explain_query', { sql: 'DELETE FROM items' })).toContain(
      'PERMISSION_DENIED',
    );
    await client.ok('explain_query', { sql: 'CREATE TABLE planned_only AS SELECT 1 AS a' });
    expect(await refused('query', { sql: 'LOCK TABLE items IN ACCESS SHARE MODE' })).toContain(
      'NOT_READ_ONLY',
    );
    expect(await admin("SELECT to_regclass('public.planned_only') AS t")).toEqual([{ t: null }]);
    expect(await itemCount()).toBe(100);
  });
  it('records a migration whose COMMIT outlives the deadline as failed, and rolls it back', async () => {
    // A deferred constraint trigger runs at COMMIT: past WRITE_TIMEOUT_MS, the COMMIT is cancelled.
    const sql = `CREATE TABLE slow_commit (a int);
      CREATE FUNCTION slow_commit_f() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN PERFORM pg_sleep(600); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER slow_commit_t AFTER INSERT ON slow_commit
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit_f();
      INSERT INTO slow_commit VALUES (1)`;
    const text = await refused('apply_migration', { name: 'slow_commit', sql });
    expect(text).toContain('TIMEOUT');
    // PostgreSQL's record of the transaction tells what the lost answer to COMMIT did not.
    expect(text).toContain('nothing was applied');
    expect(
      await admin("SELECT status FROM scopedb.scopedb_migrations WHERE name = 'slow_commit'"),
    ).toEqual([{ status: 'failed' }]);
    expect(await admin("SELECT to_regclass('public.slow_commit') AS t")).toEqual([{ t: null }]);
    expect(await running()).toEqual([]);
  });
  it('keeps query read-only when the reader may write and the statement tries to lift READ ONLY', async () => {
    await admin(`GRANT INSERT ON items TO ${postgres.roles.reader}`);
    try {
      for (const sql of [
        "SELECT set_config('transaction_read_only', 'off', true), pg_advisory_lock(1)",
        "SELECT set_config('transaction_read_only', 'off', false) FROM generate_series(1, 50)",
        'SET TRANSACTION READ WRITE',
      ])
        expect(await refused('query', { sql, max_rows: 100 })).toContain('PG_25001');
      expect(
        await refused('query', {
          sql: "INSERT INTO items (name) VALUES ('via query') RETURNING id",
        }),
      ).toContain('NOT_READ_ONLY');
      expect(
        await refused('explain_query', { sql: "INSERT INTO items (name) VALUES ('via explain')" }),
      ).toContain('NOT_READ_ONLY');
    } finally {
      await admin(`REVOKE INSERT ON items FROM ${postgres.roles.reader}`);
    }
    for (const [name, sql] of [
      ['dblink', 'CREATE EXTENSION dblink'],
      ['postgres_fdw', 'CREATE EXTENSION postgres_fdw'],
      ['give_away', `ALTER TABLE items OWNER TO ${postgres.roles.internal}`],
    ])
      expect(await refused('apply_migration', { name, sql })).toContain('PERMISSION_DENIED');
    for (const table of ['scopedb.audit_log', 'scopedb.scopedb_migrations', 'pg_catalog.pg_class'])
      expect(await refused('insert_rows', { table, rows: [{ name: 'x' }] })).toContain(
        'UNKNOWN_TABLE',
      );
    expect(await client.ok('list_tables', { pattern: 'scopedb%' })).toEqual({ tables: [] });
    expect(await itemCount()).toBe(100);
    expect(await admin("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'")).toEqual([]);
    expect(await postgres.advisoryLocks()).toEqual([]);
  });
});
