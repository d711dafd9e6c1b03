// AUDIT_DATABASE_URL end to end: the audit log in a SQLite file or a PostgreSQL database of its own,
// out of the SQL tools' reach, append-only there too, read by get_audit_log and audit:export.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { AuditDatabase } from '../src/audit/audit-database.js';
import { freePort, startTestApp, type TestApp } from './support/app.js';
import { runExport } from './support/export.js';
import { CASDOOR_CLAIMS, TestIssuer } from './support/issuer.js';
import { match } from './support/matchers.js';
import { countAuditRows, readAuditRows } from './support/audit-rows.js';
import { callTool, postMcp } from './support/mcp-http.js';
import { startNode } from './support/node-process.js';
import { createTestDatabase, type TestPostgresDatabase } from './support/postgres.js';
import { tableNames } from './support/sqlite-files.js';
import { textOf, toolClient, type ToolClient } from './support/tool-client.js';

interface AuditRecordJson {
  id: number;
  outcome: string;
  tool: string | null;
  request_id: string | null;
  [field: string]: unknown;
}

const ALL_SCOPES = 'db:query db:modify db:admin';
describe('audit log in a SQLite file of its own (AUDIT_DATABASE_URL=sqlite:...)', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let dir: string;
  let auditPath: string;
  let client: ToolClient;
  const auditRecords = (requestId: string) => readAuditRows(auditPath, requestId).length;

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    dir = mkdtempSync(join(tmpdir(), 'scopedb-audit-db-'));
    // In a directory that does not exist yet: it is created, as for DATABASE_URL.
    auditPath = join(dir, 'audit', 'audit.sqlite');
    sut = await startTestApp({
      AUTH_ISSUER: issuer.url,
      AUDIT_DATABASE_URL: `sqlite:${auditPath}`,
    });
    client = toolClient(sut.mcpUrl, issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES }), {
      requestIds: 'audit-sqlite',
    });
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits each record to the audit file before answering, none to the application or internal database', async () => {
    const { requestId: migration } = await client.traced('apply_migration', {
      name: 'audit_db_notes',
      sql: 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)',
    });
    const { requestId: write } = await client.traced('execute', {
      sql: 'INSERT INTO notes (body) VALUES (?)',
      params: ['hello'],
    });
    const { requestId: read } = await client.traced('query', {
      sql: 'SELECT count(*) AS n FROM notes',
    });

    expect([migration, write, read].map(auditRecords)).toEqual([1, 1, 1]);
    expect(tableNames(sut.databasePath)).toEqual(['notes']);
    expect(tableNames(sut.internalDatabasePath)).not.toContain('audit_log');
  });

  it('keeps the audit file out of reach of execute and apply_migration, which see only the application database', async () => {
    const before = countAuditRows(auditPath);
    const attempts = [
      await client.traced('execute', { sql: 'DELETE FROM audit_log' }),
      await client.traced('execute', { sql: `ATTACH DATABASE '${auditPath}' AS audit` }),
      await client.traced('apply_migration', {
        name: 'reach_the_audit_file',
        sql: `ATTACH DATABASE '${auditPath}' AS audit; DROP TABLE audit.audit_log`,
      }),
      await client.traced('apply_migration', {
        name: 'drop_the_audit_log',
        sql: 'DROP TABLE audit_log',
      }),
    ];

    expect(attempts.map(({ result }) => result.isError)).toEqual([true, true, true, true]);
    expect(textOf(attempts[1].result)).toMatch(/ATTACH is not allowed/);
    // Every earlier record is still there, and each attempt added its own.
    expect(countAuditRows(auditPath)).toBe(before + attempts.length);
    expect(attempts.map(({ requestId }) => auditRecords(requestId))).toEqual([1, 1, 1, 1]);
  });

  it('makes the audit file append-only with triggers', () => {
    const db = new Database(auditPath, { fileMustExist: true });
    try {
      expect(() => db.prepare("UPDATE audit_log SET outcome = 'success'").run()).toThrow(
        'audit_log is append-only',
      );
      expect(() => db.prepare('DELETE FROM audit_log').run()).toThrow('audit_log is append-only');
    } finally {
      db.close();
    }
  });

  it('serves get_audit_log from the audit file', async () => {
    const { requestId } = await client.traced('query', { sql: 'SELECT 1' });

    const { requestId: reading, result } = await client.traced('get_audit_log', { limit: 500 });

    const records = (result.structuredContent as { records: AuditRecordJson[] }).records;
    const db = new Database(auditPath, { readonly: true, fileMustExist: true });
    try {
      // Everything but the get_audit_log call's own record, written once it had answered.
      const expected = db
        .prepare<[string], number>('SELECT id FROM audit_log WHERE requestId <> ? ORDER BY id DESC')
        .pluck()
        .all(reading);
      expect(records.map((record) => record.id)).toEqual(expected);
    } finally {
      db.close();
    }
    expect(records.find((record) => record.request_id === requestId)).toMatchObject({
      outcome: 'success',
      tool: 'query',
      subject: CASDOOR_CLAIMS.sub,
    });
  });

  it('reports the audit database in /readyz', async () => {
    const response = await fetch(`${sut.baseUrl}/readyz`);

    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: 'ok',
      info: { database: { status: 'up' }, audit_database: { status: 'up' } },
    });
  });

  it('exports the audit file with npm run audit:export', async () => {
    const { code, stdout, stderr } = await runExport(['--since', '2000-01-01T00:00:00Z'], {
      DATABASE_URL: `sqlite:${sut.databasePath}`,
      AUDIT_DATABASE_URL: `sqlite:${auditPath}`,
    });

    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(countAuditRows(auditPath));
  });

  // Last: it closes the audit database of the app under test.
  it('answers /readyz 503 naming audit_database once the audit database is gone', async () => {
    await sut.app.get(AuditDatabase).dataSource.destroy();

    const response = await fetch(`${sut.baseUrl}/readyz`);

    expect(response.status).toBe(503);
    const body = (await response.json()) as { error: Record<string, unknown> };
    expect(body).toMatchObject({
      info: { database: { status: 'up' } },
      error: { audit_database: { status: 'down' } },
    });
    expect(Object.keys(body.error)).toEqual(['audit_database']);
  });
});

