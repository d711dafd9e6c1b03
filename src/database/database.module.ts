import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Module } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import type Database from 'better-sqlite3';
import { AuditRecord } from '../audit/audit-record.entity.js';
import { AuditIntents1765100000000 } from '../audit/migrations/1765100000000-audit-intents.js';
import { databaseConfig } from '../config/configuration.js';
import { TYPEORM_MIGRATIONS_TABLE } from './internal-tables.js';
import { InternalTables1764000000000 } from './migrations/1764000000000-internal-tables.js';
import { AuditDetails1764100000000 } from './migrations/1764100000000-audit-details.js';
import { SqlExecutor } from './sql-executor.js';
import { SqliteDatabase } from './sqlite-database.js';

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
          entities: [AuditRecord],
          migrations: [
            InternalTables1764000000000,
            AuditDetails1764100000000,
            AuditIntents1765100000000,
          ],
          migrationsTableName: TYPEORM_MIGRATIONS_TABLE,
          migrationsRun: true,
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
