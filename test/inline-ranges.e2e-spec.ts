import Database from 'better-sqlite3';
import { SqlExecutor } from '../src/database/sqlite/sql-executor.js';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { textOf, type ToolClient, toolClient } from './support/tool-client.js';

// Pages of a key range (issue 14, workload b) run inline on the main thread once a worker has
// judged their program bounded: one scan under a constant LIMIT that returns and counts every row
// it visits. Every other shape, and every attack on this one, stays with the workers, under their
// deadline. Which path answered shows with the only worker busy: the main thread answers at once,
// a worker's call waits for it (QUEUE_TIMEOUT).

const ALL_SCOPES = 'db:query db:modify db:admin';
/** Never ends on its own: only the deadline stops it. */
const RUNAWAY =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c';
const ROWS = 1_000_000;
const PAGE = 'SELECT * FROM ir_items WHERE id > ? ORDER BY id LIMIT 50';
const LOOKUP = 'SELECT name FROM ir_items WHERE id = ?';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The pages that run inline: [what, sql, params, max_rows]. */
const BOUNDED: [string, string, unknown[], number][] = [
  ['a page of workload b', PAGE, [123_456], 100],
  ['a page backwards', 'SELECT * FROM ir_items WHERE id < ? ORDER BY id DESC LIMIT 50', [500], 100],
  [
    'a page with both ends',
    'SELECT id, sku FROM ir_items WHERE id > ? AND id <= ? LIMIT 50',
    [10, 30],
    100,
  ],
  [
    'a page of an index range',
    'SELECT id, sku FROM ir_items WHERE sku > ? ORDER BY sku LIMIT 20',
    ['SKU-5'],
    100,
  ],
  ['a page cut by max_rows', PAGE, [0], 10],
];

/** Shapes that a worker answers, never the main thread: [what, sql, params]. */
const DECLINED: [string, string, unknown[]][] = [
  // Visits rows without returning them: may walk the whole table for its 50.
  [
    'a range with a filter',
    'SELECT * FROM ir_items WHERE id > ? AND name = ? LIMIT 50',
    [0, 'nowhere'],
  ],
  ['a LIMIT from a parameter', 'SELECT * FROM ir_items WHERE id > ? LIMIT ?', [0, 50]],
  ['a LIMIT over 1000', 'SELECT id FROM ir_items WHERE id > ? LIMIT 1001', [0]],
  ['an OFFSET', 'SELECT * FROM ir_items WHERE id > ? ORDER BY id LIMIT 50 OFFSET 1000', [0]],
  [
    'ORDER BY an unindexed column',
    'SELECT * FROM ir_items WHERE id > ? ORDER BY name LIMIT 50',
    [999_900],
  ],
  ['DISTINCT', 'SELECT DISTINCT price FROM ir_items WHERE id > ? LIMIT 50', [999_000]],
  [
    'GROUP BY',
    'SELECT price, count(*) AS n FROM ir_items WHERE id > ? GROUP BY price LIMIT 50',
    [999_000],
  ],
  [
    'a join',
    'SELECT a.id FROM ir_items a JOIN ir_items b ON b.id = a.id + 1 WHERE a.id > ? LIMIT 50',
    [0],
  ],
  [
    'a CTE',
    'WITH r AS MATERIALIZED (SELECT * FROM ir_items WHERE id > ? LIMIT 50) SELECT * FROM r',
    [0],
  ],
  [
    'a window function',
    'SELECT id, row_number() OVER (ORDER BY id) AS n FROM ir_items WHERE id > ? LIMIT 50',
    [999_000],
  ],
  ['a function per row', 'SELECT upper(name) AS n FROM ir_items WHERE id > ? LIMIT 50', [0]],
];

