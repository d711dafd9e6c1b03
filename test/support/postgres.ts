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
