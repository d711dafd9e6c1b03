import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { jsonBytes } from './support/json-size.js';
import { readSqlite } from './support/sqlite-files.js';
import { textOf, type ToolClient, toolClient } from './support/tool-client.js';

// Issue 9, "Bounded cost for every caller", for the rows the write tools return: a red team
// returned 500 rows of 60 000 characters from one `execute ... RETURNING` (60 MB answered, the
// main process ~490 MiB larger). With the default QUERY_MAX_RESULT_BYTES and QUERY_MAX_CELL_CHARS.

const ALL_SCOPES = 'db:query db:modify db:admin';
const MIB = 1024 * 1024;
const MAX_RESULT_BYTES = 262_144;
/** A 60 000-character value, QUERY_MAX_CELL_CHARS (2000) of it shown. */
const PAD = `${'x'.repeat(2000)}…[58000 more characters]`;
const RED_TEAM = "UPDATE rt_big SET n = n + 1 RETURNING printf('%.*c', 60000, 'x') AS pad";

describe('rows a write returns', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let client: ToolClient;
  /** The values of n in rt_big, with how many rows hold each. */
  const counts = () =>
    readSqlite(sut.databasePath, (db) =>
      db.prepare('SELECT n, count(*) AS rows FROM rt_big GROUP BY n ORDER BY n').all(),
    );

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp({ AUTH_ISSUER: issuer.url });
    client = toolClient(sut.mcpUrl, issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES }));
    await client.ok('apply_migration', {
      name: 'returned_rows',
      sql: `
        CREATE TABLE rt_big (id INTEGER PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE rt_docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL DEFAULT (printf('%.*c', 60000, 'x')));
      `,
    });
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
  });
  beforeEach(async () => {
    await client.ok('execute', { sql: 'DELETE FROM rt_big' });
    await client.ok('execute', {
      sql: 'WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500) INSERT INTO rt_big (id) SELECT i FROM s',
    });
  });

  it.each([
    ['changes every row', false, [{ n: 1, rows: 500 }]],
    ['rolls a dry run back', true, [{ n: 0, rows: 500 }]],
  ])(
    "answers the red team's 500 rows x 60 000 characters of RETURNING in under 1 MiB, and %s",
    async (_case, dryRun, after) => {
      const rssBefore = process.memoryUsage().rss;

      const { response, result } = await client.send('execute', {
        sql: RED_TEAM,
        dry_run: dryRun,
      });

      expect(Buffer.byteLength(response.body)).toBeLessThan(MIB);
      expect(result.structuredContent).toMatchObject({
        affected_rows: 500,
        dry_run: dryRun,
        truncated: true,
        truncation_reason: 'byte_budget',
      });
      const rows = result.structuredContent!.rows as { pad: string }[];
      expect(rows.length).toBeGreaterThan(0);
      expect(rows).toEqual(Array.from(rows, () => ({ pad: PAD })));
      expect(jsonBytes(rows)).toBeLessThanOrEqual(MAX_RESULT_BYTES);
      expect(textOf(result).split('\n').slice(0, 2)).toEqual([
        dryRun ? 'Dry run: 500 rows would be affected; nothing was changed.' : '500 rows affected.',
        `${dryRun ? 'Preview' : 'Returned'} (TRUNCATED: only the first ${rows.length} rows, those that fit the result size budget (return fewer or shorter columns to see more); the count above covers every row):`,
      ]);
      expect(counts()).toEqual(after);
      // The red team measured ~490 MiB of growth for this call.
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(128 * MIB);
    },
  );

  it('previews the first 20 rows of an update_rows dry run, and says so', async () => {
    const result = await client.call('update_rows', {
      table: 'rt_big',
      set: { n: 7 },
      where: [{ column: 'id', op: '>', value: 0 }],
      expected_max_rows: 500,
      dry_run: true,
    });

    expect(result.structuredContent).toEqual({
      affected_rows: 500,
      dry_run: true,
      rows: Array.from({ length: 20 }, (_row, i) => ({ id: i + 1, n: 7 })),
      truncated: true,
      truncation_reason: 'max_rows',
      last_insert_rowid: null,
    });
    expect(textOf(result).split('\n')[1]).toBe(
      'Preview (TRUNCATED: only the first 20 rows, the most this tool returns; the count above covers every row):',
    );
    expect(counts()).toEqual([{ n: 0, rows: 500 }]);
  });

  it('inserts 500 rows with 60 000-character defaults, returning in under 1 MiB what fits', async () => {
    await client.ok('execute', { sql: 'DELETE FROM rt_docs' });

    const { response, result } = await client.send('insert_rows', {
      table: 'rt_docs',
      rows: Array.from({ length: 500 }, () => ({})),
      returning: true,
    });

    expect(Buffer.byteLength(response.body)).toBeLessThan(MIB);
    expect(result.structuredContent).toMatchObject({
      affected_rows: 500,
      truncated: true,
      truncation_reason: 'byte_budget',
    });
    const rows = result.structuredContent!.rows as unknown[];
    expect(rows.length).toBeGreaterThan(0);
    expect(rows).toEqual(Array.from(rows, (_row, i) => ({ id: i + 1, body: PAD })));
    expect(jsonBytes(rows)).toBeLessThanOrEqual(MAX_RESULT_BYTES);
    expect(
      readSqlite(sut.databasePath, (db) =>
        db.prepare('SELECT count(*) AS n, min(length(body)) AS shortest FROM rt_docs').get(),
      ),
    ).toEqual({ n: 500, shortest: 60_000 });
  });
});
