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
  drop(): Promise<void>;
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
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad test database name ${name}`);
  const admin = await connect(POSTGRES_ADMIN_URL);
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  const client = await connect(url.toString());
  return {
    name,
    url: url.toString(),
    client,
    drop: async () => {
      await client.end();
      const admin = await connect(POSTGRES_ADMIN_URL);
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** The three roles of a ScopeDB deployment on PostgreSQL (role names, generated here). */
export interface ScopedbRoles {
  /** INTERNAL_DATABASE_URL's: owns the `scopedb` schema (ledger, audit log); CREATE on the database. */
  internal: string;
  /** DATABASE_URL's: runs the tools' SQL; USAGE and CREATE on `public`, owns the tables it creates. */
  tools: string;
  /** DATABASE_READER_URL's: USAGE on `public`, SELECT on its tables, those the tools role creates included. */
  reader: string;
}

const roleNames = (roles: ScopedbRoles) => [roles.internal, roles.tools, roles.reader];

/** A database of a test's own with ScopeDB's three roles, as a deployment would set it up. */
export interface ScopedbPostgres {
  database: string;
  roles: ScopedbRoles;
  /** DATABASE_URL, DATABASE_READER_URL and INTERNAL_DATABASE_URL for `node dist/main.js`. */
  env: {
    DATABASE_URL: string;
    DATABASE_READER_URL: string;
    INTERNAL_DATABASE_URL: string;
  };
  /** A superuser's connection to the database (to read the audit log and the ledger directly). */
  admin: pg.Client;
  /** Ends every connection to the database, drops it and the three roles. */
  drop(): Promise<void>;
}

/** `POSTGRES_ADMIN_URL` as `role`, on `database` (trust authentication: no password). */
function urlAs(role: string, database: string): string {
  const url = new URL(POSTGRES_ADMIN_URL);
  url.username = role;
  url.password = '';
  url.pathname = `/${database}`;
  return url.toString();
}

/** Drops roles (cluster-wide) and whatever they still own or were granted in the admin database. */
async function dropRoles(roles: string[]): Promise<void> {
  if (roles.length === 0) return;
  const admin = await connect(POSTGRES_ADMIN_URL);
  try {
    const { rows } = await admin.query<{ rolname: string }>(
      'SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])',
      [roles],
    );
    const existing = rows.map((row) => admin.escapeIdentifier(row.rolname));
    if (existing.length === 0) return;
    await admin.query(`DROP OWNED BY ${existing.join(', ')}`);
    for (const role of existing) await admin.query(`DROP ROLE ${role}`);
  } finally {
    await admin.end();
  }
}

/**
 * A fresh database with ScopeDB's three LOGIN roles (random suffix, so parallel runs never meet):
 * the internal owner (CREATE on the database, for its `scopedb` schema), the tools' role (USAGE and
 * CREATE on `public`) and a read-only role (USAGE on `public`, SELECT on its tables now and on those
 * the tools' role creates later). Neither tool role is a member of the internal one.
 */
export async function createScopedbPostgres(prefix: string): Promise<ScopedbPostgres> {
  const suffix = randomBytes(4).toString('hex');
  const roles: ScopedbRoles = {
    internal: `${prefix}_internal_${suffix}`,
    tools: `${prefix}_tools_${suffix}`,
    reader: `${prefix}_reader_${suffix}`,
  };
  for (const role of roleNames(roles))
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(role)) throw new Error(`bad test role name ${role}`);
  const created: string[] = [];
  let database: TestPostgresDatabase | undefined;
  try {
    const admin = await connect(POSTGRES_ADMIN_URL);
    try {
      for (const role of roleNames(roles)) {
        await admin.query(`CREATE ROLE ${admin.escapeIdentifier(role)} LOGIN`);
        created.push(role);
      }
    } finally {
      await admin.end();
    }
    database = await createTestDatabase(prefix);
    const { client } = database;
    const [internal, tools, reader] = roleNames(roles).map((role) => client.escapeIdentifier(role));
    const db = client.escapeIdentifier(database.name);
    await client.query(`GRANT CREATE ON DATABASE ${db} TO ${internal}`);
    await client.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${tools}`);
    await client.query(`GRANT USAGE ON SCHEMA public TO ${reader}`);
    await client.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${reader}`);
    await client.query(
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${tools} IN SCHEMA public GRANT SELECT ON TABLES TO ${reader}`,
    );
  } catch (error) {
    await database?.drop();
    await dropRoles(created);
    throw error;
  }
  const { name, client } = database;
  return {
    database: name,
    roles,
    env: {
      DATABASE_URL: urlAs(roles.tools, name),
      DATABASE_READER_URL: urlAs(roles.reader, name),
      INTERNAL_DATABASE_URL: urlAs(roles.internal, name),
    },
    admin: client,
    drop: async () => {
      try {
        // WITH (FORCE) ends the servers' connections, which would otherwise keep it in use.
        await database.drop();
      } finally {
        await dropRoles(roleNames(roles));
      }
    },
  };
}