describe('audit log in PostgreSQL (AUDIT_DATABASE_URL=postgres://...)', () => {
  let issuer: TestIssuer;
  let sut: TestApp | undefined;
  let postgres: TestPostgresDatabase;
  let client: ToolClient;
  const app = () => {
    if (!sut) throw new Error('the app is not running');
    return sut;
  };
  const start = async () => {
    sut = await startTestApp({ AUTH_ISSUER: issuer.url, AUDIT_DATABASE_URL: postgres.url });
    client = toolClient(sut.mcpUrl, issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES }), {
      requestIds: 'audit-pg',
    });
  };
  const rows = async (sql: string, params: unknown[] = []) =>
    (await postgres.client.query<Record<string, unknown>>(sql, params)).rows;
  const total = async () => Number((await rows('SELECT count(*) AS n FROM audit_log'))[0].n);

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    postgres = await createTestDatabase('scopedb_audit');
    await start();
  });
  afterAll(async () => {
    await sut?.close();
    await postgres.drop();
    await issuer.close();
  });

  it('commits a tool call to PostgreSQL before answering, with every field, none to SQLite', async () => {
    const sql = 'SELECT ? AS greeting';

    const { requestId } = await client.traced('query', { sql, params: ['hi'] });

    expect(await rows('SELECT * FROM audit_log WHERE "requestId" = $1', [requestId])).toEqual([
      match.objectContaining({
        id: match.any(Number),
        outcome: 'success',
        tool: 'query',
        subject: CASDOOR_CLAIMS.sub,
        subjectUnverified: false,
        clientId: CASDOOR_CLAIMS.azp,
        grantedScopes: ALL_SCOPES,
        sqlText: sql,
        paramsHash: match.stringMatching(/^[0-9a-f]{64}$/),
        rowCount: 1,
        durationMs: match.any(Number),
      }),
    ]);
    expect(tableNames(app().databasePath)).not.toContain('audit_log');
    expect(tableNames(app().internalDatabasePath)).not.toContain('audit_log');
  });

  it('records refusals there too: a request without a token', async () => {
    const response = await postMcp(app().mcpUrl, callTool('query', { sql: 'SELECT 1' }), {
      headers: { 'X-Request-Id': `audit-pg-refused-${process.pid}` },
    });

    expect(response.status).toBe(401);
    expect(
      await rows('SELECT outcome, "subjectUnverified" FROM audit_log WHERE "requestId" = $1', [
        `audit-pg-refused-${process.pid}`,
      ]),
    ).toEqual([{ outcome: 'refused_no_token', subjectUnverified: false }]);
  });

  it('serves get_audit_log from PostgreSQL, paging with its cursor', async () => {
    for (let i = 0; i < 3; i++) await client.traced('query', { sql: `SELECT ${i}` });
    const expected = (await rows('SELECT id FROM audit_log ORDER BY id DESC')).map((r) => r.id);

    const first = await client.traced('get_audit_log', { limit: 2 });
    const page = first.result.structuredContent as {
      records: AuditRecordJson[];
      next_cursor: string | null;
    };
    const second = await client.traced('get_audit_log', { limit: 500, cursor: page.next_cursor });
    const rest = (second.result.structuredContent as { records: AuditRecordJson[] }).records;

    expect([...page.records, ...rest].map((record) => record.id)).toEqual(expected);
    expect(page.records[0]).toMatchObject({ subject_unverified: false, tool: 'query' });
  });

  it('refuses UPDATE, DELETE and TRUNCATE of audit_log with its triggers', async () => {
    const before = await total();

    for (const sql of [
      "UPDATE audit_log SET outcome = 'success'",
      'DELETE FROM audit_log',
      'DELETE FROM audit_log WHERE false',
      'TRUNCATE audit_log',
    ])
      await expect(postgres.client.query(sql)).rejects.toThrow('audit_log is append-only');

    expect(await total()).toBe(before);
  });

  it('reports the audit database in /readyz', async () => {
    const response = await fetch(`${app().baseUrl}/readyz`);

    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      info: { database: { status: 'up' }, audit_database: { status: 'up' } },
    });
  });

  it('exports the PostgreSQL records with npm run audit:export, oldest first', async () => {
    const expected = (await rows('SELECT id FROM audit_log ORDER BY time, id')).map((r) => r.id);

    const { code, stdout, stderr } = await runExport(['--since', '2000-01-01T00:00:00Z'], {
      DATABASE_URL: `sqlite:${app().databasePath}`,
      AUDIT_DATABASE_URL: postgres.url,
    });

    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditRecordJson);
    expect(lines.map((line) => line.id)).toEqual(expected);
    expect(lines[0]).toMatchObject({ subject_unverified: false });
  });

  it('starts again on the same database: its migrations run once, records are kept', async () => {
    const before = await total();
    await app().close();
    sut = undefined;

    await start();
    const { requestId } = await client.traced('list_tables');

    expect(await total()).toBe(before + 1);
    expect(await rows('SELECT name FROM scopedb_audit_migrations ORDER BY id')).toEqual([
      { name: 'AuditLog1765000000000' },
      { name: 'AuditIntents1765100000000' },
    ]);
    expect(await rows('SELECT outcome FROM audit_log WHERE "requestId" = $1', [requestId])).toEqual(
      [{ outcome: 'success' }],
    );
  });
});

