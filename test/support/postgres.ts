import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The machine's PostgreSQL (trust auth); a database of each run's own is created in it. */
export const POSTGRES_ADMIN_URL =
  process.env.SCOPEDB_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestPostgresDatabase {
  name: string;
  /** postgres://.../<name> */
  url: string;
  /** A connection of the test's own to the database. */
  client: pg.Client;
  /**
   * A new LOGIN role (not a superuser), dropped with the database; `url` connects to the
   * database as that role (trust auth).
   */
  createRole(prefix: string): Promise<TestPostgresRole>;
  drop(): Promise<void>;
}

export interface TestPostgresRole {
  name: string;
  url: string;
  /** A new connection to the database as this role (the caller ends it). */
  connect(): Promise<pg.Client>;
}

/** A name of this run's own, checked to be a plain identifier (it is pasted into DDL). */
function uniqueName(prefix: string): string {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad test object name ${name}`);
  return name;
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

/**
 * Creates a uniquely named database, so that parallel runs never meet; PostgreSQL must be up (the
 * tests fail, never skip, when it is not). The name is generated here, never taken from input.
 */
export async function createTestDatabase(prefix: string): Promise<TestPostgresDatabase> {
  const name = uniqueName(prefix);
  const admin = await connect(POSTGRES_ADMIN_URL);
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  const client = await connect(url.toString());
  const roles: string[] = [];
  return {
    name,
    url: url.toString(),
    client,
    createRole: async (rolePrefix) => {
      const role = uniqueName(rolePrefix);
      await client.query(`CREATE ROLE ${role} LOGIN`);
      roles.push(role);
      const roleUrl = new URL(url);
      roleUrl.username = role;
      roleUrl.password = '';
      return { name: role, url: roleUrl.toString(), connect: () => connect(roleUrl.toString()) };
    },
    drop: async () => {
      await client.end();
      const admin = await connect(POSTGRES_ADMIN_URL);
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        // Roles are the cluster's: dropped once their only database is gone.
        for (const role of roles) await admin.query(`DROP ROLE IF EXISTS ${role}`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** A database with ScopeDB's three roles (random names), as README "PostgreSQL" recommends. */
export interface ScopedbPostgres {
  database: TestPostgresDatabase;
  roles: { tools: string; reader: string; internal: string };
  /** DATABASE_URL (the tools' role), DATABASE_READER_URL, INTERNAL_DATABASE_URL. */
  urls: { tools: string; reader: string; internal: string };
  /** A superuser connection to the database (checks and set-up only). */
  admin: pg.Client;
  /** The rows of a query run as that superuser. */
  rows<T extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Statements the tools' roles are still running (pg_stat_activity). */
  running(): Promise<{ query: string }[]>;
  /** Advisory locks held in this database (pg_locks is the cluster's: other runs take some too). */
  advisoryLocks(): Promise<{ objid: number }[]>;
  drop(): Promise<void>;
}

/**
 * Creates a database and three login roles: `internal` owns ScopeDB's schema (CREATE on the
 * database), `tools` runs writes and migrations (CREATE on public), `reader` may only SELECT (also
 * what the tools' role creates later). All are dropped with the database.
 */
export async function createScopedbPostgres(prefix: string): Promise<ScopedbPostgres> {
  const database = await createTestDatabase(prefix);
  const suffix = database.name.slice(prefix.length + 1);
  const roles = {
    tools: `sdb_tools_${suffix}`,
    reader: `sdb_reader_${suffix}`,
    internal: `sdb_internal_${suffix}`,
  };
  const admin = database.client;
  const { tools, reader, internal } = roles;
  for (const role of [tools, reader, internal]) await admin.query(`CREATE ROLE ${role} LOGIN`);
  await admin.query(
    `GRANT CONNECT ON DATABASE ${database.name} TO ${tools}, ${reader}, ${internal}`,
  );
  // db:admin creates schemas too; ScopeDB's own is the internal role's.
  await admin.query(`GRANT CREATE ON DATABASE ${database.name} TO ${internal}, ${tools}`);
  await admin.query(`REVOKE ALL ON SCHEMA public FROM PUBLIC`);
  await admin.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${tools}`);
  await admin.query(`GRANT USAGE ON SCHEMA public TO ${reader}`);
  await admin.query(
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${tools} GRANT USAGE ON SCHEMAS TO ${reader}`,
  );
  await admin.query(
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${tools} GRANT SELECT ON TABLES TO ${reader}`,
  );
  const urlOf = (role: string) => {
    const url = new URL(database.url);
    url.username = role;
    return url.toString();
  };
  const rows = async <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    (await admin.query<T>(sql, params)).rows;
  return {
    database,
    roles,
    urls: { tools: urlOf(tools), reader: urlOf(reader), internal: urlOf(internal) },
    admin,
    rows,
    running: () =>
      rows<{ query: string }>(
        "SELECT query FROM pg_stat_activity WHERE usename = ANY($1) AND state = 'active'",
        [[tools, reader]],
      ),
    advisoryLocks: () =>
      rows<{ objid: number }>(
        "SELECT objid FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = current_database()",
      ),
    drop: async () => {
      try {
        await database.drop();
      } finally {
        // The roles go even when the database could not: they are the cluster's, not its.
        const cluster = await connect(POSTGRES_ADMIN_URL);
        try {
          for (const role of [tools, reader, internal])
            await cluster.query(`DROP ROLE IF EXISTS ${role}`);
        } finally {
          await cluster.end();
        }
      }
    },
  };
}
