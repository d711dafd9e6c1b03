/** The tables of the internal database (INTERNAL_DATABASE_URL), beside the audit log's own. */
export const LEDGER_TABLE = 'scopedb_migrations';
/** Key-value bookkeeping, e.g. how far the upgrade from release 0.1.0 got. */
export const STATE_TABLE = 'scopedb_state';
/** TypeORM's record of the internal database's own migrations. */
export const STORE_MIGRATIONS_TABLE = 'scopedb_store_migrations';
