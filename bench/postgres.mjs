/**
 * The benchmark's PostgreSQL: a throwaway database with ScopeDB's three roles (as
 * test/support/postgres.ts `createScopedbPostgres` sets them up; the benchmark is plain JavaScript
 * and cannot import the TypeScript helper), its tables, and the CPU time of its backends.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';

/** A superuser's connection string (trust authentication on the machine's PostgreSQL). */
export const ADMIN_URL =
  process.env.BENCH_POSTGRES_URL?.trim() || 'postgres://postgres@127.0.0.1:5432/test';

async function connect(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

function urlAs(role, database) {
  const url = new URL(ADMIN_URL);
  url.username = role;
  url.password = '';
  url.pathname = `/${database}`;
  return url.toString();
}

/**
 * Creates a database and three LOGIN roles with a random suffix: the internal owner (CREATE on the
 * database), the tools' role (USAGE and CREATE on `public`) and a reader (USAGE on `public`,
 * SELECT on the tables the tools' role creates). `drop()` removes all of it and may be called more
 * than once; so may it after a failed creation (it drops what was made).
 */
export async function createScopedbPostgres(prefix) {
  const suffix = randomBytes(4).toString('hex');
  const database = `${prefix}_${process.pid}_${suffix}`;
  const roles = {
    internal: `${prefix}_internal_${suffix}`,
    tools: `${prefix}_tools_${suffix}`,
    reader: `${prefix}_reader_${suffix}`,
  };
  for (const name of [database, ...Object.values(roles)])
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad name ${name}`);

  let admin;
  let dropping;
  const drop = () =>
    (dropping ??= (async () => {
      await admin?.end().catch(() => undefined);
      const root = await connect(ADMIN_URL);
      try {
        const q = (name) => root.escapeIdentifier(name);
        // WITH (FORCE) ends the servers' connections, which would otherwise keep it in use.
        await root.query(`DROP DATABASE IF EXISTS ${q(database)} WITH (FORCE)`);
        const { rows } = await root.query(
          'SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])',
          [Object.values(roles)],
        );
        if (rows.length > 0) {
          const existing = rows.map((row) => q(row.rolname));
          await root.query(`DROP OWNED BY ${existing.join(', ')}`);
          for (const role of existing) await root.query(`DROP ROLE ${role}`);
        }
      } finally {
        await root.end();
      }
    })());

  const fixture = {
    database,
    roles,
    env: {
      DATABASE_URL: urlAs(roles.tools, database),
      DATABASE_READER_URL: urlAs(roles.reader, database),
      INTERNAL_DATABASE_URL: urlAs(roles.internal, database),
    },
    /** A superuser's connection to the database. */
    get admin() {
      return admin;
    },
    drop,
  };
  try {
    const root = await connect(ADMIN_URL);
    try {
      const q = (name) => root.escapeIdentifier(name);
      for (const role of Object.values(roles)) await root.query(`CREATE ROLE ${q(role)} LOGIN`);
      await root.query(`CREATE DATABASE ${q(database)}`);
    } finally {
      await root.end();
    }
    const adminUrl = new URL(ADMIN_URL);
    adminUrl.pathname = `/${database}`;
    admin = await connect(adminUrl.toString());
    const q = (name) => admin.escapeIdentifier(name);
    await admin.query(`GRANT CREATE ON DATABASE ${q(database)} TO ${q(roles.internal)}`);
    await admin.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${q(roles.tools)}`);
    await admin.query(`GRANT USAGE ON SCHEMA public TO ${q(roles.reader)}`);
    await admin.query(
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${q(roles.tools)} IN SCHEMA public GRANT SELECT ON TABLES TO ${q(roles.reader)}`,
    );
  } catch (error) {
    await drop();
    throw error;
  }
  return fixture;
}

/**
 * The SQLite series' tables, made by the tools' role (so the reader may read them): `items`
 * (`items` rows) and `big` (`big` rows), same columns and values, then VACUUM ANALYZE.
 */
export async function fillTables(toolsUrl, items, big) {
  const client = await connect(toolsUrl);
  try {
    for (const [table, count] of [
      ['items', items],
      ['big', big],
    ]) {
      await client.query(
        `CREATE TABLE ${table} (id integer PRIMARY KEY, name text NOT NULL, price double precision NOT NULL, created_at text NOT NULL)`,
      );
      await client.query(
        `INSERT INTO ${table} (id, name, price, created_at)
         SELECT i, 'item ' || i, ((i::bigint * 7919) % 100000) / 100.0,
                to_char(to_timestamp(1767225600 + i::bigint * 60) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
         FROM generate_series(1, $1::int) AS i`,
        [count],
      );
    }
    await client.query('VACUUM (ANALYZE) items, big');
  } finally {
    await client.end();
  }
}

const CLOCK_TICKS_PER_S = 100; // USER_HZ, the unit of /proc/<pid>/stat times on Linux

/** A PostgreSQL process's CPU seconds; undefined when the pid here is not PostgreSQL's. */
function processCpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  if (!stat.includes('(postgres)')) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

/**
 * CPU seconds used so far by the backends serving the database, per server: those whose
 * application_name is `reference` are the reference's, the rest (but the asking one) ScopeDB's.
 * Undefined where PostgreSQL's processes cannot be read (not on this machine).
 */
export async function backendCpu(admin, database) {
  const { rows } = await admin.query(
    'SELECT pid, application_name FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [database],
  );
  const cpu = new Map();
  for (const row of rows) {
    let seconds;
    try {
      seconds = processCpuSeconds(row.pid);
    } catch (error) {
      if (error.code === 'ENOENT') continue; // it ended meanwhile
      if (error.code === 'EACCES') return undefined;
      throw error;
    }
    if (seconds === undefined) return undefined; // a server elsewhere
    cpu.set(row.pid, { reference: row.application_name === 'reference', seconds });
  }
  return cpu;
}

/** CPU seconds the backends of one side used between two backendCpu() snapshots. */
export function backendCpuSpent(before, after, reference) {
  if (!before || !after) return NaN;
  let seconds = 0;
  for (const [pid, backend] of after)
    if (backend.reference === reference)
      seconds += backend.seconds - (before.get(pid)?.seconds ?? 0);
  return seconds;
}
