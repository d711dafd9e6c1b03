import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource, type MigrationInterface } from 'typeorm';
import { createTestDatabase, type TestPostgresDatabase } from '../../../test/support/postgres.js';
import { auditDataSourceOptions } from '../audit-database.js';
import { AuditRecord, COMPLETION_COLUMNS } from '../audit-record.entity.js';
import { AuditLog1765000000000 } from './1765000000000-audit-log.js';
import { AuditIntents1765100000000, FIXED_COLUMNS } from './1765100000000-audit-intents.js';

const REFUSED = 'audit_log is append-only';

/** What the triggers must let through, and refuse, once the migration has run. */
async function expectOnlyCompletions(source: DataSource): Promise<void> {
  const q = (sql: string) => (source.options.type === 'postgres' ? sql : sql.replace(/"/g, ''));
  const insert = async (outcome: string) => {
    await source.query(
      q(
        `INSERT INTO audit_log ("time", outcome, "sqlText", "tableName") VALUES ('2026-01-01T00:00:00.000Z', '${outcome}', 'INSERT 1', 't')`,
      ),
    );
    const [{ id }] = await source.query<{ id: number }[]>('SELECT max(id) AS id FROM audit_log');
    return id;
  };
  const row = async (id: number) =>
    (
      await source.query<unknown[]>(
        q('SELECT outcome, reason, "rowCount" FROM audit_log WHERE id = ') + id,
      )
    )[0];

  const pending = await insert('pending');
  // Completing a pending record: outcome, reason, rowCount, durationMs, once.
  await source.query(
    q(`UPDATE audit_log SET outcome = 'success', "rowCount" = 3, "durationMs" = 4 WHERE id = `) +
      pending,
  );
  expect(await row(pending)).toEqual({ outcome: 'success', reason: null, rowCount: 3 });
  for (const sql of [
    `UPDATE audit_log SET outcome = 'tool_error' WHERE id = ${pending}`,
    `UPDATE audit_log SET "rowCount" = 9 WHERE id = ${pending}`,
  ])
    await expect(source.query(q(sql))).rejects.toThrow(REFUSED);

  const other = await insert('pending');
  for (const sql of [
    // Anything else of a pending record.
    `UPDATE audit_log SET outcome = 'interrupted', "sqlText" = 'forged' WHERE id = ${other}`,
    `UPDATE audit_log SET outcome = 'interrupted', "tableName" = 'x' WHERE id = ${other}`,
    `UPDATE audit_log SET outcome = 'success', subject = 'someone' WHERE id = ${other}`,
    `UPDATE audit_log SET outcome = 'success', id = 999 WHERE id = ${other}`,
    // To an outcome that is not a completion.
    `UPDATE audit_log SET outcome = 'refused_scope' WHERE id = ${other}`,
    `UPDATE audit_log SET reason = 'still pending' WHERE id = ${other}`,
    // Records that are not pending, and removal.
    `UPDATE audit_log SET outcome = 'interrupted' WHERE id = ${await insert('success')}`,
    `DELETE FROM audit_log WHERE id = ${other}`,
  ])
    await expect(source.query(q(sql))).rejects.toThrow(REFUSED);
  expect(await row(other)).toEqual({ outcome: 'pending', reason: null, rowCount: null });

  await source.query(
    q(`UPDATE audit_log SET outcome = 'interrupted', reason = 'crashed' WHERE id = `) + other,
  );
  expect(await row(other)).toEqual({ outcome: 'interrupted', reason: 'crashed', rowCount: null });
}

async function migrated(
  options: ConstructorParameters<typeof DataSource>[0],
  migrations: (new () => MigrationInterface)[],
): Promise<DataSource> {
  const source = new DataSource({ ...options, migrations, entities: [AuditRecord] });
  await source.initialize();
  await source.runMigrations();
  return source;
}

describe(AuditIntents1765100000000.name, () => {
  it('leaves every column of the record either completable or fixed by the triggers', async () => {
    const source = new DataSource({
      type: 'better-sqlite3',
      database: ':memory:',
      entities: [AuditRecord],
    });
    await source.initialize();
    try {
      const columns = source.getMetadata(AuditRecord).columns.map((c) => c.propertyName);
      expect([...FIXED_COLUMNS, ...COMPLETION_COLUMNS].sort()).toEqual(columns.sort());
    } finally {
      await source.destroy();
    }
  });

  describe('in SQLite', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'scopedb-intents-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('lets only a pending record be completed, once', async () => {
      const source = await migrated({ type: 'better-sqlite3', database: join(dir, 'db.sqlite') }, [
        AuditLog1765000000000,
        AuditIntents1765100000000,
      ]);
      try {
        await expectOnlyCompletions(source);
      } finally {
        await source.destroy();
      }
    });

    it('is undone by down(): the column goes, the table is append-only again', async () => {
      const source = await migrated(
        auditDataSourceOptions({ type: 'sqlite', path: join(dir, 'a.sqlite'), busyTimeoutMs: 100 }),
        [AuditLog1765000000000, AuditIntents1765100000000],
      );
      try {
        await source.undoLastMigration();
        const columns = await source.query<{ name: string }[]>('PRAGMA table_info(audit_log)');
        expect(columns.map((c) => c.name)).not.toContain('tableName');
        await source.query(
          "INSERT INTO audit_log (time, outcome) VALUES ('2026-01-01T00:00:00.000Z', 'pending')",
        );
        await expect(source.query("UPDATE audit_log SET outcome = 'success'")).rejects.toThrow(
          REFUSED,
        );
      } finally {
        await source.destroy();
      }
    });
  });

  describe('in PostgreSQL', () => {
    let postgres: TestPostgresDatabase;
    beforeAll(async () => {
      postgres = await createTestDatabase('scopedb_intents');
    });
    afterAll(() => postgres.drop());

    it('lets only a pending record be completed, once, row by row; TRUNCATE still refused', async () => {
      const source = await migrated(
        auditDataSourceOptions({ type: 'postgres', url: postgres.url, redactedUrl: postgres.url }),
        [AuditLog1765000000000, AuditIntents1765100000000],
      );
      try {
        await expectOnlyCompletions(source);
        await expect(source.query('TRUNCATE audit_log')).rejects.toThrow(REFUSED);

        await source.undoLastMigration();
        await expect(
          source.query("UPDATE audit_log SET outcome = 'x' WHERE false"),
        ).rejects.toThrow(REFUSED);
      } finally {
        await source.destroy();
      }
    });
  });
});
