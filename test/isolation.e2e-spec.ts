// An attacker with ordinary tokens (db:query, db:modify, db:admin) goes after ScopeDB's own records:
// read the audit log, copy it, forge or silence it, rewrite the ledger. They live in a file no tool
// connection opens, so every attack meets a database that does not have them. Afterwards the
// internal database is read directly: no record missing, none forged, the ledger holding only what
// legitimately succeeded.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestIssuer } from './support/issuer.js';
import { type MainServer, startMain, stopMain } from './support/node-process.js';
import { childrenOf, openFiles } from './support/proc.js';
import { readSqlite, tableNames } from './support/sqlite-files.js';
import { serverClient, textOf, type ToolClient } from './support/tool-client.js';

type Row = Record<string, unknown>;
type Role = 'reader' | 'writer' | 'admin';

const SCOPES: Record<Role, string> = {
  reader: 'db:query',
  writer: 'db:query db:modify',
  admin: 'db:query db:modify db:admin',
};
const subjectOf = (role: Role) => `attacker-${role}`;
/** A forged record's give-away: no real record has this time. */
const FORGED_TIME = '2001-01-01T00:00:00.000Z';

describe("isolation of ScopeDB's own records from every tool", () => {
  let issuer: TestIssuer;
  let dir: string;
  let server: MainServer;
  const appPath = () => join(dir, 'data', 'scopedb.sqlite');
  const internalPath = () => join(dir, 'data', 'scopedb-internal.sqlite');
  /** Every request sent, by request id: who sent it. */
  const sent = new Map<string, Role | null>();
  /** Migrations that were applied: the only rows the ledger may gain. */
  const applied: string[] = [];
  let clients: Record<Role, ToolClient>;

  /** A call as `role`, noted in `sent` (and in `applied` when it applied a migration). */
  async function sendAs(role: Role, name: string, args: Record<string, unknown>) {
    const { requestId, response, result } = await clients[role].traced(name, args);
    sent.set(requestId, role);
    if (name === 'apply_migration' && !result.isError) applied.push(String(args.name));
    return { requestId, status: response.status, result, text: textOf(result) };
  }

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    dir = mkdtempSync(join(tmpdir(), 'scopedb-isolation-'));
    server = await startMain(dir, issuer);
    const clientOf = (role: Role) =>
      serverClient(server.url, issuer, SCOPES[role], {
        requestIds: 'isolation',
        claims: { sub: subjectOf(role), name: role },
      });
    clients = { reader: clientOf('reader'), writer: clientOf('writer'), admin: clientOf('admin') };
    const setup = await sendAs('admin', 'apply_migration', {
      name: 'victim_schema',
      sql: 'CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT); CREATE TABLE copy (body TEXT)',
    });
    expect(setup.result.isError).toBeFalsy();
    expect(
      (await sendAs('writer', 'insert_rows', { table: 't', rows: [{ body: 'a' }] })).text,
    ).toMatch(/1 row/);
  });
  afterAll(async () => {
    await stopMain(server);
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const internal = () => `'${internalPath().replace(/'/g, "''")}'`;
  const noSuchTable = /no such table/;

  /** The records of these requests in the internal database, by request id. */
  const recordsOf = (...requestIds: string[]) =>
    readSqlite(internalPath(), (db) =>
      requestIds.map((requestId) =>
        db.prepare('SELECT count(*) FROM audit_log WHERE requestId = ?').pluck().get(requestId),
      ),
    );

  // `undefined`: answered or refused, either way harmless (a table of the application database).
  it.each<[string, Role, string, () => Record<string, unknown>, RegExp | undefined]>([
    // Silence the log
    [
      'a counter that would exhaust the log ids',
      'writer',
      'execute',
      () => ({
        sql: "UPDATE sqlite_sequence SET seq = 9223372036854775807 WHERE name = 'audit_log'",
      }),
      undefined,
    ],
    [
      'a counter for the log planted in the application database',
      'writer',
      'execute',
      () => ({
        sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('audit_log', 9223372036854775807)",
      }),
      undefined,
    ],
    // Read or copy it
    ['a read', 'reader', 'query', () => ({ sql: 'SELECT * FROM audit_log' }), noSuchTable],
    [
      'a key lookup (the inline reader)',
      'reader',
      'query',
      () => ({ sql: 'SELECT outcome FROM audit_log WHERE id = 1' }),
      noSuchTable,
    ],
    [
      'a key lookup of the ledger',
      'reader',
      'query',
      () => ({ sql: 'SELECT * FROM scopedb_migrations WHERE rowid = 1' }),
      noSuchTable,
    ],
    [
      'RETURNING a subquery of the log',
      'writer',
      'execute',
      () => ({ sql: 'DELETE FROM t RETURNING (SELECT group_concat(subject) FROM audit_log)' }),
      noSuchTable,
    ],
    [
      'RETURNING a subquery of the log in a dry run',
      'writer',
      'execute',
      () => ({
        sql: "UPDATE t SET body = 'x' RETURNING (SELECT count(*) FROM audit_log)",
        dry_run: true,
      }),
      noSuchTable,
    ],
    [
      'INSERT ... SELECT from the log',
      'writer',
      'execute',
      () => ({ sql: 'INSERT INTO copy (body) SELECT subject FROM audit_log' }),
      noSuchTable,
    ],
    [
      'CREATE TABLE AS SELECT from the log',
      'admin',
      'apply_migration',
      () => ({ name: 'steal', sql: 'CREATE TABLE stolen AS SELECT * FROM audit_log' }),
      noSuchTable,
    ],
    // Reach the internal file
    [
      'ATTACH of the internal file by query',
      'reader',
      'query',
      () => ({ sql: `ATTACH DATABASE ${internal()} AS internal` }),
      /ATTACH is not allowed/,
    ],
    [
      'ATTACH of the internal file by execute',
      'writer',
      'execute',
      () => ({ sql: `ATTACH DATABASE ${internal()} AS internal` }),
      /ATTACH is not allowed/,
    ],
    [
      'ATTACH of the internal file by a migration',
      'admin',
      'apply_migration',
      () => ({
        name: 'attach_internal',
        sql: `ATTACH DATABASE ${internal()} AS internal; DROP TABLE internal.audit_log`,
      }),
      /ATTACH is not allowed/,
    ],
    [
      'VACUUM INTO the internal file',
      'admin',
      'apply_migration',
      () => ({ name: 'vacuum_over', sql: `VACUUM INTO ${internal()}` }),
      /VACUUM/,
    ],
    [
      'a schema-qualified read',
      'reader',
      'query',
      () => ({ sql: 'SELECT * FROM internal.audit_log' }),
      /no such table/,
    ],
    // Forge records or ledger rows
    [
      'a write to the log',
      'writer',
      'execute',
      () => ({
        sql: `INSERT INTO audit_log (time, outcome) VALUES ('${FORGED_TIME}', 'success')`,
      }),
      noSuchTable,
    ],
    [
      'insert_rows into the log',
      'writer',
      'insert_rows',
      () => ({ table: 'audit_log', rows: [{ time: FORGED_TIME, outcome: 'success' }] }),
      /UNKNOWN_TABLE/,
    ],
    [
      'a write to the ledger',
      'writer',
      'execute',
      () => ({
        sql: "INSERT INTO scopedb_migrations (name, checksum, sql, appliedAt, appliedBy) VALUES ('forged', 'x', 'x', 'x', 'x')",
      }),
      noSuchTable,
    ],
    [
      'a table named audit_log in the application database',
      'admin',
      'apply_migration',
      () => ({ name: 'decoy_log', sql: 'CREATE TABLE audit_log (time TEXT, outcome TEXT)' }),
      /RESERVED_NAME/,
    ],
    [
      'the same name in other letters',
      'admin',
      'apply_migration',
      () => ({ name: 'decoy_log_caps', sql: 'CREATE TABLE "Audit_Log" (time TEXT)' }),
      /RESERVED_NAME/,
    ],
    [
      'a ledger of its own',
      'admin',
      'apply_migration',
      () => ({ name: 'decoy_ledger', sql: 'CREATE TABLE scopedb_migrations (name TEXT)' }),
      /RESERVED_NAME/,
    ],
    [
      'a temporary trigger that forges records when rows are written',
      'admin',
      'apply_migration',
      () => ({
        name: 'temp_forge',
        sql: `CREATE TEMP TRIGGER forge AFTER INSERT ON main.t BEGIN INSERT INTO audit_log (time, outcome) VALUES ('${FORGED_TIME}', 'success'); END`,
      }),
      /TEMP/,
    ],
    [
      'a temporary view over the log',
      'admin',
      'apply_migration',
      () => ({ name: 'temp_peek', sql: 'CREATE TEMP VIEW peek AS SELECT * FROM audit_log' }),
      /TEMP|no such table/,
    ],
    [
      'DDL smuggled into a migration as a write',
      'admin',
      'apply_migration',
      () => ({
        name: 'smuggle',
        sql: "CREATE TABLE s (x); INSERT INTO scopedb_migrations (name) VALUES ('forged')",
      }),
      noSuchTable,
    ],
  ])('%s is refused or reaches nothing', async (_case, role, tool, args, message) => {
    const attack = await sendAs(role, tool, args());
    const next = await sendAs('reader', 'query', { sql: 'SELECT 1' });

    expect(attack.status).toBe(200);
    if (message) expect(attack.text).toMatch(message);
    // Both recorded, once each: the log was neither silenced nor written twice.
    expect(recordsOf(attack.requestId, next.requestId)).toEqual([1, 1]);
  });

  it('reaches nothing with a view or a trigger naming the log: they refer to a table that is not there', async () => {
    const created = await sendAs('admin', 'apply_migration', {
      name: 'dangling',
      sql: `CREATE VIEW peek_log AS SELECT * FROM audit_log; CREATE TRIGGER forge_log AFTER INSERT ON t BEGIN INSERT INTO audit_log (time, outcome) VALUES ('${FORGED_TIME}', 'success'); END`,
    });
    // Whether SQLite accepts objects naming a missing table or not, they reach nothing.
    if (!created.result.isError) {
      expect((await sendAs('reader', 'query', { sql: 'SELECT * FROM peek_log' })).text).toMatch(
        noSuchTable,
      );
      expect(
        (
          await sendAs('writer', 'insert_rows', {
            table: 't',
            rows: [{ body: 'fires the trigger' }],
          })
        ).text,
      ).toMatch(noSuchTable);
    }
  });

  it('lets a db:query caller see only the application database', async () => {
    const { result } = await sendAs('reader', 'query', {
      sql: 'SELECT name, file FROM pragma_database_list',
    });

    const files = (result.structuredContent?.rows as string[][]).map(([, file]) => file);
    expect(files.filter((file) => file.includes('scopedb-internal'))).toEqual([]);
    expect(files).toContain(appPath());
  });

  it('keeps the log whole and unforged, and the ledger to what legitimately succeeded', async () => {
    // One more call after every attack: still audited.
    const after = await sendAs('reader', 'query', { sql: 'SELECT count(*) AS n FROM t' });
    expect(after.result.isError).toBeFalsy();

    const records = readSqlite(
      internalPath(),
      (db) => db.prepare('SELECT * FROM audit_log ORDER BY id').all() as Row[],
    );
    // Every request has exactly its record, with the caller it came from; nothing else is there.
    expect(records.map((record) => record.requestId).sort()).toEqual([...sent.keys()].sort());
    for (const record of records)
      expect({ requestId: record.requestId, subject: record.subject }).toEqual({
        requestId: record.requestId,
        subject: subjectOf(sent.get(String(record.requestId))!),
      });
    expect(records.filter((record) => record.time === FORGED_TIME)).toEqual([]);
    expect(records.map((record) => record.id)).toEqual(records.map((_record, index) => index + 1));
    expect(
      readSqlite(internalPath(), (db) =>
        db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").pluck().get(),
      ),
    ).toBe(records.length);

    const ledger = readSqlite(
      internalPath(),
      (db) => db.prepare('SELECT * FROM scopedb_migrations ORDER BY id').all() as Row[],
    );
    expect(ledger.map(({ name, status, appliedBy }) => ({ name, status, appliedBy }))).toEqual(
      applied.map((name) => ({ name, status: 'applied', appliedBy: subjectOf('admin') })),
    );

    expect(tableNames(appPath()).filter((name) => /audit|scopedb/i.test(name))).toEqual([]);
  });

  it('gives the SQL workers the application database only', () => {
    const workers = childrenOf(server.child.pid!);
    expect(workers.length).toBeGreaterThanOrEqual(2);
    for (const pid of workers) {
      const files = openFiles(pid);
      expect({ pid, app: files.includes(appPath()) }).toEqual({ pid, app: true });
      expect(files.filter((file) => file.includes('scopedb-internal'))).toEqual([]);
    }
    expect(openFiles(server.child.pid!)).toContain(internalPath());
  });
});
