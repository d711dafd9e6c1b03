import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import Database from 'better-sqlite3';
import { type DataSource, Table } from 'typeorm';
import { databaseConfig } from '../../config/configuration.js';
import type { SqliteDatabaseSettings } from '../../config/settings.js';
import { type CheckConstraint, checkConstraints } from './sql-statements.js';
import { catalog, type CatalogEntry } from './catalog.js';

/**
 * The application database (the user's data only) as the main thread sees it: catalog look-ups,
 * schema fingerprints and TypeORM's introspection (short, bounded work) on a read-only
 * connection. Caller SQL runs in SqlExecutor's workers, which open this file and no other.
 */
@Injectable()
export class SqliteDatabase implements OnApplicationShutdown {
  private reader: Database.Database | undefined;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    // Provided in SQLite mode only (SqliteModule), where the settings are SQLite's.
    @Inject(databaseConfig.KEY) private readonly cfg: SqliteDatabaseSettings,
  ) {}

  get path(): string {
    return this.cfg.path;
  }

  /** The read-only connection (opened on first use, after TypeORM created the file). */
  get readConnection(): Database.Database {
    if (!this.reader) {
      const reader = new Database(this.cfg.path, { readonly: true, fileMustExist: true });
      reader.pragma(`busy_timeout = ${this.cfg.busyTimeoutMs}`);
      reader.pragma('query_only = 1');
      this.reader = reader;
    }
    return this.reader;
  }

  /** Readiness: the application database answers through TypeORM's connection. */
  async ping(): Promise<void> {
    if (!this.dataSource.isInitialized) throw new Error('the application database is closed');
    await this.dataSource.query('SELECT 1');
  }

  /** The catalog's own spelling of a table or view name, matched exactly, else undefined. */
  resolve(name: string): CatalogEntry | undefined {
    return catalog(this.readConnection).find((entry) => entry.name === name);
  }

  async describe(name: string): Promise<{ table: Table; all: Table[]; checks: CheckConstraint[] }> {
    const runner = this.dataSource.createQueryRunner();
    try {
      const all = await runner.getTables();
      const table = all.find((candidate) => candidate.name === name) ?? this.viewAsTable(name);
      if (!table) throw new Error(`table ${name} vanished while it was described`);
      const definition = this.readConnection
        .prepare<[string], { sql: string }>(
          "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?",
        )
        .get(name);
      return { table, all, checks: definition ? checkConstraints(definition.sql) : [] };
    } finally {
      await runner.release();
    }
  }

  /** TypeORM introspects tables only; a view's columns come from SQLite's table_info. */
  private viewAsTable(name: string): Table | undefined {
    const columns = this.readConnection
      .prepare<
        [string],
        { name: string; type: string; notnull: number; dflt_value: string | null }
      >('SELECT name, type, "notnull", dflt_value FROM pragma_table_info(?)')
      .all(name);
    if (columns.length === 0) return undefined;
    return new Table({
      name,
      columns: columns.map((column) => ({
        name: column.name,
        type: column.type.toLowerCase(),
        isNullable: column.notnull === 0,
        default: column.dflt_value ?? undefined,
      })),
    });
  }

  onApplicationShutdown(): void {
    this.reader?.close();
    this.reader = undefined;
  }
}
