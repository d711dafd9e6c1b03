/**
 * ScopeDB's tables. Up to release 0.1.0 they were in the application database; the first start
 * moves them out (src/internal/legacy-upgrade.ts), and the names stay reserved there: the catalog
 * hides them and the statement checks refuse them, a second layer behind the separate files.
 */
export const AUDIT_TABLE = 'audit_log';
export const LEDGER_TABLE = 'scopedb_migrations';
export const TYPEORM_MIGRATIONS_TABLE = 'scopedb_internal_migrations';
export const INTERNAL_TABLES = [AUDIT_TABLE, LEDGER_TABLE, TYPEORM_MIGRATIONS_TABLE] as const;
/** The migrations table of the audit database. */
export const AUDIT_MIGRATIONS_TABLE = 'scopedb_audit_migrations';

/**
 * Every name ScopeDB's tables had in the application database (lower case): hidden from the
 * catalog, refused by the statement guard and reserved for migrations there, in any letter case.
 */
export const SCOPEDB_TABLE_NAMES: readonly string[] = [...INTERNAL_TABLES, AUDIT_MIGRATIONS_TABLE];
