import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import Database from 'better-sqlite3';
import { type DataSource, Table } from 'typeorm';
import { databaseConfig } from '../config/configuration.js';
import { INTERNAL_TABLES } from './internal-tables.js';

export type SqliteConnection = Database.Database;

/**
 * The SQLite database behind the tools. Writes use TypeORM's connection; reads use a separate
 * connection opened read-only with `query_only`, so the database itself refuses any write.
 */
@Injectable()
export class SqliteDatabase implements OnApplicationShutdown {
  private reader: SqliteConnection | undefined;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(databaseConfig.KEY) private readonly cfg: ConfigType<typeof databaseConfig>,
  ) {}

  /** The read-only connection (opened on first use, after TypeORM created the file). */
  get readConnection(): SqliteConnection {
    if (!this.reader) {
      const reader = new Database(this.cfg.path, { readonly: true, fileMustExist: true });
      reader.pragma(`busy_timeout = ${this.cfg.busyTimeoutMs}`);
      reader.pragma('query_only = 1');
      this.reader = reader;
    }
    return this.reader;
  }

  get writeConnection(): SqliteConnection {
    return (this.dataSource.driver as unknown as { databaseConnection: SqliteConnection })
      .databaseConnection;
  }

  /** Tables and views by exact name, from the catalog (never from caller input), ours left out. */
  catalog(): { name: string; type: 'table' | 'view' }[] {
    return this.readConnection
      .prepare<[], { name: string; type: 'table' | 'view' }>(
        "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
      )
      .all()
      .filter((entry) => !(INTERNAL_TABLES as readonly string[]).includes(entry.name));
  }

  /** The catalog's own spelling of a table or view name, matched exactly, else undefined. */
  resolve(name: string): { name: string; type: 'table' | 'view' } | undefined {
    return this.catalog().find((entry) => entry.name === name);
  }

  /** An identifier quoted by the driver; only ever called with a name taken from the catalog. */
  quote(identifier: string): string {
    return this.dataSource.driver.escape(identifier);
  }

  async describe(name: string): Promise<{ table: Table; all: Table[] }> {
    const runner = this.dataSource.createQueryRunner();
    try {
      const all = await runner.getTables();
      const table = all.find((candidate) => candidate.name === name) ?? this.viewAsTable(name);
      if (!table) throw new Error(`table ${name} vanished while it was described`);
      return { table, all };
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
