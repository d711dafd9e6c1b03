import { Module, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { InternalDatabase, internalDatabaseProvider } from './internal-database.js';
import { LegacyUpgrade } from './legacy-upgrade.js';
import { MigrationLedger } from './migration-ledger.js';
import { SchemaMigrations } from './schema-migrations.js';

/**
 * ScopeDB's own state, in a database no tool connection opens. At start-up, before the server
 * listens: moves what release 0.1.0 kept in the application database, then settles the ledger.
 */
@Module({
  imports: [DatabaseModule, AuditModule],
  providers: [internalDatabaseProvider, MigrationLedger, SchemaMigrations, LegacyUpgrade],
  exports: [InternalDatabase, MigrationLedger, SchemaMigrations],
})
export class InternalModule implements OnModuleInit, OnApplicationShutdown {
  constructor(
    private readonly internal: InternalDatabase,
    private readonly upgrade: LegacyUpgrade,
    private readonly migrations: SchemaMigrations,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.upgrade.run();
    this.migrations.reconcile();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.internal.dataSource.isInitialized) await this.internal.dataSource.destroy();
  }
}
