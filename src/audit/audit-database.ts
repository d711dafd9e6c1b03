import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FactoryProvider } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type Database from 'better-sqlite3';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { auditConfig } from '../config/configuration.js';
import type { AuditDatabaseLocation, AuditSettings } from '../config/settings.js';
import { AUDIT_MIGRATIONS_TABLE } from '../database/internal-tables.js';
import { messageOf } from '../mcp/tool-context.js';
import { AuditRecord } from './audit-record.entity.js';
import { AuditLog1765000000000 } from './migrations/1765000000000-audit-log.js';
import { AuditIntents1765100000000 } from './migrations/1765100000000-audit-intents.js';

/** How long opening a PostgreSQL audit database may take before start-up fails, ms. */
const POSTGRES_CONNECT_TIMEOUT_MS = 10_000;
/**
 * Longest a PostgreSQL statement on the audit database may run, ms: a locked table or a stalled
 * server fails the write (and the call, fail closed) instead of holding every caller.
 */
const POSTGRES_STATEMENT_TIMEOUT_MS = 10_000;
/**
 * pg_advisory_lock key: replicas starting together migrate the audit database one at a time; the
 * migrations ledger's set-up takes it too, since both may create the internal schema.
 */
export const STORE_SETUP_LOCK_KEY = 7_265_044_001;

/**
 * The database the audit log lives in: the internal database (INTERNAL_DATABASE_URL) unless
 * AUDIT_DATABASE_URL names another; never the application database. Closed by AuditService.
 */
export class AuditDatabase {
  constructor(readonly dataSource: DataSource) {}

  /** The SQLite connection, for the synchronous group commit; undefined for PostgreSQL. */
  get sqliteConnection(): Database.Database | undefined {
    if (this.dataSource.options.type !== 'better-sqlite3') return undefined;
    return (this.dataSource.driver as unknown as { databaseConnection: Database.Database })
      .databaseConnection;
  }
}

/** Where the audit database is, for messages: the path, or the URL without its password. */
export function describeAuditDatabase(location: AuditDatabaseLocation): string {
  return location.type === 'sqlite' ? `sqlite:${location.path}` : location.redactedUrl;
}

/** TypeORM options of the audit database: the audit entity and its own migrations. */
export function auditDataSourceOptions(location: AuditDatabaseLocation): DataSourceOptions {
  const common = {
    entities: [AuditRecord],
    migrations: [AuditLog1765000000000, AuditIntents1765100000000],
    migrationsTableName: AUDIT_MIGRATIONS_TABLE,
    synchronize: false,
    logging: false,
  };
  if (location.type === 'sqlite')
    return {
      type: 'better-sqlite3',
      database: location.path,
      enableWAL: true,
      timeout: location.busyTimeoutMs,
      // As the application database: WAL with NORMAL survives a process crash.
      prepareDatabase: (db: Database.Database) => {
        db.pragma('synchronous = NORMAL');
      },
      ...common,
    };
  return {
    type: 'postgres',
    url: location.url,
    connectTimeoutMS: POSTGRES_CONNECT_TIMEOUT_MS,
    // In the internal database, ScopeDB's schema: its tables and TypeORM's queries land there.
    ...(location.schema === undefined ? {} : { schema: location.schema }),
    extra: {
      statement_timeout: POSTGRES_STATEMENT_TIMEOUT_MS,
      ...(location.schema === undefined ? {} : { options: `-c search_path=${location.schema}` }),
    },
    ...common,
  };
}

/** An error message with the URL's password (if the driver echoed it) replaced by ***. */
function withoutPassword(message: string, location: AuditDatabaseLocation): string {
  if (location.type !== 'postgres') return message;
  const { password } = new URL(location.url);
  return password === ''
    ? message
    : message.replaceAll(password, '***').replaceAll(decodeURIComponent(password), '***');
}

/**
 * Why the audit database could not be opened, in the message alone: the driver's error is not
 * attached as `cause`, since Nest logs causes in full and a driver's error may carry connection
 * details.
 */
export function openFailure(settings: AuditSettings, error: unknown): Error {
  const location = settings.database;
  return new Error(
    `the audit database (${settings.setting}=${describeAuditDatabase(location)}) could not be opened: ${withoutPassword(messageOf(error), location)}`,
  );
}

/**
 * Opens the audit database and brings its schema up to date. Fails start-up, with the place named
 * (never a password), when the database cannot be reached or migrated.
 */
export async function openAuditDataSource(settings: AuditSettings): Promise<DataSource> {
  const location = settings.database;
  if (location.type === 'sqlite') mkdirSync(dirname(location.path), { recursive: true });
  const source = new DataSource(auditDataSourceOptions(location));
  try {
    await source.initialize();
    if (location.type === 'postgres') {
      const lock = source.createQueryRunner();
      try {
        await lock.query('SELECT pg_advisory_lock($1)', [STORE_SETUP_LOCK_KEY]);
        if (location.schema !== undefined)
          await lock.query(`CREATE SCHEMA IF NOT EXISTS ${source.driver.escape(location.schema)}`);
        await source.runMigrations({ transaction: 'all' });
        await lock.query('SELECT pg_advisory_unlock($1)', [STORE_SETUP_LOCK_KEY]);
      } finally {
        // On failure the unlock does not run; destroying the data source ends the session and the lock.
        await lock.release();
      }
    } else {
      await source.runMigrations({ transaction: 'all' });
    }
    return source;
  } catch (error) {
    if (source.isInitialized) await source.destroy();
    throw openFailure(settings, error);
  }
}

/** The audit database, opened and migrated at start-up. */
export const auditDatabaseProvider: FactoryProvider<AuditDatabase> = {
  provide: AuditDatabase,
  inject: [auditConfig.KEY],
  useFactory: async (cfg: ConfigType<typeof auditConfig>) =>
    new AuditDatabase(await openAuditDataSource(cfg)),
};