describe('pages of a key range on the main thread', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let client: ToolClient;
  /** Another principal: one principal's runaway holds the only worker, not its fair share of two. */
  let other: ToolClient;
  /** The rows of `sql` read from the file directly, as the query tool renders them. */
  const direct = (sql: string, params: unknown[]) => {
    const db = new Database(sut.databasePath, { readonly: true, fileMustExist: true });
    try {
      return db
        .prepare(sql)
        .raw(true)
        .all(...params);
    } finally {
      db.close();
    }
  };

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp(
      { AUTH_ISSUER: issuer.url, QUERY_WORKERS: '1', SQL_QUEUE_TIMEOUT_MS: '1000' },
      {
        prepareDatabase: (path) => {
          const db = new Database(path);
          db.exec(`
            CREATE TABLE ir_items (id INTEGER PRIMARY KEY, sku TEXT UNIQUE, name TEXT, price REAL);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
            INSERT INTO ir_items SELECT i, 'SKU-' || i, 'item ' || i, (i % 100) * 0.5 FROM n;
            CREATE TABLE ir_docs (id INTEGER PRIMARY KEY, body TEXT);
          `);
          // Three values of 2 MB: more than an inline read may read (1 MB) before it pauses.
          const insert = db.prepare('INSERT INTO ir_docs VALUES (?, ?)');
          for (let id = 1; id <= 3; id++) insert.run(id, 'x'.repeat(2 * 1024 * 1024));
          db.close();
        },
      },
    );
    client = toolClient(sut.mcpUrl, issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES }));
    other = toolClient(
      sut.mcpUrl,
      issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES, claims: { sub: 'ir-other' } }),
      { settled: client.settled },
    );
  }, 60_000);
  beforeEach(async () => {
    await sut.app.get(SqlExecutor).ready(); // a worker cut at its deadline has been replaced
  });
  afterAll(async () => {
    await sut?.close();
    await issuer.close();
  });

  it.each(BOUNDED)(
    'answers %s inline with the rows a worker gives',
    async (_what, sql, params, maxRows) => {
      // The first call is a worker's (it judges the text); the second, the main thread's (the
      // next test shows which path answers).
      const args = { sql, params, max_rows: maxRows };
      const byWorker = await client.ok('query', args);
      const inline = await client.ok('query', args);

      expect({ ...inline, elapsed_ms: 0 }).toEqual({ ...byWorker, elapsed_ms: 0 });
      const rows = direct(sql, params);
      expect(inline.rows).toEqual(rows.slice(0, maxRows));
      expect(inline.truncated).toBe(rows.length > maxRows);
    },
  );

  it('answers pages inline while the only worker is busy; every other shape waits for it', async () => {
    // Each text judged by a worker first, as any first call is.
    for (const [, sql, params] of [...BOUNDED, ...DECLINED])
      await client.ok('query', { sql, params, timeout_ms: 30_000 });
    await client.ok('query', { sql: LOOKUP, params: [1] });
    client.settled.length = 0;
    const runaway = other.timed('runaway', 'query', { sql: RUNAWAY, timeout_ms: 6000 });
    await sleep(300); // the runaway holds the only worker

    const declined = DECLINED.map(([what, sql, params]) =>
      client.timed(what, 'query', { sql, params }),
    );
    const pages = [];
    for (const [what, sql, params, maxRows] of BOUNDED)
      pages.push(await client.timed(what, 'query', { sql, params, max_rows: maxRows }));
    const waited = await Promise.all(declined);
    const cut = await runaway;

    expect(pages.map(({ result }) => result.structuredContent?.rows)).toEqual(
      BOUNDED.map(([, sql, params, maxRows]) => direct(sql, params).slice(0, maxRows)),
    );
    expect(client.settled.slice(0, BOUNDED.length)).toEqual(BOUNDED.map(([what]) => what));
    expect(
      Object.fromEntries(waited.map(({ result }, k) => [DECLINED[k][0], textOf(result)])),
    ).toEqual(
      Object.fromEntries(
        DECLINED.map(([what]) => [
          what,
          expect.stringMatching(/^Error \[QUEUE_TIMEOUT\]: Waited 1000 ms .*nothing was run/),
        ]),
      ),
    );
    expect(textOf(cut.result)).toMatch(/^Error \[TIMEOUT\]/);
  }, 30_000);

  it(`runs a filtered range over ${ROWS} rows in a worker, cut at its deadline`, async () => {
    const sql = 'SELECT * FROM ir_items WHERE id > ? AND name = ? ORDER BY id LIMIT 50';
    // Judged first: a worker reads all the rows (none matches) and admits nothing.
    await expect(
      client.ok('query', { sql, params: [0, 'nowhere'], timeout_ms: 30_000 }),
    ).resolves.toMatchObject({ rows: [] });

    // Reading a million rows takes far longer than 1 ms, however fast the machine.
    const cut = await client.call('query', { sql, params: [0, 'nowhere'], timeout_ms: 1 });

    expect(textOf(cut)).toMatch(/^Error \[TIMEOUT\]: .*1 ms/);
  });

  it('answers key lookups and pages on the main thread while a worker scans a filtered range', async () => {
    const sql = 'SELECT * FROM ir_items WHERE id > ? AND price = ? ORDER BY id LIMIT 50';
    await client.ok('query', { sql, params: [0, -1], timeout_ms: 30_000 }); // judged
    client.settled.length = 0;
    let answered = false;
    const scan = client
      .timed('scan', 'query', { sql, params: [0, -1], timeout_ms: 30_000 })
      .finally(() => (answered = true));

    let served = 0;
    while (!answered) {
      const id = 1 + ((served * 7919) % ROWS);
      const lookup = await other.timed('lookup', 'query', { sql: LOOKUP, params: [id] });
      expect(lookup.result.structuredContent).toMatchObject({ rows: [[`item ${id}`]] });
      const page = await other.ok('query', { sql: PAGE, params: [id] });
      expect(page).toMatchObject({ row_count: Math.min(50, ROWS - id) });
      served++;
    }
    const { result } = await scan;

    expect(client.settled[0]).toBe('lookup');
    expect(result.structuredContent).toMatchObject({ rows: [] });
  });

  // Last: the pause it causes lasts a minute.
  it('stops a page of 2 MB values at its first row, answers it from a worker and pauses inline reads', async () => {
    const sql = 'SELECT id, body FROM ir_docs WHERE id > ? ORDER BY id LIMIT 50';
    const byWorker = await client.ok('query', { sql, params: [0] }); // judged: bounded
    const declined = await client.ok('query', { sql, params: [0] }); // inline: stopped, declined

    expect({ ...declined, elapsed_ms: 0 }).toEqual({ ...byWorker, elapsed_ms: 0 });
    expect(declined).toMatchObject({ row_count: 3, truncation_reason: 'cell_size' });
    // Paused: with the only worker busy, even a key lookup waits for it now.
    const runaway = other.call('query', { sql: RUNAWAY, timeout_ms: 3000 });
    await sleep(300);
    const lookup = await client.call('query', { sql: LOOKUP, params: [1] });
    await runaway;

    expect(textOf(lookup)).toMatch(/^Error \[QUEUE_TIMEOUT\]/);
  }, 30_000);
});
