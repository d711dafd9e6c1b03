import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { callTool, postMcp, type ToolResult } from './support/mcp-http.js';
import { match } from './support/matchers.js';
import { textOf, type ToolClient, toolClient } from './support/tool-client.js';

const ALL_SCOPES = 'db:query db:modify db:admin';
/** Never ends on its own: only the deadline stops it. */
const RUNAWAY =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c';
const MAX_RESULT_BYTES = 20_000;
const MAX_CELL_CHARS = 2000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether some connection still holds a read snapshot or the write lock on the WAL. */
function walCheckpointBlocked(databasePath: string): boolean {
  const db = new Database(databasePath, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 2000');
    const [status] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    return status.busy !== 0;
  } finally {
    db.close();
  }
}

describe('query limits', () => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await TestIssuer.start();
  });
  afterAll(async () => {
    await issuer.close();
  });

  describe('with two query workers', () => {
    let sut: TestApp;
    let client: ToolClient;
    /** Another principal: one principal holds one of two workers at most. */
    let other: ToolClient;

    beforeAll(async () => {
      sut = await startTestApp({
        AUTH_ISSUER: issuer.url,
        QUERY_WORKERS: '2',
        QUERY_MAX_RESULT_BYTES: String(MAX_RESULT_BYTES),
        QUERY_MAX_CELL_CHARS: String(MAX_CELL_CHARS),
      });
      client = toolClient(sut.mcpUrl, issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES }));
      other = toolClient(
        sut.mcpUrl,
        issuer.token({ audience: sut.mcpUrl, claims: { sub: 'another-user' } }),
        { settled: client.settled },
      );
      await client.ok('apply_migration', {
        name: 'ql_marks',
        sql: 'CREATE TABLE ql_marks (id INTEGER PRIMARY KEY)',
      });
    });
    afterAll(async () => {
      await sut.close();
    });

    describe('a runaway query', () => {
      it('is cut at its deadline with TIMEOUT while concurrent calls complete', async () => {
        client.settled.length = 0;
        const runaway = client.timed('runaway', 'query', { sql: RUNAWAY, timeout_ms: 1000 });

        // A function call: served by a worker, not inline (as a key lookup would be).
        const quick = await other.timed('quick', 'query', { sql: 'SELECT coalesce(1, 0) AS one' });
        const tables = await other.timed('list_tables', 'list_tables', {});
        const cut = await runaway;

        expect(quick.result.structuredContent).toMatchObject({ rows: [[1]] });
        expect(tables.result.isError).toBeFalsy();
        expect(client.settled).toEqual(['quick', 'list_tables', 'runaway']);
        expect(cut.result.isError).toBe(true);
        expect(textOf(cut.result)).toMatch(/^Error \[TIMEOUT\]: .*1000 ms/);
        expect(cut.ms).toBeGreaterThanOrEqual(1000);
        expect(cut.ms).toBeLessThan(5000);
      });

      it('stops running when it is cut: no connection keeps its snapshot', async () => {
        // A fresh commit in the WAL, which the runaway's snapshot (it reads a table) pins.
        await client.ok('execute', { sql: 'INSERT INTO ql_marks DEFAULT VALUES' });
        const cut = await client.call('query', {
          sql: `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM ql_marks, c`,
          timeout_ms: 500,
        });

        expect(textOf(cut)).toContain('[TIMEOUT]');
        expect(walCheckpointBlocked(sut.databasePath)).toBe(false);
      });

      it('leaves both workers serving: the cut one was replaced', async () => {
        // Twice in a row: with a worker lost per runaway, the quick query would queue behind it.
        for (let round = 1; round <= 2; round++) {
          client.settled.length = 0;
          // Long enough that the quick query is answered first even on a loaded machine.
          const runaway = client.timed('runaway', 'query', { sql: RUNAWAY, timeout_ms: 3000 });

          const quick = await other.timed('quick', 'query', {
            sql: 'SELECT coalesce(?, 0) AS round', // a worker's, not inline
            params: [round],
          });
          const cut = await runaway;

          expect(quick.result.structuredContent).toMatchObject({ rows: [[round]] });
          expect(textOf(cut.result)).toContain('[TIMEOUT]');
          expect(client.settled).toEqual(['quick', 'runaway']);
        }
        const after = await client.ok('query', { sql: 'SELECT coalesce(42, 0) AS answer' });
        expect(after.rows).toEqual([[42]]);
      });

      it('does not hold up key lookups, which run on the main thread, even with every worker busy', async () => {
        await client.ok('execute', { sql: 'INSERT INTO ql_marks DEFAULT VALUES' });
        const inserted = await client.ok('query', { sql: 'SELECT max(id) AS id FROM ql_marks' });
        const lastId = (inserted.rows as number[][])[0][0];
        // A worker judges a text before the main process runs it: this first lookup is judged.
        const lookupSql = 'SELECT id FROM ql_marks WHERE id = ?';
        await client.ok('query', { sql: lookupSql, params: [lastId] });
        client.settled.length = 0;
        const runaways = [client, other].map((caller, n) =>
          caller.timed(`runaway ${n + 1}`, 'query', { sql: RUNAWAY, timeout_ms: 1500 }),
        );
        await sleep(200); // both workers have a runaway, one principal's each

        const lookup = await client.timed('lookup', 'query', { sql: lookupSql, params: [lastId] });
        const cut = await Promise.all(runaways);

        expect(lookup.result.structuredContent).toMatchObject({ rows: [[lastId]] });
        expect(client.settled[0]).toBe('lookup');
        expect(cut.map(({ result }) => textOf(result))).toEqual([
          match.stringContaining('[TIMEOUT]'),
          match.stringContaining('[TIMEOUT]'),
        ]);
      });
    });

    describe('bounded results', () => {
      const rendered = (rows: unknown) => Buffer.byteLength(JSON.stringify(rows), 'utf8');

      beforeAll(async () => {
        await client.ok('apply_migration', {
          name: 'ql_big',
          sql: 'CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT NOT NULL)',
        });
        const inserted = await client.ok('execute', {
          sql: "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) INSERT INTO big (id, label) SELECT i, 'row ' || i FROM n",
        });
        expect(inserted).toMatchObject({ affected_rows: 1_000_000 });
      });

      it('returns the first 100 rows of a million-row table by default, and says why it stopped', async () => {
        const data = await client.ok('query', { sql: 'SELECT * FROM big' });

        expect(data).toEqual({
          columns: [
            { name: 'id', type: 'INTEGER' },
            { name: 'label', type: 'TEXT' },
          ],
          rows: Array.from({ length: 100 }, (_, i) => [i + 1, `row ${i + 1}`]),
          row_count: 100,
          truncated: true,
          truncation_reason: 'max_rows',
          elapsed_ms: match.any(Number),
        });
      });

      it('returns exactly max_rows rows when they fit the byte budget', async () => {
        const data = await client.ok('query', { sql: 'SELECT * FROM big', max_rows: 1000 });

        expect(data).toMatchObject({ row_count: 1000, truncation_reason: 'max_rows' });
        expect((data.rows as unknown[][]).at(-1)).toEqual([1000, 'row 1000']);
      });

      it('stops at the byte budget when wide rows fill it before max_rows', async () => {
        const data = await client.ok('query', {
          sql: "SELECT id, printf('%.1000c', 'w') AS wide FROM big",
        });

        const rows = data.rows as [number, string][];
        expect(data).toMatchObject({ truncated: true, truncation_reason: 'byte_budget' });
        expect(rows.length).toBeGreaterThan(0);
        expect(rows.length).toBeLessThan(100);
        expect(data.row_count).toBe(rows.length);
        expect(rows.map(([id, wide]) => [id, wide.length])).toEqual(
          rows.map((_, i) => [i + 1, 1000]),
        );
        expect(rendered(rows)).toBeLessThanOrEqual(MAX_RESULT_BYTES);
        // One more row would not have fitted.
        expect(rendered(rows) + rendered([rows.length + 1, 'w'.repeat(1000)]) + 1).toBeGreaterThan(
          MAX_RESULT_BYTES,
        );
      });

      it('counts the byte budget in UTF-8 bytes, not characters', async () => {
        const data = await client.ok('query', {
          sql: "SELECT id, replace(printf('%.600c', 'x'), 'x', '€') AS euros FROM big",
        });

        expect(data).toMatchObject({ truncated: true, truncation_reason: 'byte_budget' });
        expect((data.rows as unknown[][]).length).toBeGreaterThan(0);
        expect(rendered(data.rows)).toBeLessThanOrEqual(MAX_RESULT_BYTES);
      });

      it('shortens a 100 KB text cell with a marker, and says so when nothing else was cut', async () => {
        const data = await client.ok('query', { sql: "SELECT printf('%.100000c', 't') AS cell" });

        expect(data).toMatchObject({
          rows: [[`${'t'.repeat(MAX_CELL_CHARS)}…[${100_000 - MAX_CELL_CHARS} more characters]`]],
          row_count: 1,
          truncated: true,
          truncation_reason: 'cell_size',
        });
      });

      it('renders blobs as base64, shortening a long one', async () => {
        const data = await client.ok('query', {
          sql: "SELECT x'00010203' AS small, CAST(printf('%.10000c', 'a') AS BLOB) AS large",
        });

        const shown = Buffer.alloc((MAX_CELL_CHARS * 3) / 4, 'a').toString('base64');
        expect(data).toMatchObject({
          rows: [['base64:AAECAw==', `base64:${shown}…[blob of 10000 bytes]`]],
          truncation_reason: 'cell_size',
        });
      });

      it('renders a short blob whole and reports no truncation', async () => {
        const data = await client.ok('query', { sql: "SELECT x'cafe' AS b" });

        expect(data).toMatchObject({
          rows: [['base64:yv4=']],
          truncated: false,
          truncation_reason: null,
        });
      });

      it('reports max_rows rather than cell_size when rows were also left out', async () => {
        const data = await client.ok('query', {
          sql: "SELECT printf('%.3000c', 'z') AS long FROM big",
          max_rows: 2,
        });

        expect(data).toMatchObject({ row_count: 2, truncation_reason: 'max_rows' });
        expect((data.rows as string[][]).map(([cell]) => cell.length)).toEqual([
          MAX_CELL_CHARS + '…[1000 more characters]'.length,
          MAX_CELL_CHARS + '…[1000 more characters]'.length,
        ]);
      });
    });

    describe('request size caps', () => {
      it.each([
        ['sql over 100000 characters', { sql: `SELECT '${'x'.repeat(100_000)}'` }, 'sql'],
        [
          'more than 1000 parameters',
          { sql: 'SELECT 1', params: Array.from({ length: 1001 }, () => 1) },
          'params',
        ],
        [
          'a parameter over 1000000 characters',
          { sql: 'SELECT length(?)', params: ['p'.repeat(1_000_001)] },
          'params',
        ],
        ['max_rows over 1000', { sql: 'SELECT 1', max_rows: 1001 }, 'max_rows'],
        ['timeout_ms over 30000', { sql: 'SELECT 1', timeout_ms: 30_001 }, 'timeout_ms'],
      ])('refuses %s in input validation', async (_case, args, field) => {
        const result = await client.call('query', args);

        expect(result.isError).toBe(true);
        expect(textOf(result)).toMatch(/input validation/i);
        expect(textOf(result)).toContain(field);
      });

      it('answers a body over MCP_MAX_BODY_BYTES (default 1 MiB) with 413, even with valid arguments', async () => {
        const args = {
          sql: 'SELECT length(?) + length(?)',
          params: ['a'.repeat(600_000), 'b'.repeat(600_000)],
        };

        const response = await postMcp(sut.mcpUrl, callTool('query', args), {
          token: client.token,
        });

        expect(response.status).toBe(413);
        expect(response.message).toEqual({
          jsonrpc: '2.0',
          id: null,
          error: match.objectContaining({ code: -32600 }),
        });
      });
    });
  });

  describe('with one query worker, WRITE_TIMEOUT_MS=1000, DATABASE_BUSY_TIMEOUT_MS=200 and SQL_QUEUE_TIMEOUT_MS=3000', () => {
    let sut: TestApp;
    let client: ToolClient;
    const counters = () => {
      const db = new Database(sut.databasePath, { readonly: true, fileMustExist: true });
      try {
        return db.prepare('SELECT id, value FROM ql_counters ORDER BY id').all();
      } finally {
        db.close();
      }
    };

    // The audit log in a file of its own: locking the application database then locks out the
    // write alone (with the log in the locked file, calls get 503: audit-fail-closed.e2e-spec.ts).
    const auditDir = mkdtempSync(join(tmpdir(), 'scopedb-ql-audit-'));

    beforeAll(async () => {
      sut = await startTestApp({
        AUTH_ISSUER: issuer.url,
        AUDIT_DATABASE_URL: `sqlite:${join(auditDir, 'audit.sqlite')}`,
        QUERY_WORKERS: '1',
        WRITE_TIMEOUT_MS: '1000',
        DATABASE_BUSY_TIMEOUT_MS: '200',
        SQL_QUEUE_TIMEOUT_MS: '3000',
      });
      client = toolClient(sut.mcpUrl, issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES }));
      await client.ok('apply_migration', {
        name: 'ql_counters',
        sql: 'CREATE TABLE ql_counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)',
      });
      await client.ok('execute', {
        sql: 'INSERT INTO ql_counters (id, value) VALUES (1, 0), (2, 0)',
      });
    });
    afterAll(async () => {
      await sut.close();
      rmSync(auditDir, { recursive: true, force: true });
    });

    it('queues calls behind the busy worker for up to SQL_QUEUE_TIMEOUT_MS; each deadline counts from when a worker takes the call', async () => {
      client.settled.length = 0;
      // Wide margins between the steps: calls sent a few ms apart could reach a loaded server in
      // either order, and the late call must be refused well before the second runaway ends.
      const first = client.timed('first runaway', 'query', { sql: RUNAWAY, timeout_ms: 1000 });
      await sleep(300); // so that the first runaway holds the only worker
      // Function calls: workers' work (a key lookup would be answered inline, queueing for none).
      const patient = client.timed('patient quick', 'query', {
        sql: 'SELECT abs(7) AS seven',
        timeout_ms: 500,
      });
      await sleep(100); // in this order: one principal's calls are served first come, first served
      const second = client.timed('second runaway', 'query', { sql: RUNAWAY, timeout_ms: 5000 });
      await sleep(100);
      const late = client.timed('late quick', 'query', { sql: 'SELECT abs(8) AS eight' });

      const results = await Promise.all([first, patient, second, late]);

      const [cutFirst, served, cutSecond, refused] = results.map(({ result }) => result);
      expect(textOf(cutFirst)).toMatch(/^Error \[TIMEOUT\]: .*after running 1000 ms \(timeout_ms;/);
      // Waited 700 ms and more for the worker (its replacement), more than its own 500 ms, then
      // ran within them.
      expect(served.structuredContent).toMatchObject({ rows: [[7]] });
      // Behind the second runaway for longer than SQL_QUEUE_TIMEOUT_MS: refused, never run.
      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toBe(
        'Error [QUEUE_TIMEOUT]: Waited 3000 ms for a free database worker (SQL_QUEUE_TIMEOUT_MS); nothing was run. Every worker is busy: try again shortly.',
      );
      // Its deadline counted from the worker; the wait before it is reported apart.
      const waited = /it waited (\d+) ms for a free database worker/.exec(textOf(cutSecond));
      expect(Number(waited?.[1])).toBeGreaterThanOrEqual(500);
      expect(client.settled).toEqual([
        'first runaway',
        'patient quick',
        'late quick',
        'second runaway',
      ]);
    });

    it('cuts a runaway write at WRITE_TIMEOUT_MS, rolls it back and releases the write lock', async () => {
      const before = counters();

      const started = performance.now();
      const cut = await client.call('execute', {
        sql: `UPDATE ql_counters SET value = (${RUNAWAY})`,
      });
      const ms = performance.now() - started;

      expect(cut.isError).toBe(true);
      expect(textOf(cut)).toMatch(/^Error \[TIMEOUT\]: .*1000 ms/);
      expect(ms).toBeGreaterThanOrEqual(1000);
      expect(ms).toBeLessThan(5000);
      expect(counters()).toEqual(before);
      const next = await client.ok('execute', { sql: 'UPDATE ql_counters SET value = value + 1' });
      expect(next).toMatchObject({ affected_rows: 2 });
      expect(walCheckpointBlocked(sut.databasePath)).toBe(false);
    });

    it('answers a write on a locked database with SQLITE_BUSY, and writes once the lock is gone', async () => {
      const locker = new Database(sut.databasePath, { fileMustExist: true });
      const before = counters();
      let busy: ToolResult;
      try {
        locker.exec('BEGIN IMMEDIATE');

        busy = await client.call('execute', { sql: 'UPDATE ql_counters SET value = 100' });
      } finally {
        if (locker.inTransaction) locker.exec('ROLLBACK');
        locker.close();
      }

      expect(busy.isError).toBe(true);
      expect(textOf(busy)).toMatch(/^Error \[SQLITE_BUSY\]: /);
      expect(counters()).toEqual(before);
      const after = await client.ok('execute', { sql: 'UPDATE ql_counters SET value = 100' });
      expect(after).toMatchObject({ affected_rows: 2 });
      expect(counters()).toEqual([
        { id: 1, value: 100 },
        { id: 2, value: 100 },
      ]);
    });
  });
});
