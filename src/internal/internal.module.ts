import { Module, type OnApplicationShutdown } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module.js';
import { InternalDatabase, internalDatabaseProvider } from './internal-database.js';
import { MigrationLedger } from './migration-ledger.js';

/**
 * ScopeDB's own SQLite file (INTERNAL_DATABASE_URL=sqlite:...), which no tool connection opens:
 * the migrations ledger and bookkeeping. The engine that keeps its ledger here imports it.
 */
@Module({
  imports: [AuditModule],
  providers: [internalDatabaseProvider, MigrationLedger],
  exports: [InternalDatabase, MigrationLedger],
})
export class InternalModule implements OnApplicationShutdown {
  constructor(private readonly internal: InternalDatabase) {}

  async onApplicationShutdown(): Promise<void> {
    if (this.internal.dataSource.isInitialized) await this.internal.dataSource.destroy();
  }
}
