import pg from 'pg';
import {
  createTestDatabase,
  type TestPostgresDatabase,
  type TestPostgresRole,
} from '../../../test/support/postgres.js';
import { jsonBytes } from '../../../test/support/json-size.js';
import { match } from '../../../test/support/matchers.js';
import { rejection } from '../../../test/support/sql-errors.js';
import type { Filter } from '../engine.js';
import type { SizeLimits } from '../result-rows.js';
import type { SqlParams } from '../sql-values.js';
import { describeTable, listTables, resolveTable } from './catalog.js';
import { explainQuery } from './explain.js';
import { runQuery } from './reads.js';
import { releaseClient, reusable } from './connection.js';
import { type Deadline, underDeadline } from './deadline.js';
import { readTransaction } from './session.js';
import { parseArray, resultTypes } from './values.js';
import { deleteRows, execute, insertRows, updateRows } from './writes.js';

// The PostgreSQL engine's core against a real PostgreSQL: a database and roles of the run's own;
// calls run as a LOGIN role that owns the test tables (never a superuser); the superuser only
// sets up, watches pg_stat_activity / pg_locks, and drops everything.

const SIZES: SizeLimits = { maxBytes: 10_000, maxCellChars: 100 };
const READ: Deadline = { ms: 5000, source: 'timeout_ms' };
const WRITE: Deadline = { ms: 5000, source: 'WRITE_TIMEOUT_MS' };
const SHORT: Deadline = { ms: 300, source: 'timeout_ms' };

const ITEMS = `
  INSERT INTO items (id, name, qty, tag, price) VALUES
    (1, 'apple', 5, 'fruit', 1.50), (2, 'banana', 10, 'fruit', 0.25), (3, 'carrot', 0, 'veg', 0),
    (4, 'date', NULL, 'fruit', 3), (5, 'eggplant', 20, NULL, 2);
  INSERT INTO sales.orders (item_id, quantity) VALUES (1, 3), (1, 12), (2, 1);`;

