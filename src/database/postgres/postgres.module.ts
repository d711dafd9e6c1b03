import { type FactoryProvider, Module } from '@nestjs/common';
import { AuditModule } from '../../audit/audit.module.js';
import { internalConfig } from '../../config/configuration.js';
import type { InternalSettings, PostgresInternalSettings } from '../../config/settings.js';
import { messageOf } from '../../mcp/tool-context.js';
import { withoutPassword } from '../../audit/audit-database.js';
import { InternalModule } from '../../internal/internal.module.js';
import { MigrationLedger } from '../../internal/migration-ledger.js';
import { DatabaseEngine } from '../engine.js';
import { LedgerStore, PostgresLedgerStore, SqliteLedgerStore } from './ledger-store.js';
import { PostgresEngine } from './postgres-engine.js';

/** The ledger where INTERNAL_DATABASE_URL says: the internal SQLite file, or PostgreSQL. */
const ledgerStoreProvider: FactoryProvider<LedgerStore> = {
  provide: LedgerStore,
  inject: [internalConfig.KEY, { token: MigrationLedger, optional: true }],
  useFactory: async (internal: InternalSettings, sqlite: MigrationLedger | undefined) => {
    if (internal.type === 'sqlite') return new SqliteLedgerStore(sqlite!);
    return PostgresLedgerStore.open(internal).catch((error: unknown) => {
      throw openFailure(internal, error);
    });
  },
};

/**
 * Why the internal database could not be opened, in the message alone (as for the audit
 * database: Nest logs a cause in full, and a driver's error may carry connection details).
 */
function openFailure(internal: PostgresInternalSettings, error: unknown): Error {
  return new Error(
    `the internal database (INTERNAL_DATABASE_URL=${internal.redactedUrl}) could not be opened: ${withoutPassword(messageOf(error), { ...internal, type: 'postgres' })}`,
  );
}

/** The PostgreSQL engine (DATABASE_URL=postgres://...). */
@Module({})
export class PostgresModule {
  static forRoot(internal: InternalSettings['type']) {
    return {
      module: PostgresModule,
      imports: [AuditModule, ...(internal === 'sqlite' ? [InternalModule] : [])],
      providers: [
        ledgerStoreProvider,
        PostgresEngine,
        { provide: DatabaseEngine, useExisting: PostgresEngine },
      ],
      exports: [DatabaseEngine],
    };
  }
}
