import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type Database from 'better-sqlite3';
import { AuditModule } from '../../audit/audit.module.js';
import { databaseConfig } from '../../config/configuration.js';
import type { SqliteDatabaseSettings } from '../../config/settings.js';
import { InternalModule } from '../../internal/internal.module.js';
import { LegacyUpgrade } from '../../internal/legacy-upgrade.js';
import { DatabaseEngine } from '../engine.js';
import { SqlExecutor } from './sql-executor.js';
import { SqliteDatabase } from './sqlite-database.js';
import { SchemaMigrations } from './schema-migrations.js';
import { SqliteEngine } from './sqlite-engine.js';

/**
 * The SQLite engine. The application database holds the user's data only: its TypeORM data source
 * has no entity and no migration of ScopeDB's (those live in the internal database); it serves
 * schema introspection.
 */
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [databaseConfig.KEY],
      useFactory: (cfg: SqliteDatabaseSettings) => {
        mkdirSync(dirname(cfg.path), { recursive: true });
        return {
          type: 'better-sqlite3' as const,
          database: cfg.path,
          enableWAL: true,
          timeout: cfg.busyTimeoutMs,
          prepareDatabase: (db: Database.Database) => {
            db.pragma('foreign_keys = ON');
            // In WAL mode NORMAL survives a process crash; only power loss may drop recent commits.
            db.pragma('synchronous = NORMAL');
          },
          synchronize: false,
          logging: false,
        };
      },
    }),
    InternalModule,
    AuditModule,
  ],
  providers: [
    SqliteDatabase,
    SqlExecutor,
    SchemaMigrations,
    LegacyUpgrade,
    SqliteEngine,
    { provide: DatabaseEngine, useExisting: SqliteEngine },
  ],
  exports: [DatabaseEngine, SqlExecutor, SqliteDatabase],
})
export class SqliteModule {}
