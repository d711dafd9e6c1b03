import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { lockSqlite } from '../../test/support/audit-outage.js';
import { parseExposition } from '../../test/support/metrics.js';
import { type AuditSettings, readDatabaseSettings } from '../config/settings.js';
import { Metrics } from '../metrics/metrics.service.js';
import { AuditDatabase, openAuditDataSource } from './audit-database.js';
import { AuditUnavailableError } from './audit-unavailable.js';
import { AuditService, INTERRUPTED_REASON } from './audit.service.js';

interface Row {
  id: number;
  outcome: string;
  reason: string | null;
  rowCount: number | null;
  sqlText: string | null;
  tableName: string | null;
  requestId: string | null;
}

const WRITE_TIMEOUT_MS = 100;
const GRACE_MS = 100;

describe(AuditService.name, () => {
  let dir: string;
  let path: string;
  let sut: AuditService;
  let metrics: Metrics;
  /** The metrics as a scrape would read them now. */
  const scrapeNow = async () => parseExposition(await metrics.exposition());

  async function start(failOpen = false): Promise<AuditService> {
    const settings: AuditSettings = {
      database: { type: 'sqlite', path, busyTimeoutMs: 50 },
      setting: 'AUDIT_DATABASE_URL',
      failOpen,
      intentGraceMs: GRACE_MS,
    };
    const source = await openAuditDataSource(settings);
    metrics = new Metrics();
    return new AuditService(
      new AuditDatabase(source),
      settings,
      { ...readDatabaseSettings({}), writeTimeoutMs: WRITE_TIMEOUT_MS },
      metrics,
    );
  }
  /** The store as another connection sees it. */
  function rows(): Row[] {
    const db = new Database(path, { readonly: true });
    try {
      return db.prepare<[], Row>('SELECT * FROM audit_log ORDER BY id').all();
    } finally {
      db.close();
    }
  }
  const pastDeadline = () =>
    new Promise((wait) => setTimeout(wait, WRITE_TIMEOUT_MS + GRACE_MS + 50));

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-audit-service-'));
    path = join(dir, 'audit.sqlite');
    sut = await start();
  });
  afterEach(async () => {
    await sut.beforeApplicationShutdown();
    await sut.onApplicationShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits a record before its promise resolves', async () => {
    await sut.record({ outcome: 'success', tool: 'query', sql: 'SELECT 1', requestId: 'r1' });

    expect(rows()).toEqual([
      expect.objectContaining({ outcome: 'success', sqlText: 'SELECT 1', requestId: 'r1' }),
    ]);
  });

  it('reports the records waiting for their group commit, and counts each decision once committed', async () => {
    metrics.toolsRegistered(['query', 'insert_rows']);
    const pending = [
      sut.record({ outcome: 'success', tool: 'query', durationMs: 2 }),
      sut.record({ outcome: 'refused_scope', tool: 'drop_everything' }),
      sut.record({ outcome: 'refused_no_token' }),
    ];
    const queued = sut.queueDepth;
    const scrapedBefore = await scrapeNow();
    await Promise.all(pending);
    const intent = await sut.begin({ tool: 'insert_rows' });
    const scrapedPending = await scrapeNow();
    await sut.complete(intent, { outcome: 'tool_error', durationMs: 5 });
    const scraped = await scrapeNow();

    expect([queued, scrapedBefore.value('scopedb_audit_queue_depth'), sut.queueDepth]).toEqual([
      3, 3, 0,
    ]);
    expect(
      scrapedPending.value('scopedb_tool_calls_total', {
        tool: 'insert_rows',
        outcome: 'tool_error',
      }),
    ).toBe(0);
    expect({
      query: scraped.value('scopedb_tool_calls_total', { tool: 'query', outcome: 'success' }),
      // A name outside the registry is never a label.
      unknown: scraped.value('scopedb_tool_calls_total', {
        tool: 'unknown',
        outcome: 'refused_scope',
      }),
      write: scraped.value('scopedb_tool_calls_total', {
        tool: 'insert_rows',
        outcome: 'tool_error',
      }),
      timed: scraped.value('scopedb_tool_call_duration_seconds_sum', { tool: 'query' }),
      scope: scraped.value('scopedb_refusals_total', { reason: 'scope' }),
      noToken: scraped.value('scopedb_refusals_total', { reason: 'no_token' }),
    }).toEqual({ query: 1, unknown: 1, write: 1, timed: 0.002, scope: 1, noToken: 1 });
    expect(scraped.text).not.toContain('drop_everything');
  });

  it("commits a write's intent as pending, then completes it once with its outcome", async () => {
    const intent = await sut.begin({ tool: 'insert_rows', table: 'people', requestId: 'w1' });

    expect(rows()).toEqual([
      expect.objectContaining({ id: intent.id, outcome: 'pending', tableName: 'people' }),
    ]);
    await sut.complete(intent, { outcome: 'success', rowCount: 2, durationMs: 3 });
    expect(rows()).toEqual([
      expect.objectContaining({
        id: intent.id,
        outcome: 'success',
        rowCount: 2,
        tableName: 'people',
      }),
    ]);
  });

  it('keeps an outcome that comes after its intent was marked interrupted, as a record of its own', async () => {
    const intent = await sut.begin({ tool: 'execute', sql: 'DELETE FROM t', requestId: 'w2' });
    // Another replica, seeing it past its deadline, marked it.
    const other = new Database(path);
    other.prepare("UPDATE audit_log SET outcome = 'interrupted' WHERE id = ?").run(intent.id);
    other.close();

    await sut.complete(intent, { outcome: 'success', rowCount: 1, durationMs: 5 });

    expect(rows()).toEqual([
      expect.objectContaining({ id: intent.id, outcome: 'interrupted' }),
      expect.objectContaining({
        outcome: 'success',
        requestId: 'w2',
        sqlText: 'DELETE FROM t',
        rowCount: 1,
        reason: `outcome of record #${intent.id}, which was marked interrupted before it came`,
      }),
    ]);
  });

  it('marks intents older than the write deadline and its grace interrupted, except those it still waits on', async () => {
    const left = await sut.begin({ tool: 'execute', requestId: 'left' });
    await sut.complete(left, { outcome: 'success', durationMs: 1 });
    const crashed = new Database(path);
    crashed
      .prepare(
        "INSERT INTO audit_log (time, outcome, requestId) VALUES ('2026-01-01T00:00:00.000Z', 'pending', 'crashed')",
      )
      .run();
    crashed.close();
    const running = await sut.begin({ tool: 'execute', requestId: 'running' });
    await pastDeadline();

    await sut.onApplicationBootstrap();

    expect(rows().map((row) => [row.requestId, row.outcome, row.reason])).toEqual([
      ['left', 'success', null],
      ['crashed', 'interrupted', INTERRUPTED_REASON],
      ['running', 'pending', null],
    ]);
    await sut.complete(running, { outcome: 'tool_error', reason: 'boom', durationMs: 1 });
    expect(rows()[2]).toMatchObject({ outcome: 'tool_error', reason: 'boom' });
  });

  describe('when the store cannot be written', () => {
    it('fails closed: rejects, then refuses at once, until a probe write gets through', async () => {
      await sut.record({ outcome: 'success', requestId: 'before' });
      const lock = lockSqlite(path);
      try {
        await expect(sut.record({ outcome: 'success', requestId: 'lost' })).rejects.toThrow(
          AuditUnavailableError,
        );
        expect(sut.writable).toBe(false);
        expect(sut.accepting).toBe(false);
        await expect(sut.begin({ tool: 'execute', requestId: 'not run' })).rejects.toThrow(
          /^the audit log cannot be written: database is locked$/,
        );
        expect(await sut.probe()).toBe(false);
      } finally {
        lock.release();
      }

      const scrapedDuring = await scrapeNow();
      expect(await sut.probe()).toBe(true);
      expect(sut.writable).toBe(true);
      await sut.record({ outcome: 'success', requestId: 'after' });
      const scrapedAfter = await scrapeNow();
      expect([
        scrapedDuring.value('scopedb_audit_writable'),
        scrapedAfter.value('scopedb_audit_writable'),
        // 'lost' and 'not run'; the probe is no record.
        scrapedAfter.value('scopedb_audit_write_failures_total'),
      ]).toEqual([0, 1, 2]);
      // The probe's write was rolled back: nothing but the committed records.
      expect(rows().map((row) => [row.id, row.requestId])).toEqual([
        [1, 'before'],
        [2, 'after'],
      ]);
    });

    it('with AUDIT_FAIL_OPEN, resolves anyway (the record goes to the log), and is not accepting records', async () => {
      await sut.onApplicationShutdown();
      sut = await start(true);
      const lock = lockSqlite(path);
      try {
        await expect(
          sut.record({ outcome: 'success', requestId: 'open' }),
        ).resolves.toBeUndefined();
        const intent = await sut.begin({ tool: 'execute', requestId: 'open-write' });
        expect(intent.id).toBeUndefined();
        expect(sut.writable).toBe(false);
        expect(sut.accepting).toBe(true);
      } finally {
        lock.release();
      }
      expect(rows()).toEqual([]);
    });
  });
});
