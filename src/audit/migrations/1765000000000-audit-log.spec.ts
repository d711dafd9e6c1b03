import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DataSource } from 'typeorm';
import { createTestDatabase, type TestPostgresDatabase } from '../../../test/support/postgres.js';
import { auditDataSourceOptions } from '../audit-database.js';
import { AuditLog1765000000000 } from './1765000000000-audit-log.js';

const INSERT = `INSERT INTO audit_log ("time", outcome) VALUES ('2026-01-01T00:00:00.000Z', 'success')`;

describe(AuditLog1765000000000.name, () => {
  /**
   * Migrates up, checks that a record goes in and that `refused` statements do not touch it, then
   * migrates down; `triggers` reads the table's triggers over a connection of the test's own.
   */
  async function upAndDown(
    source: DataSource,
    triggers: () => Promise<string[]>,
    expected: { triggers: string[]; refused: string[] },
  ): Promise<void> {
    await source.initialize();
    try {
      await source.runMigrations();
      await source.query(INSERT);

      expect((await triggers()).sort()).toEqual(expected.triggers);
      for (const sql of expected.refused)
        await expect(source.query(sql)).rejects.toThrow('audit_log is append-only');
      expect(await source.query('SELECT outcome FROM audit_log')).toEqual([{ outcome: 'success' }]);

      await source.undoLastMigration();

      expect(await triggers()).toEqual([]);
      const runner = source.createQueryRunner();
      try {
        expect(await runner.hasTable('audit_log')).toBe(false);
      } finally {
        await runner.release();
      }
    } finally {
      await source.destroy();
    }
  }

  describe('in SQLite', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'scopedb-audit-migration-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('creates the append-only table, and down() removes it with its triggers', async () => {
      const path = join(dir, 'audit.sqlite');
      const source = new DataSource({
        ...auditDataSourceOptions({ type: 'sqlite', path, busyTimeoutMs: 1000 }),
        migrations: [AuditLog1765000000000],
      });
      const triggers = () => {
        const db = new Database(path, { readonly: true });
        try {
          return Promise.resolve(
            db
              .prepare<[], string>(
                "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'audit_log'",
              )
              .pluck()
              .all(),
          );
        } finally {
          db.close();
        }
      };

      await upAndDown(source, triggers, {
        triggers: ['audit_log_no_delete', 'audit_log_no_update'],
        refused: ["UPDATE audit_log SET outcome = 'x'", 'DELETE FROM audit_log'],
      });
    });
  });

  describe('in PostgreSQL', () => {
    let postgres: TestPostgresDatabase;
    beforeAll(async () => {
      postgres = await createTestDatabase('scopedb_migration');
    });
    afterAll(() => postgres.drop());

    it('creates the append-only table, TRUNCATE refused too, and down() removes it with its function', async () => {
      const source = new DataSource({
        ...auditDataSourceOptions({
          type: 'postgres',
          url: postgres.url,
          redactedUrl: postgres.url,
        }),
        migrations: [AuditLog1765000000000],
      });
      const triggers = async () =>
        (
          await postgres.client.query<{ tgname: string }>(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('audit_log') AND NOT tgisinternal",
          )
        ).rows.map((row) => row.tgname);

      await upAndDown(source, triggers, {
        triggers: ['audit_log_no_delete', 'audit_log_no_truncate', 'audit_log_no_update'],
        refused: [
          "UPDATE audit_log SET outcome = 'x'",
          'DELETE FROM audit_log',
          'DELETE FROM audit_log WHERE false',
          'TRUNCATE audit_log',
        ],
      });
      const functions = await postgres.client.query(
        "SELECT 1 FROM pg_proc WHERE proname = 'audit_log_append_only'",
      );
      expect(functions.rowCount).toBe(0);
    });
  });
});
