import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FactoryProvider } from '@nestjs/common';
import type Database from 'better-sqlite3';
import { DataSource } from 'typeorm';
import { AuditDatabase } from '../audit/audit-database.js';
import { internalConfig } from '../config/configuration.js';
import type { SqliteInternalSettings } from '../config/settings.js';
import { messageOf } from '../mcp/tool-context.js';
import { InternalStore1766000000000 } from './migrations/1766000000000-internal-store.js';
import { STATE_TABLE, STORE_MIGRATIONS_TABLE } from './store-tables.js';

/**
 * ScopeDB's own SQLite file (INTERNAL_DATABASE_URL): the migrations ledger, bookkeeping and, by
 * default, the audit log. No tool connection opens it: the SQL workers and the inline reader are
 * given the application database's path only, and ATTACH is refused. Its writes are synchronous
 * transactions on one connection, so none holds the write lock across an await.
 */
export class InternalDatabase {
  constructor(
    readonly dataSource: DataSource,
    readonly path: string,
  ) {}

  get connection(): Database.Database {
    return (this.dataSource.driver as unknown as { databaseConnection: Database.Database })
      .databaseConnection;
  }

  state(key: string): string | undefined {
    return this.connection
      .prepare<[string], string>(`SELECT value FROM "${STATE_TABLE}" WHERE key = ?`)
      .pluck()
      .get(key);
  }

  setState(key: string, value: string): void {
    this.connection
      .prepare(
        `INSERT INTO "${STATE_TABLE}" (key, value, updatedAt) VALUES (?, ?, ?) ` +
          'ON CONFLICT (key) DO UPDATE SET value = excluded.value, updatedAt = excluded.updatedAt',
      )
      .run(key, value, new Date().toISOString());
  }
}

/** Opens the internal database and brings its schema up to date; fails start-up naming the file. */
export async function openInternalDataSource(
  settings: SqliteInternalSettings,
): Promise<DataSource> {
  mkdirSync(dirname(settings.path), { recursive: true });
  const source = new DataSource({
    type: 'better-sqlite3',
    database: settings.path,
    enableWAL: true,
    timeout: settings.busyTimeoutMs,
    // As the application database: WAL with NORMAL survives a process crash.
    prepareDatabase: (db: Database.Database) => {
      db.pragma('synchronous = NORMAL');
    },
    migrations: [InternalStore1766000000000],
    migrationsTableName: STORE_MIGRATIONS_TABLE,
    synchronize: false,
    logging: false,
  });
  try {
    await source.initialize();
    await source.runMigrations({ transaction: 'all' });
    return source;
  } catch (error) {
    if (source.isInitialized) await source.destroy();
    throw new Error(
      `the internal database (INTERNAL_DATABASE_URL=sqlite:${settings.path}) could not be opened: ${messageOf(error)}`,
      { cause: error },
    );
  }
}

export const internalDatabaseProvider: FactoryProvider<InternalDatabase> = {
  provide: InternalDatabase,
  // After the audit database: by default both are this file, and TypeORM's migrations of one
  // would hold its write lock while the other's wait on the same thread.
  inject: [internalConfig.KEY, AuditDatabase],
  // Imported only while the internal database is a SQLite file.
  useFactory: async (cfg: SqliteInternalSettings) =>
    new InternalDatabase(await openInternalDataSource(cfg), cfg.path),
};
