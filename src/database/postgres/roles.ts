import type { Logger } from '@nestjs/common';
import type pg from 'pg';

/** Roles whose members read or write the server's files, or run programs on it, from SQL. */
const SERVER_ACCESS_ROLES = [
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_execute_server_program',
];

// Catalog names are qualified: the checks must not resolve through a search_path a role set.

/**
 * Refuses a role that could step around the database's own checks: a superuser (reads any file
 * with a plain SELECT), BYPASSRLS, or a member of the server-file roles; unless allowed, then
 * warned about.
 */
export async function checkRole(
  client: pg.ClientBase,
  setting: string,
  allowPrivileged: boolean,
  logger: Logger,
): Promise<void> {
  const { rows } = await client.query<{
    name: string;
    rolsuper: boolean;
    rolbypassrls: boolean;
    server_access: string[];
  }>(
    `SELECT r.rolname AS name, r.rolsuper, r.rolbypassrls,
            ARRAY(SELECT s FROM pg_catalog.unnest($1::text[]) AS s WHERE pg_catalog.pg_has_role(r.oid, s, 'MEMBER')) AS server_access
     FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`,
    [SERVER_ACCESS_ROLES],
  );
  const role = rows[0];
  await warnAboutSignals(client, role.name, setting, logger);
  const powers = [
    role.rolsuper && 'is a superuser (it can read the server’s files with a plain SELECT)',
    role.rolbypassrls && 'has BYPASSRLS (row-level security does not apply to it)',
    role.server_access.length > 0 &&
      `is a member of ${role.server_access.join(', ')} (it can reach the server's files or programs)`,
  ].filter((power): power is string => power !== false);
  if (powers.length === 0) return;
  const message = `the role ${role.name} of ${setting} ${powers.join('; ')}`;
  if (!allowPrivileged)
    throw new Error(
      `${message}. Use a role with only the privileges the tools need (README "PostgreSQL"), or set DATABASE_ALLOW_PRIVILEGED_ROLE=true to accept it.`,
    );
  logger.warn(`${message}; accepted because DATABASE_ALLOW_PRIVILEGED_ROLE=true`);
}

/** Where one of ScopeDB's own stores is, as its own connection sees it. */
export interface StoreIdentity {
  /** What it is, for messages ("the audit log"). */
  what: string;
  user: string;
  database: string;
  schema: string;
  tables: string[];
}

/** Reads a store's identity through its own connection. */
export async function storeIdentity(
  query: (sql: string) => Promise<{ user: string; database: string; schema: string }[]>,
  what: string,
  tables: string[],
): Promise<StoreIdentity> {
  const [row] = await query(
    'SELECT current_user AS "user", pg_catalog.current_database() AS database, current_schema() AS schema',
  );
  return { what, ...row, tables };
}

/**
 * Refuses to start when a tool role could reach one of ScopeDB's own stores on the same database:
 * by acting as the store's role, or by any privilege on its schema (other than public) or tables.
 * The stores are apart by configuration; this checks that the database agrees.
 */
export async function checkUnreachable(
  client: pg.ClientBase,
  setting: string,
  stores: StoreIdentity[],
): Promise<void> {
  const { rows } = await client.query<{ user: string; database: string }>(
    'SELECT current_user AS "user", pg_catalog.current_database() AS database',
  );
  const tool = rows[0];
  for (const store of stores) {
    if (store.database !== tool.database) continue;
    const refuse = (why: string) => {
      throw new Error(
        `the role ${tool.user} of ${setting} ${why}, so the tools' SQL could reach ${store.what}. Give ScopeDB's own tables a role the tools' roles are not members of, and grant them nothing on its schema (README "PostgreSQL").`,
      );
    };
    const { rows: reach } = await client.query<{
      acts_as: boolean;
      schema_usage: boolean;
      tables: string[];
    }>(
      `SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)
                   THEN pg_catalog.pg_has_role(current_user, $1, 'USAGE') ELSE false END AS acts_as,
              (n.oid IS NOT NULL AND n.nspname <> 'public' AND pg_catalog.has_schema_privilege(current_user, n.oid, 'USAGE, CREATE')) AS schema_usage,
              ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c
                    WHERE c.relnamespace = n.oid AND c.relname = ANY($3::text[])
                      AND pg_catalog.has_table_privilege(current_user, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')) AS tables
       FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = $2`,
      [store.user, store.schema, store.tables],
    );
    const [found] = reach;
    if (found.acts_as) refuse(`can act as ${store.user}, the role of ${store.what}`);
    if (found.schema_usage) refuse(`has privileges on the schema ${store.schema} of ${store.what}`);
    if (found.tables.length > 0)
      refuse(`has privileges on ${found.tables.map((t) => `${store.schema}.${t}`).join(', ')}`);
  }
}

/**
 * Every principal's SQL runs as this role, and PostgreSQL lets a role cancel its own sessions'
 * statements: one caller could stop another's (pg_cancel_backend; ScopeDB cancels through the
 * protocol instead). pg_terminate_backend must stay: ScopeDB ends with it a backend that catches
 * the cancel of its deadline (PL/pgSQL can) and runs on.
 */
async function warnAboutSignals(
  client: pg.ClientBase,
  name: string,
  setting: string,
  logger: Logger,
): Promise<void> {
  const { rows } = await client.query<{ cancel: boolean; terminate: boolean }>(
    `SELECT pg_catalog.has_function_privilege(current_user, 'pg_catalog.pg_cancel_backend(integer)', 'EXECUTE') AS cancel,
            pg_catalog.has_function_privilege(current_user, 'pg_catalog.pg_terminate_backend(integer, bigint)', 'EXECUTE') AS terminate`,
  );
  const { cancel, terminate } = rows[0];
  if (cancel)
    logger.warn(
      `the role ${name} of ${setting} may run pg_cancel_backend: one caller could cancel another's statements; revoke it from PUBLIC (README "PostgreSQL")`,
    );
  if (!terminate)
    logger.warn(
      `the role ${name} of ${setting} may not run pg_terminate_backend: a statement that catches the cancel of its deadline cannot be ended, and runs on; grant it EXECUTE (README "PostgreSQL")`,
    );
}
