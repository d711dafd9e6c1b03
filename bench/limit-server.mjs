/**
 * The benchmark's physical anchor: the work one authenticated, scoped, audited `query` call needs,
 * on plain `node:http`, and nothing more. ScopeDB's CPU per request is held to a multiple of
 * this server's. Per request it
 * - verifies the bearer JWT once per distinct token (RS256 against the issuer's JWKS, fetched once
 *   at start; iss, aud, exp and nbf checked) and afterwards finds it in a cache (exp rechecked);
 * - checks the tool's scope in the token's `scope` claim;
 * - runs the SQL as a cached prepared statement on a read-only better-sqlite3 connection, reading
 *   at most max_rows + 1 rows;
 * - appends one audit row per call to a SQLite file of its own, group-committed: the rows of one
 *   event-loop turn go in one transaction, and each call is answered only after its row commits;
 * - answers the JSON-RPC result as ScopeDB's `query` tool does (content text + structuredContent),
 *   in the 2025-11-25 shape or, for a request with the 2026-07-28 `_meta` envelope (headers
 *   cross-checked against the body), with that era's `resultType` and server-info `_meta`.
 * `tools/list` answers the list ScopeDB itself gave (LIMIT_TOOLS), so both list the same tools.
 *
 * Env: LIMIT_DB (the items database), LIMIT_AUDIT_DB (its audit file, created), LIMIT_ISSUER
 * (issuer URL), LIMIT_RESOURCE (the audience tokens must name), LIMIT_TOOLS (a JSON file:
 * `{ tools, meta }`: ScopeDB's tools and the `_meta` of its 2026-07-28 answers), PORT (0), HOST (127.0.0.1). Prints `listening <url>`.
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { setImmediate } from 'node:timers';
import Database from 'better-sqlite3';

function env(name) {
  const value = process.env[name];
  if (value) return value;
  process.stderr.write(`${name} is required\n`);
  process.exit(1);
}
const issuer = env('LIMIT_ISSUER');
const resource = env('LIMIT_RESOURCE');
const { tools, meta } = JSON.parse(readFileSync(env('LIMIT_TOOLS'), 'utf8'));
const MODERN = '2026-07-28';
const VERSION_KEY = 'io.modelcontextprotocol/protocolVersion';
const TOOL_SCOPES = { query: 'db:query' };

// The JWKS, once: discovery, then its jwks_uri.
const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const { keys } = await (await fetch(discovery.jwks_uri)).json();
const publicKeys = new Map(
  keys.map((jwk) => [jwk.kid, createPublicKey({ key: jwk, format: 'jwk' })]),
);

/** Verified tokens: the claims of each distinct token string, checked once. */
const verified = new Map();
function principal(authorization) {
  if (!authorization?.startsWith('Bearer ')) return undefined;
  const token = authorization.slice(7);
  const now = Date.now() / 1000;
  let claims = verified.get(token);
  if (claims === undefined) {
    const [header, payload, signature] = token.split('.');
    try {
      const { alg, kid } = JSON.parse(Buffer.from(header, 'base64url').toString());
      const key = publicKeys.get(kid);
      if (alg !== 'RS256' || !key) return undefined;
      const data = Buffer.from(`${header}.${payload}`);
      if (!verify('RSA-SHA256', data, key, Buffer.from(signature, 'base64url'))) return undefined;
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    } catch {
      return undefined;
    }
    const early = claims.nbf !== undefined && !(claims.nbf <= now + 60); // 60 s of clock skew
    if (claims.iss !== issuer || ![claims.aud].flat().includes(resource) || early) return undefined;
    claims.scopes = new Set(String(claims.scope ?? '').split(' '));
    if (verified.size >= 10_000) verified.clear(); // bounded: a flood of tokens re-verifies
    verified.set(token, claims);
  }
  return claims.exp > now ? claims : undefined;
}

const db = new Database(env('LIMIT_DB'), { readonly: true, fileMustExist: true });
db.pragma('query_only = 1');
const statements = new Map();
function prepared(sql) {
  let statement = statements.get(sql);
  if (statement === undefined) {
    statement = db.prepare(sql).raw(true);
    if (!statement.reader || !statement.readonly) throw new Error('one read-only statement');
    if (statements.size < 1000) statements.set(sql, statement);
  }
  return statement;
}

// The audit file: WAL and synchronous NORMAL, as ScopeDB's SQLite files.
const audit = new Database(env('LIMIT_AUDIT_DB'));
audit.pragma('journal_mode = WAL');
audit.pragma('synchronous = NORMAL');
audit.exec(`CREATE TABLE IF NOT EXISTS audit_log (id INTEGER PRIMARY KEY, time TEXT NOT NULL,
  subject TEXT, client_id TEXT, token_id TEXT, tool TEXT, outcome TEXT NOT NULL, scopes TEXT,
  duration_ms INTEGER, row_count INTEGER, sql_text TEXT, params_hash TEXT, protocol TEXT)`);
