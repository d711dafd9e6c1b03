import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Module } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import type Database from 'better-sqlite3';
import { databaseConfig } from '../config/configuration.js';
import { SqlExecutor } from './sql-executor.js';
import { SqliteDatabase } from './sqlite-database.js';

/**
 * The application database: the user's data only. Its TypeORM data source has no entity and no
 * migration of ScopeDB's (those live in the internal database, src/internal/); it serves schema
 * introspection and the readiness probe.
 */
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [databaseConfig.KEY],
      useFactory: (cfg: ConfigType<typeof databaseConfig>) => {
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
  ],
  providers: [SqliteDatabase, SqlExecutor],
  exports: [SqliteDatabase, SqlExecutor, TypeOrmModule],
})
export class DatabaseModule {}
