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
