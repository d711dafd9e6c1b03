// The audit trail end to end: what each decision records, get_audit_log, and audit:export.
import { createHash, randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { runExport } from './support/export.js';
import { CASDOOR_CLAIMS, TestIssuer } from './support/issuer.js';
import { expectRefusedScope, postAudited } from './support/audit-rows.js';
import { callTool, challengeParams, LEGACY_PROTOCOL } from './support/mcp-http.js';
import { match } from './support/matchers.js';
import { nextRequestId } from './support/request-ids.js';
import { textOf, toolClient, type ToolClient } from './support/tool-client.js';

interface AuditRecordJson {
  id: number;
  time: string;
  outcome: string;
  tool: string | null;
  subject: string | null;
  client_id: string | null;
  [field: string]: unknown;
}

interface AuditLogPage {
  records: AuditRecordJson[];
  next_cursor: string | null;
}

type Row = Record<string, unknown> & { id: number; time: string };

const SUBJECT = CASDOOR_CLAIMS.sub as string;
const CLIENT_ID = CASDOOR_CLAIMS.azp as string;
const TOKEN_ID = CASDOOR_CLAIMS.jti as string;
const NAME = CASDOOR_CLAIMS.name as string;
const EMAIL = CASDOOR_CLAIMS.email as string;
const ALL_SCOPES = 'db:query db:modify db:admin';
const BOB = { sub: 'bob-0b0b0b0b', azp: 'bob-client', name: 'bob', email: 'bob@example.com' };
const PAGER = { sub: 'pager-user', azp: 'pager-client', jti: 'admin/pager-1' };
const PAGER_CALLS = 55;
const USER_AGENT = 'audit-e2e/1.0 (+https://scopedb.dev)';
const LOOPBACK = match.stringMatching(/^(::ffff:)?127\.0\.0\.1$/);
const ISO_MS = match.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
/** A parameter value that must never reach the audit trail. */
const SECRET = `audit-secret-${randomUUID()}`;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const scopeList = (stored: unknown) => (stored === null ? null : (stored as string).split(' '));
/** The same instant written with a +02:00 offset. */
const withOffset = (iso: string) =>
  new Date(Date.parse(iso) + 2 * 3600_000).toISOString().replace('Z', '+02:00');

describe('audit trail (e2e)', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  /** An independent read-only view of the audit database (the internal database's file). */
  let db: Database.Database;
  let adminToken: string;
  let bobToken: string;
  let pagerToken: string;
  const tokens: string[] = [];
  let admin: ToolClient;
  let pager: ToolClient;

  const rows = (sql: string, ...params: unknown[]) => db.prepare(sql).all(...params) as Row[];
  const ids = (found: { id: number }[]) => found.map((row) => row.id);
  /** A client of the server whose calls carry USER_AGENT and a request id each. */
  const clientWith = (token: string) =>
    toolClient(sut.mcpUrl, token, {
      requestIds: 'audit-e2e',
      headers: { 'User-Agent': USER_AGENT },
      auditDatabasePath: () => sut.auditDatabasePath,
    });
  /** Posts `body` as clientWith's calls are sent; the answer and the records it left. */
  const send = (
    body: unknown,
    options: { token?: string; headers?: Record<string, string> } = {},
  ) =>
    postAudited(sut, 'audit-e2e', body, {
      token: options.token,
      headers: { 'User-Agent': USER_AGENT, ...options.headers },
    });

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp({ AUTH_ISSUER: issuer.url });
    adminToken = issuer.token({ audience: sut.mcpUrl, scope: ALL_SCOPES });
    bobToken = issuer.token({ audience: sut.mcpUrl, scope: 'db:query', claims: BOB });
    pagerToken = issuer.token({ audience: sut.mcpUrl, scope: 'db:query', claims: PAGER });
    tokens.push(adminToken, bobToken, pagerToken);
    admin = clientWith(adminToken);
    pager = clientWith(pagerToken);
    db = new Database(sut.auditDatabasePath, { readonly: true, fileMustExist: true });
    const { result } = await admin.audited('apply_migration', {
      name: 'audit_e2e_schema',
      sql: 'CREATE TABLE ae_notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)',
    });
    expect(result.isError).toBeFalsy();
  });
  afterAll(async () => {
    db.close();
    await sut.close();
    await issuer.close();
  });

  describe('records', () => {
    /** What every record of a verified admin call carries. */
    const adminCall = (fields: Record<string, unknown>) => ({
      id: match.any(Number),
      time: ISO_MS,
      requestId: match.any(String),
      subject: SUBJECT,
      subjectUnverified: 0,
      principalName: NAME,
      principalEmail: EMAIL,
      clientId: CLIENT_ID,
      tokenId: TOKEN_ID,
      grantedScopes: ALL_SCOPES,
      durationMs: match.any(Number),
      remoteAddress: LOOPBACK,
      userAgent: USER_AGENT,
      protocolVersion: LEGACY_PROTOCOL,
      reason: null,
      rowCount: null,
      sqlText: null,
      paramsHash: null,
      tableName: null,
      ...fields,
    });
    /** What a successful admin call of `tool`, needing `requiredScopes`, records. */
    const success = (tool: string, requiredScopes: string, fields: Record<string, unknown>) =>
      adminCall({ outcome: 'success', tool, requiredScopes, ...fields });
    /** What a refusal before any token was verified carries. */
    const refusal = (fields: Record<string, unknown>) => ({
      id: match.any(Number),
      time: ISO_MS,
      requestId: match.any(String),
      subject: null,
      subjectUnverified: 0,
      principalName: null,
      principalEmail: null,
      clientId: null,
      tokenId: null,
      tool: null,
      requiredScopes: null,
      grantedScopes: null,
      durationMs: null,
      remoteAddress: LOOPBACK,
      userAgent: USER_AGENT,
      protocolVersion: LEGACY_PROTOCOL,
      rowCount: null,
      sqlText: null,
      paramsHash: null,
      tableName: null,
      ...fields,
    });

    it('records a query as success with its SQL, a hash of its params and the rows returned', async () => {
      const sql = "WITH t(n) AS (VALUES (1), (2), (3)) SELECT n FROM t WHERE ? <> ''";

      const { result, records: written } = await admin.audited('query', { sql, params: [SECRET] });

      expect(result.structuredContent).toMatchObject({ row_count: 3 });
      expect(written).toEqual([
        success('query', 'db:query', {
          rowCount: 3,
          sqlText: sql,
          paramsHash: sha256(JSON.stringify([SECRET])),
        }),
      ]);
    });

    it('records a write with the rows it changed and named params hashed as sent', async () => {
      const sql = 'INSERT INTO ae_notes (body) VALUES (:body), (:body)';
      const params = { body: SECRET };

      const { result, records: written } = await admin.audited('execute', { sql, params });

      expect(result.structuredContent).toMatchObject({ affected_rows: 2 });
      expect(written).toEqual([
        success('execute', 'db:modify', {
          rowCount: 2,
          sqlText: sql,
          paramsHash: sha256(JSON.stringify(params)),
        }),
      ]);
    });

    it('records a row tool without SQL: its table, no sqlText, no paramsHash, the affected rows', async () => {
      const { records: written } = await admin.audited('insert_rows', {
        table: 'ae_notes',
        rows: [{ body: SECRET }, { body: SECRET }, { body: SECRET }],
      });

      expect(written).toEqual([
        success('insert_rows', 'db:modify', { rowCount: 3, tableName: 'ae_notes' }),
      ]);
    });

    it('records a statement without params with no paramsHash', async () => {
      const { records: written } = await admin.audited('query', { sql: 'SELECT 1 AS one' });

      expect(written).toEqual([
        success('query', 'db:query', { rowCount: 1, sqlText: 'SELECT 1 AS one' }),
      ]);
    });

    it('records a failed call as tool_error with its SQL and params hash, and no row count', async () => {
      const sql = 'SELECT * FROM ae_nowhere WHERE body = ?';

      const { result, records: written } = await admin.audited('query', { sql, params: [SECRET] });

      expect(result.isError).toBe(true);
      expect(written).toEqual([
        adminCall({
          outcome: 'tool_error',
          tool: 'query',
          requiredScopes: 'db:query',
          reason: match.stringContaining('no such table: ae_nowhere'),
          sqlText: sql,
          paramsHash: sha256(JSON.stringify([SECRET])),
        }),
      ]);
    });

    it('records a refused scope with the caller, both scope lists, the client software and what it would have run', async () => {
      const sql = 'DELETE FROM ae_notes WHERE body = ?';
      const { response, records: written } = await send(
        callTool('execute', { sql, params: [SECRET] }),
        { token: bobToken },
      );

      expect(response.status).toBe(403);
      expect(written).toEqual([
        refusal({
          outcome: 'refused_scope',
          subject: BOB.sub,
          principalName: BOB.name,
          principalEmail: BOB.email,
          clientId: BOB.azp,
          tokenId: TOKEN_ID,
          tool: 'execute',
          requiredScopes: 'db:modify',
          grantedScopes: 'db:query',
          reason: 'The tool execute requires the scope db:modify',
          // As a success would record it: the SQL, the params only hashed.
          sqlText: sql,
          paramsHash: sha256(JSON.stringify([SECRET])),
        }),
      ]);
      expect(JSON.stringify(written)).not.toContain(SECRET);
    });

    it('records a refused row tool with the table it named', async () => {
      const answer = await send(
        callTool('delete_rows', {
          table: 'ae_notes',
          where: [{ column: 'body', op: '=', value: SECRET }],
        }),
        { token: bobToken },
      );

      expectRefusedScope(answer, 'delete_rows', { tableName: 'ae_notes' });
    });

    it('records an invalid token with the subject it claimed, marked unverified, and no name', async () => {
      const expired = issuer.token({
        audience: sut.mcpUrl,
        scope: ALL_SCOPES,
        claims: { exp: Math.floor(Date.now() / 1000) - 3600 },
      });
      tokens.push(expired);

      const { response, records: written } = await send(
        callTool('query', { sql: 'SELECT ?', params: [SECRET] }),
        { token: expired },
      );

      expect(response.status).toBe(401);
      expect(written).toEqual([
        refusal({
          outcome: 'refused_invalid_token',
          subject: SUBJECT,
          subjectUnverified: 1,
          clientId: CLIENT_ID,
          tokenId: TOKEN_ID,
          reason: match.stringContaining('the token expired at'),
        }),
      ]);
    });

    it('records a request without a token with where it came from', async () => {
      const { response, records: written } = await send(
        callTool('query', { sql: 'SELECT ?', params: [SECRET] }),
      );

      expect(response.status).toBe(401);
      expect(written).toEqual([
        refusal({ outcome: 'refused_no_token', reason: match.any(String) }),
      ]);
    });

    it('records a foreign Origin with where it came from', async () => {
      const { response, records: written } = await send(callTool('query', { sql: 'SELECT 1' }), {
        token: adminToken,
        headers: { Origin: 'http://evil.example' },
      });

      expect(response.status).toBe(403);
      expect(written).toEqual([
        refusal({
          outcome: 'refused_origin',
          reason: 'Origin http://evil.example is not allowed',
        }),
      ]);
    });

    it('takes the protocol version of an initialize body when there is no header', async () => {
      const requestId = nextRequestId('audit-e2e');

      const response = await fetch(sut.mcpUrl, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json, text/event-stream',
          'User-Agent': USER_AGENT,
          'X-Request-Id': requestId,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            clientInfo: { name: 'x', version: '1' },
          },
        }),
      });

      expect(response.status).toBe(401);
      expect(
        rows('SELECT outcome, protocolVersion FROM audit_log WHERE requestId = ?', requestId),
      ).toEqual([{ outcome: 'refused_no_token', protocolVersion: '2025-06-18' }]);
    });

    it('clips a long user agent', async () => {
      const { records: written } = await send(callTool('query', { sql: 'SELECT 1' }), {
        headers: { 'User-Agent': `long-agent/${'x'.repeat(2000)}` },
      });

      expect(written).toHaveLength(1);
      expect(written[0].userAgent).toBe(`long-agent/${'x'.repeat(244)}…`);
    });

    it('never stores a token or a parameter value, in any column of any record', () => {
      const stored = rows('SELECT * FROM audit_log').flatMap((row) =>
        Object.values(row).map(String),
      );

      expect(stored.length).toBeGreaterThan(0);
      const secrets = [
        SECRET,
        ...tokens.flatMap((token) => [
          token,
          ...token.split('.').filter((part) => part.length >= 16),
        ]),
      ];
      for (const secret of secrets)
        expect(stored.filter((text) => text.includes(secret))).toEqual([]);
    });
  });

  describe('get_audit_log', () => {
    beforeAll(async () => {
      for (let i = 0; i < PAGER_CALLS; i++) {
        const { result } = await pager.audited('query', { sql: `SELECT ${i} AS page_call` });
        expect(result.isError).toBeFalsy();
      }
    });

    it('needs db:admin: a db:query db:modify token is refused with a step-up challenge', async () => {
      const token = issuer.token({ audience: sut.mcpUrl, scope: 'db:query db:modify' });
      tokens.push(token);

      const answer = await send(callTool('get_audit_log', {}), { token });

      expectRefusedScope(answer, 'get_audit_log', { requiredScopes: 'db:admin' });
      expect(challengeParams(answer.response.headers.get('www-authenticate'))).toMatchObject({
        error: 'insufficient_scope',
        scope: 'db:query db:modify db:admin',
      });
    });

    it('gives records newest first, every field as stored', async () => {
      const newest = rows('SELECT * FROM audit_log ORDER BY id DESC LIMIT 3');

      const page = await admin.ok<AuditLogPage>('get_audit_log', { limit: 3 });

      expect(ids(page.records)).toEqual(ids(newest));
      const [row] = newest;
      expect(page.records[0]).toEqual({
        id: row.id,
        time: row.time,
        outcome: row.outcome,
        tool: row.tool,
        subject: row.subject,
        subject_unverified: row.subjectUnverified === 1,
        principal_name: row.principalName,
        principal_email: row.principalEmail,
        client_id: row.clientId,
        token_id: row.tokenId,
        required_scopes: scopeList(row.requiredScopes),
        granted_scopes: scopeList(row.grantedScopes),
        reason: row.reason,
        table_name: row.tableName,
        sql_text: row.sqlText,
        params_hash: row.paramsHash,
        row_count: row.rowCount,
        duration_ms: row.durationMs,
        request_id: row.requestId,
        remote_address: row.remoteAddress,
        user_agent: row.userAgent,
        protocol_version: row.protocolVersion,
      });
    });

    it('records its own calls, with db:admin as the required scope', async () => {
      const { records: written } = await admin.audited('get_audit_log', { limit: 1 });

      expect(written).toEqual([
        match.objectContaining({
          outcome: 'success',
          tool: 'get_audit_log',
          requiredScopes: 'db:admin',
          sqlText: null,
          paramsHash: null,
        }),
      ]);
    });

    it.each([
      ['principal', { principal: BOB.sub }, 'subject = ?', [BOB.sub]],
      ['client', { client: PAGER.azp }, 'clientId = ?', [PAGER.azp]],
      ['tool', { tool: 'execute' }, 'tool = ?', ['execute']],
      ['outcome', { outcome: 'refused_no_token' }, 'outcome = ?', ['refused_no_token']],
      [
        'principal and outcome together',
        { principal: SUBJECT, outcome: 'tool_error' },
        'subject = ? AND outcome = ?',
        [SUBJECT, 'tool_error'],
      ],
    ])('filters by %s', async (_filter, args, where, params) => {
      const expected = rows(`SELECT id FROM audit_log WHERE ${where} ORDER BY id DESC`, ...params);
      expect(expected.length).toBeGreaterThan(0);

      const page = await admin.ok<AuditLogPage>('get_audit_log', { ...args, limit: 500 });

      expect(ids(page.records)).toEqual(ids(expected));
      expect(page.next_cursor).toBeNull();
    });

    it('filters by time: since inclusive, until exclusive, offsets understood', async () => {
      const all = rows('SELECT id, time FROM audit_log ORDER BY id');
      const since = all[5].time;
      const until = all[all.length - 10].time;
      const expected = all.filter((row) => row.time >= since && row.time < until).reverse();
      expect(expected.length).toBeGreaterThan(10);

      const page = await admin.ok<AuditLogPage>('get_audit_log', {
        since: withOffset(since),
        until: withOffset(until),
        limit: 500,
      });

      expect(ids(page.records)).toEqual(ids(expected));
      expect(ids(page.records)).toContain(all[5].id);
      expect(ids(page.records)).not.toContain(all[all.length - 10].id);
    });

    it('answers a filter that matches nothing with no records and no cursor', async () => {
      const page = await admin.ok<AuditLogPage>('get_audit_log', { principal: 'nobody-at-all' });

      expect(page).toEqual({ records: [], next_cursor: null });
    });

    it.each([
      [7, [7, 7, 7, 7, 7, 7, 7, 6]],
      [undefined, [50, 5]],
      [55, [55]],
    ])('pages with limit %p through every record once, in order', async (limit, sizes) => {
      const expected = ids(
        rows('SELECT id FROM audit_log WHERE clientId = ? ORDER BY id DESC', PAGER.azp),
      );
      expect(expected).toHaveLength(PAGER_CALLS);

      const seen: number[] = [];
      const pageSizes: number[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await admin.ok<AuditLogPage>('get_audit_log', {
          client: PAGER.azp,
          limit,
          cursor,
        });
        seen.push(...ids(page.records));
        pageSizes.push(page.records.length);
        if (page.next_cursor === null) break;
        expect(page.next_cursor).toMatch(/^[A-Za-z0-9_-]+$/);
        cursor = page.next_cursor;
        expect(pageSizes.length).toBeLessThan(20);
      }

      expect(pageSizes).toEqual(sizes);
      expect(seen).toEqual(expected);
    });

    it.each([
      ['not base64url JSON', 'not-a-cursor'],
      ['JSON without an id', Buffer.from('{"page":2}').toString('base64url')],
      ['an id that is not a number', Buffer.from('{"id":"12"}').toString('base64url')],
      ['a negative id', Buffer.from('{"id":-1}').toString('base64url')],
      ['a JSON null', Buffer.from('null').toString('base64url')],
      ['padded base64', `${Buffer.from('{"id":12}').toString('base64')}==`],
    ])('refuses a malformed cursor (%s) with a clear error', async (_case, cursor) => {
      const { result } = await admin.audited('get_audit_log', { cursor });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(
        /^Error \[INVALID_CURSOR\]: cursor is not one that get_audit_log gave out/,
      );
    });

    it.each([
      ['a limit above 500', { limit: 501 }],
      ['a limit of 0', { limit: 0 }],
      ['a date without a time', { since: '2026-01-01' }],
      ['a time without a zone', { until: '2026-01-01T00:00:00' }],
      ['an unknown outcome', { outcome: 'refused_everything' }],
    ])('refuses %s', async (_case, args) => {
      const { result } = await admin.audited('get_audit_log', args);

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/input validation/i);
    });

    it('is not in the database the SQL tools open', async () => {
      const { result } = await admin.audited('query', { sql: 'SELECT count(*) FROM audit_log' });

      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Error \[SQLITE_ERROR\]: no such table: audit_log/);
    });
  });

  describe('npm run audit:export', () => {
    const databaseUrl = () => `sqlite:${sut.databasePath}`;
    const parse = (stdout: string) =>
      stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as AuditRecordJson);

    it('writes every record since --since as JSON Lines, oldest first, as get_audit_log gives them', async () => {
      const all = rows('SELECT id, time FROM audit_log ORDER BY id');
      const since = all[3].time;
      const expected = all.filter((row) => row.time >= since);

      const { code, stdout, stderr } = await runExport(['--since', since], {
        DATABASE_URL: databaseUrl(),
      });

      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout.endsWith('\n')).toBe(true);
      const lines = parse(stdout);
      expect(ids(lines)).toEqual(ids(expected));
      const times = lines.map((line) => line.time);
      expect(times).toEqual([...times].sort());
      const { records } = await admin.ok<AuditLogPage>('get_audit_log', { since, limit: 500 });
      expect(records.length).toBeGreaterThan(50);
      expect(lines).toHaveLength(records.length);
      const byId = new Map(lines.map((line) => [line.id, line]));
      for (const record of records) expect(byId.get(record.id)).toEqual(record);
      for (const secret of [SECRET, ...tokens]) expect(stdout).not.toContain(secret);
    });

    it('stops before --until', async () => {
      const all = rows('SELECT id, time FROM audit_log ORDER BY id');
      const [since, until] = [all[2].time, all[20].time];

      const { code, stdout } = await runExport(['--since', withOffset(since), '--until', until], {
        DATABASE_URL: databaseUrl(),
      });

      expect(code).toBe(0);
      expect(ids(parse(stdout))).toEqual(
        ids(all.filter((row) => row.time >= since && row.time < until)),
      );
    });

    it.each([
      [
        'a --since that is not a date-time',
        ['--since', 'yesterday'],
        /--since must be an ISO 8601/,
      ],
      ['no --since', ['--until', '2026-01-01T00:00:00Z'], /--since is required/],
      ['an unknown option', ['--since', '2026-01-01T00:00:00Z', '--format', 'csv'], /--format/],
      [
        'a bad --until',
        ['--since', '2026-01-01T00:00:00Z', '--until', '2026-02-30T00:00:00Z'],
        /--until must be/,
      ],
    ])('exits 2 with one line on stderr for %s', async (_case, args, message) => {
      const { code, stdout, stderr } = await runExport(args, { DATABASE_URL: databaseUrl() });

      expect(code).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toMatch(message);
      expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    });

    it('exits 1 with a clear message when the database file does not exist', async () => {
      const missing = join(dirname(sut.databasePath), 'missing.sqlite');

      const { code, stdout, stderr } = await runExport(['--since', '2026-01-01T00:00:00Z'], {
        DATABASE_URL: databaseUrl(),
        INTERNAL_DATABASE_URL: `sqlite:${missing}`,
      });

      expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
      expect(stderr).toBe(
        `audit:export: no database file at ${missing} (from INTERNAL_DATABASE_URL)\n`,
      );
    });
  });
});