const insert = audit.prepare(`INSERT INTO audit_log (time, subject, client_id, token_id, tool,
  outcome, scopes, duration_ms, row_count, sql_text, params_hash, protocol)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
const commit = audit.transaction((rows) => {
  for (const row of rows) insert.run(row);
});
let batch = [];
/** Queues a row; `done(error)` runs once the transaction holding it has committed (or failed). */
function appendAudit(row, done) {
  batch.push({ row, done });
  if (batch.length === 1) setImmediate(flush);
}
function flush() {
  const pending = batch;
  batch = [];
  let failure;
  try {
    commit(pending.map((entry) => entry.row));
  } catch (error) {
    failure = error;
  }
  for (const entry of pending) entry.done(failure);
}

function runQuery({ sql, params = [], max_rows: maxRows = 100 }) {
  const started = performance.now();
  const statement = prepared(sql);
  const rows = [];
  for (const row of statement.iterate(...params)) {
    rows.push(row);
    if (rows.length > maxRows) break;
  }
  const truncated = rows.length > maxRows;
  if (truncated) rows.pop();
  const data = {
    columns: statement.columns().map((column) => ({ name: column.name, type: column.type })),
    rows,
    row_count: rows.length,
    truncated,
    truncation_reason: truncated ? 'max_rows' : null,
    elapsed_ms: Math.round((performance.now() - started) * 100) / 100,
  };
  const header = `${rows.length} row${rows.length === 1 ? '' : 's'} in ${data.elapsed_ms} ms`;
  const text = [header, JSON.stringify(data.columns.map((c) => c.name))];
  for (const row of rows) text.push(JSON.stringify(row));
  return { content: [{ type: 'text', text: text.join('\n') }], structuredContent: data };
}

function send(response, status, message, headers = {}) {
  const body = JSON.stringify(message);
  response.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  response.end(body);
}
const rpcError = (id, code, message) => ({ jsonrpc: '2.0', id, error: { code, message } });

function handle(request, response, text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return send(response, 400, rpcError(null, -32700, 'Parse error'));
  }
  const { id, method, params } = message;
  const claims = principal(request.headers.authorization);
  if (!claims)
    return send(response, 401, rpcError(id, -32001, 'invalid_token'), {
      'WWW-Authenticate': 'Bearer error="invalid_token"',
    });
  // The era: the body's envelope claim, which the headers must agree with.
  const modern = params?._meta?.[VERSION_KEY] === MODERN;
  if (
    modern &&
    (request.headers['mcp-protocol-version'] !== MODERN ||
      request.headers['mcp-method'] !== method ||
      (method === 'tools/call' && request.headers['mcp-name'] !== params.name))
  )
    return send(response, 400, rpcError(id, -32020, 'Header mismatch'));
  const era = modern ? { resultType: 'complete', _meta: meta } : {};

  if (method === 'tools/list')
    return send(response, 200, { jsonrpc: '2.0', id, result: { tools, ...era } });
  if (method !== 'tools/call') return send(response, 200, rpcError(id, -32601, 'Method not found'));
  const scope = TOOL_SCOPES[params?.name];
  if (!scope) return send(response, 200, rpcError(id, -32602, 'Unknown tool'));
  if (!claims.scopes.has(scope))
    return send(response, 403, rpcError(id, -32001, 'insufficient_scope'), {
      'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${scope}"`,
    });

  const started = performance.now();
  const args = params.arguments ?? {};
  let result;
  let outcome = 'success';
  try {
    result = runQuery(args);
  } catch (error) {
    outcome = 'error';
    result = { content: [{ type: 'text', text: error.message }], isError: true };
  }
  const row = [
    new Date().toISOString(),
    claims.sub ?? null,
    claims.azp ?? null,
    claims.jti ?? null,
    params.name,
    outcome,
    claims.scope ?? null,
    Math.round(performance.now() - started),
    result.structuredContent?.row_count ?? null,
    typeof args.sql === 'string' ? args.sql : null,
    createHash('sha256')
      .update(JSON.stringify(args.params ?? null))
      .digest('hex'),
    modern ? MODERN : (request.headers['mcp-protocol-version'] ?? null),
  ];
  appendAudit(row, (failure) =>
    failure
      ? send(response, 503, rpcError(id, -32603, 'audit unavailable'))
      : send(response, 200, { jsonrpc: '2.0', id, result: { ...result, ...era } }),
  );
}

const server = createServer((request, response) => {
  if (request.method !== 'POST' || request.url !== '/mcp')
    return send(response, 404, rpcError(null, -32601, 'Not found'));
  const chunks = [];
  let size = 0;
  request.on('data', (chunk) => {
    size += chunk.length;
    if (size > 1_000_000) request.destroy();
    else chunks.push(chunk);
  });
  request.on('end', () => handle(request, response, Buffer.concat(chunks).toString('utf8')));
});
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address();
  process.stdout.write(`listening http://${address}:${port}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
