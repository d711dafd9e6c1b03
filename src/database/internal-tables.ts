/** ScopeDB's own tables in the application database; the tools never change them. */
export const AUDIT_TABLE = 'audit_log';
export const LEDGER_TABLE = 'scopedb_migrations';
export const TYPEORM_MIGRATIONS_TABLE = 'scopedb_internal_migrations';
export const INTERNAL_TABLES = [AUDIT_TABLE, LEDGER_TABLE, TYPEORM_MIGRATIONS_TABLE] as const;
/** Of those, the ones a db:query caller may not read either. */
export const PRIVATE_TABLES = [AUDIT_TABLE] as const;
/** The migrations table of an audit database of its own (AUDIT_DATABASE_URL). */
export const AUDIT_MIGRATIONS_TABLE = 'scopedb_audit_migrations';
