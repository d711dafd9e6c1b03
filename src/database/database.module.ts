import { type DynamicModule, Module } from '@nestjs/common';
import type { DatabaseSettings, InternalSettings } from '../config/settings.js';
import { PostgresModule } from './postgres/postgres.module.js';
import { SqliteModule } from './sqlite/sqlite.module.js';

/**
 * The application database behind DatabaseEngine: the engine DATABASE_URL's scheme names, and
 * only that one (a PostgreSQL server starts no SQLite worker, and the reverse).
 */
@Module({})
export class DatabaseModule {
  static forRoot(
    type: DatabaseSettings['type'],
    internal: InternalSettings['type'],
  ): DynamicModule {
    const engine = type === 'sqlite' ? SqliteModule : PostgresModule.forRoot(internal);
    return { module: DatabaseModule, global: true, imports: [engine], exports: [engine] };
  }
}
