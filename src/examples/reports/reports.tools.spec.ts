import Database from 'better-sqlite3';
import { REVENUE_BY_MONTH_ALL, SALES_FIXTURE } from '../../../test/support/sales-fixture.js';
import { startToolHarness, type ToolHarness } from '../../../test/support/tool-harness.js';
import { ReportsTools } from './reports.tools.js';

// The fast way to test a tool: the whole app in-process (real SQLite files, engine, audit), no
// HTTP. test/reports.e2e-spec.ts covers the same module over HTTP with real tokens.
describe(ReportsTools.name, () => {
  let sut: ToolHarness;

  beforeAll(async () => {
    sut = await startToolHarness({ REPORTS_EXAMPLE: 'true' });
    const db = new Database(sut.databasePath);
    try {
      for (const statement of SALES_FIXTURE) db.exec(statement);
    } finally {
      db.close();
    }
  });
  afterAll(() => sut.close());

  it('declares its tools under reports:read, with the module that declared the scope', () => {
    expect(sut.registry.scopes().find((scope) => scope.name === 'reports:read')).toEqual({
      name: 'reports:read',
      module: 'reports',
      title: 'Read sales reports',
      description: 'Run the reviewed sales reports (revenue by month, top customers), nothing else',
      tools: ['revenue_by_month', 'top_customers'],
    });
  });

  describe('revenue_by_month', () => {
    it('sums each month, leaving cancelled orders out', async () => {
      expect(await sut.ok('revenue_by_month', {})).toEqual({
        months: REVENUE_BY_MONTH_ALL,
        truncated: false,
      });
    });

    it('takes a period: from included, to left out', async () => {
      expect(
        await sut.ok('revenue_by_month', { from: '2026-02-01', to: '2026-03-01' }),
      ).toMatchObject({ months: [{ month: '2026-02', orders: 2, revenue_cents: 11000 }] });
    });

    it('refuses an empty period and a malformed day, before any SQL runs', async () => {
      expect(await sut.refused('revenue_by_month', { from: '2026-03-01', to: '2026-02-01' })).toBe(
        'Error: The period is empty: from (2026-03-01) must come before to (2026-02-01).',
      );
      expect(await sut.refused('revenue_by_month', { from: '2026-3-1' })).toBe(
        'Input validation error: Invalid arguments for tool revenue_by_month: from: a day, YYYY-MM-DD',
      );
    });
  });

  describe('top_customers', () => {
    it('ranks by revenue, ties by id, at most limit', async () => {
      expect(await sut.ok('top_customers', { limit: 1 })).toEqual({
        customers: [{ id: 1, name: 'Ada', country: 'FR', orders: 2, revenue_cents: 7000 }],
      });
      expect(await sut.ok('top_customers', { from: '2026-02-01', to: '2026-03-01' })).toMatchObject(
        {
          customers: [
            { name: 'Ben', revenue_cents: 6000 },
            { name: 'Ada', revenue_cents: 5000 },
          ],
        },
      );
    });
  });

  it('is refused without reports:read, even to a holder of every database scope', async () => {
    expect(await sut.refused('top_customers', {}, ['db:query', 'db:modify', 'db:admin'])).toBe(
      'Forbidden: The tool top_customers requires the scope reports:read',
    );
  });

  it('records each call with the statement it ran, a hash of its parameters and its rows', async () => {
    await sut.ok('top_customers', { limit: 2 });
    const record = sut.auditRows().at(-1);
    expect(record).toMatchObject({
      outcome: 'success',
      tool: 'top_customers',
      subject: 'harness-user',
      requiredScopes: 'reports:read',
      reason: null,
      tableName: null,
      sqlText: expect.stringContaining('ORDER BY revenue_cents DESC, c.id') as string,
      paramsHash: expect.stringMatching(/^[0-9a-f]{64}$/) as string,
      rowCount: 2,
    });
  });
});