describe('PostgreSQL engine core', () => {
  let db: TestPostgresDatabase;
  let tool: TestPostgresRole;
  let other: TestPostgresRole;
  /** The tool role's connection the calls run on (replaced when a call spoiled it). */
  let sut: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase('scopedb_core');
    tool = await db.createRole('scopedb_core_tool');
    other = await db.createRole('scopedb_core_other');
    await db.client.query(`
      GRANT CREATE ON SCHEMA public TO ${tool.name};
      CREATE SCHEMA sales AUTHORIZATION ${tool.name};
      CREATE SCHEMA "odd.schema" AUTHORIZATION ${tool.name};
      CREATE SCHEMA scopedb;
      CREATE TABLE scopedb.audit_log (id int);
      CREATE TABLE public.secret (x int);
      CREATE TYPE public.mood AS ENUM ('sad', 'happy');
      GRANT ${other.name} TO ${tool.name};
      ALTER ROLE ${tool.name} SET TimeZone = 'UTC';`);
    const owner = await tool.connect();
    await owner.query(`
      CREATE TABLE items (
        id int PRIMARY KEY, name text NOT NULL, qty int, tag text,
        price numeric(10,2) NOT NULL DEFAULT 0 CHECK (price >= 0));
      CREATE INDEX items_tag_idx ON items (tag);
      CREATE UNIQUE INDEX items_lower_name_key ON items (lower(name));
      CREATE TABLE sales.orders (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        item_id int NOT NULL REFERENCES items (id) ON DELETE CASCADE,
        quantity int NOT NULL CHECK (quantity > 0),
        placed_at timestamptz NOT NULL DEFAULT now());
      CREATE INDEX orders_item_id_idx ON sales.orders (item_id);
      CREATE VIEW sales.big_orders AS SELECT id, item_id, quantity FROM sales.orders WHERE quantity > 10;
      CREATE TABLE sales.items (sku text PRIMARY KEY);
      CREATE TABLE "Mixed ""Quoted"" Name" ("Some Column" int, "we""ird" text);
      CREATE TABLE "odd.schema".t (x int);
      CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL DEFAULT 'empty');
      CREATE TABLE big (id int PRIMARY KEY, body text);
      INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 5000) g;
      CREATE TABLE locked (x int);
      CREATE TABLE spans (r int4range, EXCLUDE USING gist (r WITH &&));
      CREATE TABLE deferred (item_id int REFERENCES items (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE SEQUENCE counter;
      ANALYZE big;`);
    await owner.end();
    sut = await tool.connect();
  });

  beforeEach(async () => {
    await db.client.query(
      `TRUNCATE items, sales.orders, notes, spans, deferred, "Mixed ""Quoted"" Name" RESTART IDENTITY CASCADE; ${ITEMS}`,
    );
  });

  afterEach(async () => {
    if (reusable(sut)) return;
    await sut.end();
    sut = await tool.connect();
  });

  afterAll(async () => {
    await sut?.end();
    await db?.drop();
  });

  const query = (sql: string, params?: SqlParams, maxRows = 100, limits = SIZES, deadline = READ) =>
    runQuery(sut, { sql, params, maxRows, timeoutMs: deadline.ms }, limits, deadline);
  const first = async (sql: string, params?: SqlParams) => (await query(sql, params)).rows[0][0];
  const run = (
    sql: string,
    params?: SqlParams,
    options: { expectedMaxRows?: number; dryRun?: boolean } = {},
  ) => execute(sut, { sql, params, dryRun: false, ...options }, SIZES, WRITE);
  const itemNames = async () =>
    (await db.client.query<{ name: string }>('SELECT name FROM items ORDER BY id')).rows.map(
      (r) => r.name,
    );
  /** The tool role's statements PostgreSQL is running now (seen by the superuser). */
  const activeStatements = async () =>
    (
      await db.client.query<{ query: string }>(
        "SELECT query FROM pg_stat_activity WHERE usename = $1 AND state = 'active'",
        [tool.name],
      )
    ).rows.map((r) => r.query);

  describe('values', () => {
    it('maps each type to JSON truthfully, with the type names', async () => {
      const result =
        await query(`SELECT true AS bool, 1::int2 AS int2, 2::int4 AS int4, 3::oid AS oid,
        9007199254740993::int8 AS int8, 1.10::numeric AS numeric, 'NaN'::numeric AS numeric_nan,
        0.1::float8 AS float8, 1.1::float4 AS float4, 'NaN'::float8 AS nan, 'Infinity'::float4 AS inf,
        '-Infinity'::float8 AS ninf, 'x'::text AS text, 'y'::varchar(3) AS varchar, 'z'::char(2) AS bpchar,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS uuid, '{"a": [1, 2.5]}'::json AS json,
        '{"b": null}'::jsonb AS jsonb, '2024-05-01 12:00:00.123456+00'::timestamptz AS timestamptz,
        '2024-05-01 12:00:00.5'::timestamp AS timestamp, '2024-05-01'::date AS date,
        'infinity'::timestamptz AS inf_ts, '-infinity'::date AS ninf_date, '0044-03-15 BC'::date AS bc,
        '12:34:56'::time AS time, '12:34:56+02'::timetz AS timetz, '1 day 02:00:00'::interval AS interval,
        '\\x0102ff'::bytea AS bytea, 'happy'::mood AS mood, '(1,2)'::point AS point`);
      const cells = Object.fromEntries(result.columns.map((c, i) => [c.name, result.rows[0][i]]));
      expect(cells).toEqual({
        bool: true,
        int2: 1,
        int4: 2,
        oid: 3,
        int8: '9007199254740993',
        numeric: '1.10',
        numeric_nan: 'NaN',
        float8: 0.1,
        float4: 1.1,
        nan: 'NaN',
        inf: 'Infinity',
        ninf: '-Infinity',
        text: 'x',
        varchar: 'y',
        bpchar: 'z ',
        uuid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        json: { a: [1, 2.5] },
        jsonb: { b: null },
        timestamptz: '2024-05-01T12:00:00.123456+00:00',
        timestamp: '2024-05-01T12:00:00.5',
        date: '2024-05-01',
        inf_ts: 'infinity',
        ninf_date: '-infinity',
        bc: '0044-03-15 BC',
        time: '12:34:56',
        timetz: '12:34:56+02',
        interval: '1 day 02:00:00',
        bytea: 'base64:AQL/',
        mood: 'happy',
        point: '(1,2)',
      });
      expect(result.columns.map((c) => c.type)).toEqual([
        'bool',
        'int2',
        'int4',
        'oid',
        'int8',
        'numeric',
        'numeric',
        'float8',
        'float4',
        'float8',
        'float4',
        'float8',
        'text',
        'varchar',
        'bpchar',
        'uuid',
        'json',
        'jsonb',
        'timestamptz',
        'timestamp',
        'date',
        'timestamptz',
        'date',
        'date',
        'time',
        'timetz',
        'interval',
        'bytea',
        'mood',
        'point',
      ]);
    });

    it('maps arrays to JSON arrays of mapped elements, or keeps PostgreSQL text', async () => {
      const result = await query(`SELECT ARRAY[1, 2] AS ints, ARRAY[[1, 2], [3, 4]] AS nested,
        ARRAY['a b', NULL, 'c"d', 'e\\f', '{x}']::text[] AS texts, ARRAY[9007199254740993]::int8[] AS bigs,
        ARRAY['2024-05-01 12:00:00+00']::timestamptz[] AS stamps, ARRAY['\\x01ff']::bytea[] AS blobs,
        ARRAY['{"k": 1}']::jsonb[] AS docs, ARRAY['NaN']::float8[] AS floats, '{}'::int4[] AS empty,
        '[0:1]={7,8}'::int4[] AS bounded, ARRAY['(1,2)']::point[] AS points`);
      expect(result.rows[0]).toEqual([
        [1, 2],
        [
          [1, 2],
          [3, 4],
        ],
        ['a b', null, 'c"d', 'e\\f', '{x}'],
        ['9007199254740993'],
        ['2024-05-01T12:00:00+00:00'],
        ['base64:Af8='],
        [{ k: 1 }],
        ['NaN'],
        [],
        [7, 8],
        '{"(1,2)"}',
      ]);
      expect(result.columns.map((c) => c.type)).toEqual([
        'int4[]',
        'int4[]',
        'text[]',
        'int8[]',
        'timestamptz[]',
        'bytea[]',
        'jsonb[]',
        'float8[]',
        'int4[]',
        'int4[]',
        'point[]',
      ]);
    });

    it('reads a value in the form a statement switched to rather than guessing', async () => {
      const [bytes, stamp] = (
        await query(
          "SELECT set_config('bytea_output', 'escape', true), '\\x015c41'::bytea, set_config('DateStyle', 'SQL', true), '2024-05-01 12:00:00'::timestamp",
        )
      ).rows[0].filter((_, i) => i % 2 === 1);
      expect(bytes).toBe('base64:AVxB');
      expect(stamp).toBe('05/01/2024 12:00:00');
    });

    it('keeps offsets with minutes and seconds, and refuses malformed arrays to the text', () => {
      const parse = (oid: number, text: string): unknown =>
        (resultTypes().getTypeParser(oid) as (value: string) => unknown)(text);
      expect(parse(1184, '2024-05-01 12:00:00+05:30')).toBe('2024-05-01T12:00:00+05:30');
      expect(parse(1184, '1850-01-01 00:00:00+00:53:28')).toBe('1850-01-01T00:00:00+00:53:28');
      expect(parse(1007, '{1,2')).toBe('{1,2');
      expect(() => parseArray('{"a', (v) => v)).toThrow('not an array literal');
    });
  });

  describe(runQuery.name, () => {
    it('returns rows as arrays in column order, with names and types', async () => {
      const result = await query(
        'SELECT id, name, price FROM items WHERE qty > $1 ORDER BY id',
        [4],
      );
      expect(result).toEqual({
        columns: [
          { name: 'id', type: 'int4' },
          { name: 'name', type: 'text' },
          { name: 'price', type: 'numeric' },
        ],
        rows: [
          [1, 'apple', '1.50'],
          [2, 'banana', '0.25'],
          [5, 'eggplant', '2.00'],
        ],
        row_count: 3,
        truncated: false,
        truncation_reason: null,
        elapsed_ms: match.any(Number),
      });
    });

    it('binds params to $1..$n (booleans as booleans) and refuses named params', async () => {
      expect(await first('SELECT $1::boolean AND $2::text = $3', [true, 'a', 'a'])).toBe(true);
      const named = await rejection(() => query('SELECT :x', { x: 1 }));
      expect(named).toMatchObject({
        code: 'INVALID_PARAMS',
        message: match.stringContaining('$1'),
      });
      expect((await rejection(() => query('SELECT $1::int, $2::int', [1]))).code).toBe(
        'INVALID_PARAMS',
      );
      expect((await rejection(() => query('SELECT 1 WHERE $1 IS NULL', [1]))).code).toBe(
        'INVALID_PARAMS',
      );
    });

    it('stops at max_rows, never fetching past max_rows + 1', async () => {
      const result = await query('SELECT g FROM generate_series(1, 50) g', undefined, 10);
      expect(result).toMatchObject({
        row_count: 10,
        truncated: true,
        truncation_reason: 'max_rows',
      });
      // Row 12 divides by zero: the call succeeds only if it was never computed.
      const bounded = await query('SELECT 1 / (12 - generate_series(1, 100000))', undefined, 10);
      expect(bounded.truncation_reason).toBe('max_rows');
      const atCap = await query('SELECT 1 / (1002 - generate_series(1, 100000))', undefined, 1000);
      expect(atCap).toMatchObject({ row_count: 1000, truncation_reason: 'max_rows' });
    });

    it('answers a hundred-million-row stream at once, truncated', async () => {
      // Read to the end, these rows would take far longer than the 5 s deadline.
      const result = await query('SELECT generate_series(1, 100000000) AS n', undefined, 10);
      expect(result.rows).toEqual([[1], [2], [3], [4], [5], [6], [7], [8], [9], [10]]);
      expect(result.truncated).toBe(true);
      const scan = await query('SELECT * FROM big', undefined, 5);
      expect(scan).toMatchObject({ row_count: 5, truncation_reason: 'max_rows' });
    });

    it('stops at the byte budget and shortens long cells', async () => {
      const budget = await query(
        "SELECT repeat('x', 90), generate_series(1, 1000)",
        undefined,
        1000,
      );
      expect(budget.truncation_reason).toBe('byte_budget');
      expect(budget.row_count).toBeGreaterThan(50);
      expect(jsonBytes(budget.rows)).toBeLessThanOrEqual(SIZES.maxBytes);
      const cell = await query("SELECT repeat('y', 500)");
      expect(cell.truncation_reason).toBe('cell_size');
      expect(cell.rows[0][0]).toBe(`${'y'.repeat(100)}…[400 more characters]`);
    });

    it('refuses writes: PostgreSQL itself, in a READ ONLY transaction', async () => {
      const insert = await rejection(() =>
        query("INSERT INTO items VALUES (9, 'fig') RETURNING *"),
      );
      expect(insert.code).toBe('NOT_READ_ONLY');
      expect((await rejection(() => query("SELECT nextval('counter')"))).code).toBe(
        'NOT_READ_ONLY',
      );
      expect((await rejection(() => query('SELECT * FROM items FOR UPDATE'))).code).toBe(
        'NOT_READ_ONLY',
      );
      expect((await rejection(() => query('CREATE TABLE t2 (x int)'))).code).toBe('NOT_READ_ONLY');
      expect(await itemNames()).toEqual(['apple', 'banana', 'carrot', 'date', 'eggplant']);
    });

    it('refuses a second statement: PostgreSQL parses one', async () => {
      const error = await rejection(() => query('SELECT 1; COMMIT; DROP TABLE items'));
      expect(error.code).toBe('MULTIPLE_STATEMENTS');
      expect(await first('SELECT count(*) FROM items')).toBe('5');
    });

    it('refuses statements that return no rows, transaction control and COPY', async () => {
      expect(await rejection(() => query('SET search_path = sales'))).toMatchObject({
        code: 'NOT_READ_ONLY',
        message: match.stringContaining('SET'),
      });
      expect((await rejection(() => query('COMMIT'))).code).toBe('TRANSACTION_CONTROL');
      expect((await rejection(() => query('ROLLBACK'))).code).toBe('TRANSACTION_CONTROL');
      expect((await rejection(() => query('COPY items TO STDOUT'))).code).toBe('COPY_NOT_ALLOWED');
      expect((await rejection(() => query('COPY items FROM STDIN'))).code).toBe('NOT_READ_ONLY');
      expect((await rejection(() => query("PREPARE TRANSACTION 'x'"))).code).toBe('PG_55000');
      expect(await first('SELECT count(*) FROM pg_prepared_xacts')).toBe('0');
      expect((await rejection(() => query('  -- nothing'))).code).toBe('EMPTY_SQL');
      expect((await rejection(() => run(' '))).code).toBe('EMPTY_SQL');
      expect(await first('SELECT 1')).toBe(1);
    });

    it('names unknown tables and columns, permissions and syntax', async () => {
      expect((await rejection(() => query('SELECT * FROM nope'))).code).toBe('UNKNOWN_TABLE');
      expect((await rejection(() => query('SELECT nope FROM items'))).code).toBe('UNKNOWN_COLUMN');
      expect((await rejection(() => query('SELECT * FROM public.secret'))).code).toBe(
        'PERMISSION_DENIED',
      );
      expect((await rejection(() => query('SELECT * FROM scopedb.audit_log'))).code).toBe(
        'PERMISSION_DENIED',
      );
      expect((await rejection(() => query('SELEKT 1'))).code).toBe('SYNTAX_ERROR');
      expect((await rejection(() => query('SELECT 1 / 0'))).code).toBe('PG_22012');
    });
  });

  describe('session state between calls on one connection', () => {
    const probe = async () =>
      (
        await query(`SELECT current_setting('search_path'), current_user::text, current_setting('work_mem'),
          (SELECT count(*) FROM pg_prepared_statements), (SELECT count(*) FROM pg_cursors),
          (SELECT count(*) FROM pg_listening_channels()),
          (SELECT count(*) FROM pg_class WHERE relpersistence = 't')`)
      ).rows[0];
    let clean: unknown[];
    beforeAll(async () => {
      clean = await probe();
    });
    const advisoryLocks = async () =>
      (
        await db.client.query(
          // pg_locks is the cluster's: other suites' databases take advisory locks too.
          "SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = current_database()",
        )
      ).rowCount;

    it('starts clean: the role default search_path, the role itself, nothing left over', () => {
      // The two portals are the probe's own and the unnamed one of its transaction's opening
      // statements (statement.ts), listed while it runs.
      expect(clean).toEqual(['"$user", public', tool.name, '4MB', '0', '2', '0', '0']);
    });

    it('undoes set_config and SET of a read, and of a committed write', async () => {
      await query(
        "SELECT set_config('search_path', 'sales', false), set_config('work_mem', '64MB', false)",
      );
      expect(await probe()).toEqual(clean);
      const write = await run(
        "UPDATE items SET qty = qty WHERE id = 1 AND set_config('search_path', 'sales', false) IS NOT NULL AND set_config('work_mem', '64MB', false) IS NOT NULL",
      );
      expect(write.affected_rows).toBe(1);
      expect(await probe()).toEqual(clean);
      expect((await rejection(() => run('SET SESSION work_mem = 1000'))).code).toBe('NOT_A_WRITE');
      expect(await probe()).toEqual(clean);
    });

    it('undoes SET ROLE and a role changed by a committed write', async () => {
      expect((await rejection(() => query(`SET ROLE ${other.name}`))).code).toBe('NOT_READ_ONLY');
      expect(await probe()).toEqual(clean);
      await run(
        `UPDATE items SET qty = qty WHERE id = 1 AND set_config('role', '${other.name}', false) IS NOT NULL`,
      );
      expect(await probe()).toEqual(clean);
      expect((await rejection(() => query('SET SESSION AUTHORIZATION postgres'))).code).toBe(
        'PERMISSION_DENIED',
      );
    });

    it('releases session advisory locks, which survive a rollback', async () => {
      expect(await first('SELECT pg_advisory_lock(42)::text')).toBe('');
      expect(await advisoryLocks()).toBe(0);
      await run("UPDATE items SET qty = qty WHERE id = 1 AND pg_advisory_lock(43)::text = ''");
      expect(await advisoryLocks()).toBe(0);
    });

    it('leaves no prepared statement, held cursor, listener or temp table', async () => {
      expect((await rejection(() => query('PREPARE p AS SELECT 1'))).code).toBe('NOT_READ_ONLY');
      expect(await probe()).toEqual(clean);
      expect((await rejection(() => run('PREPARE p AS SELECT 1'))).code).toBe('NOT_A_WRITE');
      expect((await rejection(() => run('DECLARE c CURSOR WITH HOLD FOR SELECT 1'))).code).toBe(
        'NOT_A_WRITE',
      );
      expect((await rejection(() => run('LISTEN channel'))).code).toBe('NOT_A_WRITE');
      expect((await rejection(() => run('CREATE TEMP TABLE tt AS SELECT 1'))).code).toBe(
        'NOT_A_WRITE',
      );
      expect(await probe()).toEqual(clean);
    });

    it("forgets a committed write's currval", async () => {
      await run("INSERT INTO notes (body) VALUES (nextval('counter')::text)");
      expect((await rejection(() => query("SELECT currval('counter')"))).code).toBe('PG_55000');
    });

    it('survives COPY FROM STDIN in a write, changing nothing', async () => {
      expect((await rejection(() => run('COPY items FROM STDIN'))).code).toBe('COPY_NOT_ALLOWED');
      expect(await probe()).toEqual(clean);
      expect(await itemNames()).toHaveLength(5);
    });

    it('reuses a pooled connection after a call, and destroys one whose deadline fired', async () => {
      const pool = new pg.Pool({ connectionString: tool.url, max: 1 });
      try {
        const pidOf = async () => {
          const client = await pool.connect();
          try {
            return (
              await runQuery(
                client,
                { sql: 'SELECT pg_backend_pid()', maxRows: 1, timeoutMs: 1000 },
                SIZES,
                READ,
              )
            ).rows[0][0];
          } finally {
            releaseClient(client);
          }
        };
        const pid = await pidOf();
        expect(await pidOf()).toBe(pid);
        const client = await pool.connect();
        const timeout = await rejection(() =>
          runQuery(
            client,
            { sql: 'SELECT pg_sleep(600)', maxRows: 1, timeoutMs: 300 },
            SIZES,
            SHORT,
          ),
        );
        expect(timeout.code).toBe('TIMEOUT');
        expect(reusable(client)).toBe(true); // the server's own timeout: the session was reset
        releaseClient(client);
        expect(await pidOf()).toBe(pid);
        const spoiled = await pool.connect();
        await rejection(() =>
          underDeadline(spoiled, SHORT, () => spoiled.query('SELECT pg_sleep(600)')),
        );
        expect(reusable(spoiled)).toBe(false);
        releaseClient(spoiled);
        expect(await pidOf()).not.toBe(pid);
      } finally {
        await pool.end();
      }
    });
  });

  describe('deadlines', () => {
    it('cuts pg_sleep at the deadline, nothing left running', async () => {
      const error = await rejection(() => query('SELECT pg_sleep(600)', [], 1, SIZES, SHORT));
      expect(error).toMatchObject({
        code: 'TIMEOUT',
        message: match.stringContaining('300 ms (timeout_ms)'),
      });
      expect(await activeStatements()).toEqual([]);
    });

    it('cuts a runaway cross join', async () => {
      const error = await rejection(() =>
        query(
          'SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b',
          [],
          1,
          SIZES,
          SHORT,
        ),
      );
      expect(error.code).toBe('TIMEOUT');
      expect(await activeStatements()).toEqual([]);
    });

    it('cuts a set-returning function in FROM, which PostgreSQL materialises before the first row', async () => {
      const error = await rejection(() =>
        query('SELECT * FROM generate_series(1, 100000000)', [], 10, SIZES, SHORT),
      );
      expect(error.code).toBe('TIMEOUT');
      expect(await activeStatements()).toEqual([]);
    });

    it('cuts a lock wait, for reads and writes', async () => {
      const locker = new pg.Client({ connectionString: db.url });
      await locker.connect();
      try {
        await locker.query(
          'BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE; SELECT * FROM items WHERE id = 1 FOR UPDATE',
        );
        const read = await rejection(() => query('SELECT * FROM locked', [], 1, SIZES, SHORT));
        expect(read).toMatchObject({ code: 'TIMEOUT', message: match.stringContaining('lock') });
        const write = await rejection(() =>
          execute(sut, { sql: 'UPDATE items SET qty = 99 WHERE id = 1', dryRun: false }, SIZES, {
            ms: 300,
            source: 'WRITE_TIMEOUT_MS',
          }),
        );
        expect(write).toMatchObject({
          code: 'TIMEOUT',
          message: match.stringContaining('WRITE_TIMEOUT_MS'),
        });
        expect(await activeStatements()).toEqual([]);
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
      expect(await first('SELECT qty FROM items WHERE id = 1')).toBe(5);
    });

    it('keeps the deadline when the statement switches its own timeout off', async () => {
      const error = await rejection(() =>
        query(
          "SELECT set_config('statement_timeout', '0', true), pg_sleep(600)",
          [],
          1,
          SIZES,
          SHORT,
        ),
      );
      expect(error.code).toBe('TIMEOUT');
      expect(await activeStatements()).toEqual([]);
    });

    it('cancels the backend and drops the connection when the server does not answer', async () => {
      const victim = await tool.connect();
      try {
        const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]
          .pid;
        const error = await rejection(() =>
          underDeadline(victim, SHORT, () => victim.query('SELECT pg_sleep(600)')),
        );
        expect(error.code).toBe('TIMEOUT');
        expect(reusable(victim)).toBe(false);
        const { rows } = await db.client.query<{ state: string }>(
          'SELECT state FROM pg_stat_activity WHERE pid = $1',
          [pid],
        );
        expect(rows.filter((r) => r.state === 'active')).toEqual([]);
      } finally {
        await victim.end();
      }
    });

    it('survives the server ending an idle transaction, and does not reuse the connection', async () => {
      const victim = await tool.connect();
      try {
        const error = await rejection(() =>
          readTransaction(victim, SHORT, async () => {
            await new Promise((resolve) => setTimeout(resolve, 1500));
            return victim.query('SELECT 1');
          }),
        );
        expect(error.code).toBe('TIMEOUT');
        expect(reusable(victim)).toBe(false);
      } finally {
        await victim.end();
      }
    });
  });

  describe(explainQuery.name, () => {
    const explain = (sql: string, params?: SqlParams) =>
      explainQuery(sut, { sql, params, timeoutMs: READ.ms }, READ);

    it('flattens the plan tree with relation and index names, params bound', async () => {
      const { plan } = await explain('SELECT * FROM big WHERE id = $1', [7]);
      expect(plan).toEqual([
        { id: 1, parent: 0, detail: 'Index Scan using big_pkey on big (Index Cond: (id = 7))' },
      ]);
      const join = await explain(
        'SELECT b.body FROM big b JOIN big c ON c.id = b.id + 1 WHERE b.body LIKE $1',
        ['row 1%'],
      );
      expect(join.plan[0]).toEqual({ id: 1, parent: 0, detail: match.stringContaining('Join') });
      expect(join.plan.slice(1).every((step) => step.parent >= 1)).toBe(true);
      expect(join.plan.map((step) => step.detail).join('\n')).toMatch(/on big b/);
    });

    it('refuses EXPLAIN or ANALYZE in the statement, and statements that write or lock', async () => {
      for (const sql of ['EXPLAIN SELECT 1', 'ANALYZE SELECT 1', 'explain analyze select 1'])
        expect(await rejection(() => explain(sql))).toMatchObject({
          code: 'NOT_READ_ONLY',
          message: match.stringContaining('without EXPLAIN'),
        });
      expect((await rejection(() => explain('DELETE FROM items'))).code).toBe('NOT_READ_ONLY');
      expect((await rejection(() => explain('SELECT * FROM items FOR UPDATE'))).code).toBe(
        'NOT_READ_ONLY',
      );
      expect(await itemNames()).toHaveLength(5);
    });

    it('cannot be steered out of its one statement', async () => {
      expect((await rejection(() => explain('SELECT 1; DROP TABLE items'))).code).toBe(
        'MULTIPLE_STATEMENTS',
      );
      expect((await rejection(() => explain('SELECT 1) ; DROP TABLE items; --'))).code).toMatch(
        /SYNTAX_ERROR|MULTIPLE_STATEMENTS/,
      );
      expect((await rejection(() => explain(') ANALYZE SELECT 1'))).code).toBe('SYNTAX_ERROR');
      await explain('CREATE TABLE made AS SELECT 1');
      expect(await first("SELECT to_regclass('made') IS NULL")).toBe(true);
      expect(await first('SELECT count(*) FROM items')).toBe('5');
    });

    it('asks for a cast when a parameter type is unknown', async () => {
      expect((await rejection(() => explain('SELECT 1 WHERE $1 IS NULL', [1]))).code).toBe(
        'INVALID_PARAMS',
      );
      expect((await rejection(() => explain('SELECT :x', { x: 1 }))).code).toBe('INVALID_PARAMS');
    });
  });

  describe('catalog', () => {
    const list = (request: { pattern?: string; includeViews?: boolean } = {}) =>
      listTables(sut, { includeViews: false, ...request }, READ);

    it('lists what the role may read, named as search_path sees it', async () => {
      await db.client.query('ANALYZE items');
      const { tables } = await list({ includeViews: true });
      expect(tables.map((t) => t.name).sort()).toEqual(
        [
          'big',
          'deferred',
          'items',
          'locked',
          'Mixed "Quoted" Name',
          'notes',
          'odd.schema.t',
          'sales.big_orders',
          'sales.items',
          'sales.orders',
          'spans',
        ].sort(),
      );
      expect(tables).toHaveLength(11);
      expect(tables).toContainEqual({ name: 'items', type: 'table', row_estimate: 5 });
      expect(tables).toContainEqual({ name: 'sales.big_orders', type: 'view', row_estimate: null });
      expect(tables.find((t) => t.name === 'locked')?.row_estimate).toBeNull();
      expect(tables.map((t) => t.name)).not.toContain('secret');
      expect(tables.map((t) => t.name).join()).not.toMatch(/audit_log|scopedb/);
    });

    it('filters by a case-insensitive LIKE pattern, and views only on request', async () => {
      expect((await list({ pattern: 'SALES.%' })).tables.map((t) => t.name).sort()).toEqual([
        'sales.items',
        'sales.orders',
      ]);
      expect((await list({ pattern: 'sales.%', includeViews: true })).tables).toHaveLength(3);
      expect((await list({ pattern: '%quoted%' })).tables.map((t) => t.name)).toEqual([
        'Mixed "Quoted" Name',
      ]);
      expect((await list({ pattern: 'nothing%' })).tables).toEqual([]);
    });

    it("follows the role's search_path", async () => {
      await db.client.query(`ALTER ROLE ${tool.name} SET search_path = sales, public`);
      const client = await tool.connect();
      try {
        const names = (await listTables(client, { includeViews: true }, READ)).tables.map(
          (t) => t.name,
        );
        expect(names).toEqual(
          expect.arrayContaining(['orders', 'items', 'public.items', 'big_orders']),
        );
        expect((await resolveTable(client, 'items'))?.schema).toBe('sales');
        expect((await resolveTable(client, 'public.items'))?.schema).toBe('public');
      } finally {
        await client.end();
        await db.client.query(`ALTER ROLE ${tool.name} RESET search_path`);
      }
    });

    it('resolves names exactly: visible first, then schema.name at the first dot naming a schema', async () => {
      const resolve = (name: string) => readTransaction(sut, READ, () => resolveTable(sut, name));
      expect(await resolve('items')).toMatchObject({
        schema: 'public',
        name: 'items',
        type: 'table',
      });
      expect(await resolve('sales.items')).toMatchObject({ schema: 'sales', name: 'items' });
      expect(await resolve('public.items')).toMatchObject({ schema: 'public', name: 'items' });
      expect(await resolve('odd.schema.t')).toMatchObject({ schema: 'odd.schema', name: 't' });
      expect(await resolve('Mixed "Quoted" Name')).toMatchObject({
        columns: ['Some Column', 'we"ird'],
      });
      for (const name of [
        'orders',
        'Items',
        'ITEMS',
        'secret',
        'scopedb.audit_log',
        '"items"',
        'items; DROP TABLE items',
      ])
        expect(await resolve(name)).toBeUndefined();
    });

    it('describes a table: columns, keys, indexes, foreign keys both ways, checks', async () => {
      expect(await describeTable(sut, 'items', READ)).toEqual({
        name: 'items',
        type: 'table',
        columns: [
          { name: 'id', type: 'integer', nullable: false, default: null, primary_key: true },
          { name: 'name', type: 'text', nullable: false, default: null, primary_key: false },
          { name: 'qty', type: 'integer', nullable: true, default: null, primary_key: false },
          { name: 'tag', type: 'text', nullable: true, default: null, primary_key: false },
          {
            name: 'price',
            type: 'numeric(10,2)',
            nullable: false,
            default: '0',
            primary_key: false,
          },
        ],
        primary_key: ['id'],
        indexes: [
          { name: 'items_lower_name_key', columns: ['lower(name)'], unique: true },
          { name: 'items_tag_idx', columns: ['tag'], unique: false },
        ],
        foreign_keys: [],
        referenced_by: [
          {
            table: 'deferred',
            columns: ['item_id'],
            referenced_table: 'items',
            referenced_columns: ['id'],
            on_delete: 'NO ACTION',
            on_update: 'NO ACTION',
          },
          {
            table: 'sales.orders',
            columns: ['item_id'],
            referenced_table: 'items',
            referenced_columns: ['id'],
            on_delete: 'CASCADE',
            on_update: 'NO ACTION',
          },
        ],
        checks: [{ name: 'items_price_check', expression: 'price >= 0::numeric' }],
      });
    });

    it('describes identity columns, schema-qualified names and views', async () => {
      const orders = await describeTable(sut, 'sales.orders', READ);
      expect(orders?.columns[0]).toEqual({
        name: 'id',
        type: 'bigint',
        nullable: false,
        default: 'GENERATED ALWAYS AS IDENTITY',
        primary_key: true,
      });
      expect(orders?.foreign_keys).toEqual([
        {
          columns: ['item_id'],
          referenced_table: 'items',
          referenced_columns: ['id'],
          on_delete: 'CASCADE',
          on_update: 'NO ACTION',
        },
      ]);
      expect(orders?.checks).toEqual([
        { name: 'orders_quantity_check', expression: 'quantity > 0' },
      ]);
      const view = await describeTable(sut, 'sales.big_orders', READ);
      expect(view).toMatchObject({ type: 'view', primary_key: [], indexes: [] });
      expect(view?.columns.map((c) => c.name)).toEqual(['id', 'item_id', 'quantity']);
      expect(await describeTable(sut, 'orders', READ)).toBeUndefined();
      expect(await describeTable(sut, 'secret', READ)).toBeUndefined();
    });
  });

  describe('writes', () => {
    it(`${insertRows.name}: one transaction, columns checked, values bound, rows returned`, async () => {
      const result = await insertRows(
        sut,
        {
          table: 'items',
          rows: [
            { id: 6, name: "fig'); DROP TABLE items; --", qty: 1 },
            { id: 7, name: 'grape', qty: 2 },
            { id: 8, name: 'kiwi', tag: 'fruit' },
          ],
          returning: true,
        },
        SIZES,
        WRITE,
      );
      expect(result).toEqual({
        affected_rows: 3,
        dry_run: false,
        rows: [
          { id: 6, name: "fig'); DROP TABLE items; --", qty: 1, tag: null, price: '0.00' },
          { id: 7, name: 'grape', qty: 2, tag: null, price: '0.00' },
          { id: 8, name: 'kiwi', qty: null, tag: 'fruit', price: '0.00' },
        ],
        truncated: false,
        truncation_reason: null,
      });
      const quoted = await insertRows(
        sut,
        {
          table: 'Mixed "Quoted" Name',
          rows: [{ 'Some Column': 1, 'we"ird': 'x' }],
          returning: false,
        },
        SIZES,
        WRITE,
      );
      expect(quoted).toEqual({ affected_rows: 1, dry_run: false });
      const defaults = await insertRows(
        sut,
        { table: 'notes', rows: [{}, {}], returning: true },
        SIZES,
        WRITE,
      );
      expect(defaults.rows).toEqual([
        { id: 1, body: 'empty' },
        { id: 2, body: 'empty' },
      ]);
    });

    it(`${insertRows.name}: refuses unknown tables, views and columns; a failing row changes nothing`, async () => {
      const insert = (table: string, rows: Record<string, unknown>[]) =>
        insertRows(sut, { table, rows, returning: false }, SIZES, WRITE);
      expect((await rejection(() => insert('nope', [{ a: 1 }]))).code).toBe('UNKNOWN_TABLE');
      expect((await rejection(() => insert('sales.big_orders', [{ id: 1 }]))).code).toBe(
        'UNKNOWN_TABLE',
      );
      expect((await rejection(() => insert('secret', [{ x: 1 }]))).code).toBe('UNKNOWN_TABLE');
      expect((await rejection(() => insert('items', [{ id: 9, nope: 1 }]))).code).toBe(
        'UNKNOWN_COLUMN',
      );
      expect((await rejection(() => insert('items', [{ id: 9, name: { a: 1 } }]))).code).toBe(
        'INVALID_VALUE',
      );
      const duplicate = await rejection(() =>
        insert('items', [
          { id: 9, name: 'fig' },
          { id: 1, name: 'again' },
        ]),
      );
      expect(duplicate).toMatchObject({
        code: 'CONSTRAINT',
        message: match.stringContaining('Key (id)=(1) already exists'),
      });
      expect(await itemNames()).toHaveLength(5);
    });

    it(`${updateRows.name}: filters, expected_max_rows and dry runs`, async () => {
      const update = (
        set: Record<string, unknown>,
        where: Filter[],
        options: { expectedMaxRows?: number; dryRun?: boolean } = {},
      ) =>
        updateRows(
          sut,
          { table: 'items', set, where, expectedMaxRows: 10, dryRun: false, ...options },
          SIZES,
          WRITE,
        );
      expect(
        await update({ qty: 7 }, [
          { column: 'tag', op: '=', value: 'fruit' },
          { column: 'qty', op: '>=', value: 5 },
        ]),
      ).toEqual({
        affected_rows: 2,
        dry_run: false,
        last_insert_rowid: null,
      });
      const tooMany = await rejection(() =>
        update({ qty: 0 }, [{ column: 'tag', op: 'is_null', value: false }], {
          expectedMaxRows: 2,
        }),
      );
      expect(tooMany).toMatchObject({
        code: 'TOO_MANY_ROWS',
        message: match.stringContaining('affect 4 rows'),
      });
      const dry = await update({ tag: 'x' }, [{ column: 'id', op: 'in', value: [1, 2, 3] }], {
        dryRun: true,
      });
      expect(dry).toMatchObject({ affected_rows: 3, dry_run: true, truncated: false });
      expect(dry.rows?.map((r) => r.tag)).toEqual(['x', 'x', 'x']);
      expect((await db.client.query('SELECT id, qty, tag FROM items ORDER BY id')).rows).toEqual([
        { id: 1, qty: 7, tag: 'fruit' },
        { id: 2, qty: 7, tag: 'fruit' },
        { id: 3, qty: 0, tag: 'veg' },
        { id: 4, qty: null, tag: 'fruit' },
        { id: 5, qty: 20, tag: null },
      ]);
      expect(
        (await update({ name: 'Apple' }, [{ column: 'name', op: 'like', value: 'app%' }]))
          .affected_rows,
      ).toBe(1);
      expect(
        (await update({ tag: 'none' }, [{ column: 'tag', op: 'is_null' }])).affected_rows,
      ).toBe(1);
      expect(
        (
          await update({ qty: 1 }, [
            { column: 'id', op: '!=', value: 1 },
            { column: 'id', op: '<', value: 3 },
          ])
        ).affected_rows,
      ).toBe(1);
    });

    it(`${updateRows.name} and ${deleteRows.name}: refuse bad filters and names`, async () => {
      const del = (where: Filter[], table = 'items') =>
        deleteRows(sut, { table, where, expectedMaxRows: 10, dryRun: false }, SIZES, WRITE);
      expect((await rejection(() => del([]))).code).toBe('FILTER_REQUIRED');
      expect((await rejection(() => del([{ column: 'id', op: 'in', value: [] }]))).code).toBe(
        'INVALID_FILTER',
      );
      expect((await rejection(() => del([{ column: 'id', op: '=', value: null }]))).code).toBe(
        'INVALID_FILTER',
      );
      expect((await rejection(() => del([{ column: 'id', op: 'like', value: 1 }]))).code).toBe(
        'INVALID_FILTER',
      );
      expect((await rejection(() => del([{ column: 'id', op: 'is_null', value: 'x' }]))).code).toBe(
        'INVALID_FILTER',
      );
      expect(
        (await rejection(() => del([{ column: 'id); DROP TABLE items; --', op: '=', value: 1 }])))
          .code,
      ).toBe('UNKNOWN_COLUMN');
      expect(
        (await rejection(() => del([{ column: 'id', op: '=', value: 1 }], 'orders'))).code,
      ).toBe('UNKNOWN_TABLE');
      expect(
        (
          await rejection(() =>
            updateRows(
              sut,
              {
                table: 'items',
                set: {},
                where: [{ column: 'id', op: '=', value: 1 }],
                expectedMaxRows: 1,
                dryRun: false,
              },
              SIZES,
              WRITE,
            ),
          )
        ).code,
      ).toBe('INVALID_VALUE');
      expect(await itemNames()).toHaveLength(5);
    });

    it(`${deleteRows.name}: cascades, previews at most 20 rows on a dry run`, async () => {
      const dry = await deleteRows(
        sut,
        {
          table: 'big',
          where: [{ column: 'id', op: '<=', value: 30 }],
          expectedMaxRows: 100,
          dryRun: true,
        },
        SIZES,
        WRITE,
      );
      expect(dry).toMatchObject({
        affected_rows: 30,
        dry_run: true,
        truncated: true,
        truncation_reason: 'max_rows',
      });
      expect(dry.rows).toHaveLength(20);
      expect(await first('SELECT count(*) FROM big')).toBe('5000');
      const real = await deleteRows(
        sut,
        {
          table: 'items',
          where: [{ column: 'id', op: '=', value: 1 }],
          expectedMaxRows: 1,
          dryRun: false,
        },
        SIZES,
        WRITE,
      );
      expect(real).toEqual({ affected_rows: 1, dry_run: false, last_insert_rowid: null });
      expect(await first('SELECT count(*) FROM sales.orders')).toBe('1');
    });

    it(`${execute.name}: one INSERT, UPDATE, DELETE or MERGE, RETURNING within the budget`, async () => {
      const many = await run(
        "INSERT INTO notes (body) SELECT 'n' || g FROM generate_series(1, 600) g RETURNING id",
      );
      expect(many).toMatchObject({
        affected_rows: 600,
        truncated: true,
        truncation_reason: 'max_rows',
        last_insert_rowid: null,
      });
      expect(many.rows).toHaveLength(500);
      const wide = await run("UPDATE notes SET body = repeat('b', 90) RETURNING body");
      expect(wide).toMatchObject({ affected_rows: 600, truncation_reason: 'byte_budget' });
      expect(wide.rows!.length).toBeLessThan(120);
      const merged = await run(
        'MERGE INTO items i USING (VALUES (1, 50), (9, 1)) AS v(id, qty) ON i.id = v.id WHEN MATCHED THEN UPDATE SET qty = v.qty WHEN NOT MATCHED THEN INSERT (id, name, qty) VALUES (v.id, $1, v.qty)',
        ['fig'],
      );
      expect(merged).toMatchObject({ affected_rows: 2, dry_run: false });
      expect(await first('SELECT qty FROM items WHERE id = 1')).toBe(50);
      const cte = await run(
        'WITH gone AS (DELETE FROM items WHERE id = $1 RETURNING id) INSERT INTO notes (body) SELECT id::text FROM gone',
        [2],
      );
      expect(cte.affected_rows).toBe(1);
    });

    it(`${execute.name}: expected_max_rows and dry runs roll back`, async () => {
      const tooMany = await rejection(() =>
        run("UPDATE items SET tag = 'x' WHERE tag = $1", ['fruit'], { expectedMaxRows: 2 }),
      );
      expect(tooMany).toMatchObject({
        code: 'TOO_MANY_ROWS',
        message: match.stringContaining('affect 3 rows'),
      });
      const dry = await run('DELETE FROM items WHERE qty < $1 RETURNING name', [10], {
        dryRun: true,
      });
      expect(dry).toMatchObject({
        affected_rows: 2,
        dry_run: true,
        rows: [{ name: 'apple' }, { name: 'carrot' }],
      });
      expect(await itemNames()).toHaveLength(5);
      expect(await first("SELECT count(*) FROM items WHERE tag = 'x'")).toBe('0');
    });

    it(`${execute.name}: anything but a row change runs, is rolled back, and is refused`, async () => {
      for (const sql of [
        'SELECT * FROM items',
        'DROP TABLE items CASCADE',
        'CREATE TABLE made (x int)',
        'ALTER TABLE items ADD COLUMN extra int',
        'TRUNCATE items CASCADE',
        'WITH gone AS (DELETE FROM items RETURNING *) SELECT count(*) FROM gone',
        'DO $$ BEGIN DELETE FROM items; END $$',
        'GRANT SELECT ON items TO PUBLIC',
      ])
        expect(await rejection(() => run(sql))).toMatchObject({ code: 'NOT_A_WRITE' });
      expect(await itemNames()).toHaveLength(5);
      expect(
        await first(
          "SELECT to_regclass('made') IS NULL AND NOT has_table_privilege('public', 'items', 'SELECT')",
        ),
      ).toBe(true);
      expect((await describeTable(sut, 'items', READ))?.columns.map((c) => c.name)).toEqual([
        'id',
        'name',
        'qty',
        'tag',
        'price',
      ]);
      expect((await rejection(() => run('SELECT 1; DROP TABLE items'))).code).toBe(
        'MULTIPLE_STATEMENTS',
      );
      expect((await rejection(() => run('ROLLBACK'))).code).toBe('TRANSACTION_CONTROL');
      expect((await rejection(() => run('DELETE FROM items WHERE id = :id', { id: 1 }))).code).toBe(
        'INVALID_PARAMS',
      );
    });

    it(`${execute.name}: constraint errors keep the caller's own row, never another's`, async () => {
      const check = await rejection(() => run('UPDATE items SET price = -1 WHERE id = 1'));
      expect(check).toMatchObject({
        code: 'CONSTRAINT',
        message: match.stringContaining('Failing row contains (1, apple'),
      });
      await run("INSERT INTO spans VALUES ('[1,10)')");
      const exclusion = await rejection(() => run("INSERT INTO spans VALUES ('[5,6)')"));
      expect(exclusion.code).toBe('CONSTRAINT');
      expect(exclusion.message).not.toContain('[1,10)');
      expect(
        (await rejection(() => run('INSERT INTO sales.orders (item_id, quantity) VALUES (99, 1)')))
          .code,
      ).toBe('CONSTRAINT');
      const atCommit = await rejection(() => run('INSERT INTO deferred VALUES (99)'));
      expect(atCommit).toMatchObject({
        code: 'CONSTRAINT',
        message: match.stringContaining('Key (item_id)=(99) is not present'),
      });
      expect(reusable(sut)).toBe(true);
      expect(await first('SELECT count(*) FROM deferred')).toBe('0');
    });
  });
});