describe('an audit database that cannot be reached', () => {
  it('stops node dist/main.js with one line naming it, never its password', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopedb-audit-down-'));
    const closedPort = await freePort();
    const password = 'pg-pass-never-shown';
    const main = startNode(
      resolve('dist/main.js'),
      {
        AUTH_ISSUER: 'https://casdoor.example.com',
        PORT: String(await freePort()),
        AUDIT_DATABASE_URL: `postgres://scopedb:${password}@127.0.0.1:${closedPort}/audit`,
      },
      dir,
    );
    try {
      const { code } = await main.exited;
      const { stdout, stderr } = main.output();

      expect(code).toBe(1);
      expect(stderr.trimEnd().split('\n').pop()).toBe(
        `Start-up failed: the audit database (AUDIT_DATABASE_URL=postgres://scopedb:***@127.0.0.1:${closedPort}/audit) could not be opened: connect ECONNREFUSED 127.0.0.1:${closedPort}`,
      );
      expect(`${stdout}${stderr}`).not.toContain(password);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails npm run audit:export with exit code 1 and one line naming it, never its password', async () => {
    const closedPort = await freePort();
    const password = 'pg-pass-never-shown';

    const { code, stdout, stderr } = await runExport(['--since', '2000-01-01T00:00:00Z'], {
      AUDIT_DATABASE_URL: `postgres://scopedb:${password}@127.0.0.1:${closedPort}/audit`,
    });

    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toBe(
      `audit:export: the audit database (AUDIT_DATABASE_URL=postgres://scopedb:***@127.0.0.1:${closedPort}/audit) could not be opened: connect ECONNREFUSED 127.0.0.1:${closedPort}\n`,
    );
  });
});
