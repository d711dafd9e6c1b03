/**
 * `npm run bench`: ScopeDB's full stack against the bare MCP SDK (the reference) and against the
 * physical anchor (the limit server), on loopback, in one run, in two series: SQLite, then
 * PostgreSQL.
 *
 * 1. SQLite: one file per server with the same 100,000-row `items` table; ScopeDB's also gets a
 *    1,000,000-row `big` table. PostgreSQL: a throwaway database with ScopeDB's three roles
 *    (bench/postgres.mjs) and the same two tables, made by the tools' role, VACUUM ANALYZEd.
 * 2. A loopback Casdoor-shaped issuer (discovery + JWKS, RSA 4096) signs db:query tokens.
 * 3. Child processes: ScopeDB as in production (`node dist/main.js`, configured by env), the
 *    reference (bench/reference-server.mjs: Express + the SDK's createMcpHandler, no auth) and,
 *    in the SQLite series, the limit server (bench/limit-server.mjs: plain node:http doing the
 *    work of an authenticated, scoped, audited call and nothing else), which lists the tools
 *    ScopeDB lists.
 * 4. Each server must answer every workload (bench/workloads.mjs) correctly before any load.
 * 5. Peak RSS growth of ScopeDB during `SELECT * FROM big` (sampled from /proc).
 * 6. autocannon: a warm-up per (server, workload), then ROUNDS interleaved rounds; a round runs
 *    every (workload, connections) once on each server, the server order rotating between rounds,
 *    so that drift on the machine spreads over all servers.
 * 7. Prints the results and rewrites BENCHMARKS.md with them (BENCH_WRITE=0 to skip; only a run
 *    of both series writes it). The PostgreSQL database and its roles are dropped at the end,
 *    whatever happened.
 *
 * Exits 1 when the benchmark could not run, when a load saw errors (its numbers would be
 * meaningless; nothing is written then), or when a target is missed (after writing, so the miss
 * is on record and visible).
 *
 * Knobs (env): BENCH_DURATION (s per run, 5), BENCH_WARMUP (s per server and workload, 2),
 * BENCH_ROUNDS (3), BENCH_CONNECTIONS (10,32), BENCH_WORKLOADS (a,b,c,d; the PostgreSQL series
 * runs a only), BENCH_WRITE (1), BENCH_VERBOSE (0: 1 echoes the servers' output),
 * BENCH_PROFILE_DIR (unset: a folder to run the servers with --cpu-prof into; written at exit),
 * BENCH_LOG_LEVEL (unset: ScopeDB logs at its default level, info), BENCH_SERIES (all: sqlite,
 * postgres or all; or introspection: ScopeDB with AUTH_INTROSPECTION on against it off, printed
 * only), BENCH_POSTGRES_INTERNAL (sqlite: ScopeDB's own records in its local file, the default of
 * one server; postgres: in the scopedb schema, as replicas share them), BENCH_POSTGRES_URL (a
 * superuser's connection string, postgres://postgres@127.0.0.1:5432/test).
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { freePort } from '../test/support/free-port.mjs';
import { startIssuer } from './issuer.mjs';
import { backendCpu, backendCpuSpent, createScopedbPostgres, fillTables } from './postgres.mjs';
import {
  baseEnvironment,
  childFailure,
  scopedbEnvironment,
  knob,
  procStatusKb,
  sleep,
  spawnServer,
  stopServer,
  treeCpuSeconds,
  waitListening,
} from './processes.mjs';
import {
  fixed,
  howItIsMeasured,
  machine,
  mb,
  median,
  percentile,
  resultsHeader,
  seriesReport,
  summarize,
  verdict,
} from './report.mjs';
import { ITEMS, WORKLOADS, fillTable, postMcp } from './workloads.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIG = 1_000_000;
const RSS_MAX_ROWS = 1000;
const RSS_CALLS = 3;
/**
 * Where ScopeDB keeps its own records in the PostgreSQL series: `sqlite` (the default of one
 * server: its local internal file, as in the SQLite series) or `postgres` (the `scopedb` schema,
 * as replicas share it).
 */
const POSTGRES_INTERNAL = process.env.BENCH_POSTGRES_INTERNAL ?? 'sqlite';

/** A comma-separated list from the environment, each item one of `allowed`. */
function listKnob(name, fallback, allowed) {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const items = raw.split(',').map((item) => item.trim());
  for (const item of items)
    if (!allowed(item)) throw new Error(`${name}: "${item}" is not allowed (got "${raw}")`);
  return [...new Set(items)];
}
const DURATION = knob('BENCH_DURATION', 5, 1, 120);
const WARMUP = knob('BENCH_WARMUP', 2, 0, 60);
const ROUNDS = knob('BENCH_ROUNDS', 3, 1, 9);
const CONNECTIONS = listKnob('BENCH_CONNECTIONS', [10, 32], (item) =>
  /^[1-9][0-9]{0,2}$/.test(item),
).map(Number);
const WORKLOAD_NAMES = listKnob('BENCH_WORKLOADS', Object.keys(WORKLOADS), (item) =>
  Object.hasOwn(WORKLOADS, item),
);
const WRITE = knob('BENCH_WRITE', 1, 0, 1) === 1;
const VERBOSE = knob('BENCH_VERBOSE', 0, 0, 1) === 1;
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR?.trim() || undefined;
const SERIES_NAMES = ['sqlite', 'postgres'];
/** Run on request only, never by `all`: its numbers are printed, not written to BENCHMARKS.md. */
const EXTRA_SERIES = ['introspection'];
const SERIES = (() => {
  const raw = process.env.BENCH_SERIES?.trim() || 'all';
  if (raw === 'all') return SERIES_NAMES;
  if (![...SERIES_NAMES, ...EXTRA_SERIES].includes(raw))
    throw new Error(`BENCH_SERIES must be sqlite, postgres, all or introspection, got "${raw}"`);
  return [raw];
})();
const SETTINGS = {
  duration: DURATION,
  warmup: WARMUP,
  rounds: ROUNDS,
  connections: CONNECTIONS,
  workloads: WORKLOAD_NAMES,
  rssCalls: RSS_CALLS,
  rssMaxRows: RSS_MAX_ROWS,
  postgresInternal: POSTGRES_INTERNAL,
};
// Whole run, worst case: per series set-up and start-up (3 min), three servers' warm-ups and
// rounds, each run with 5 s of room.
const WATCHDOG_MS =
  SERIES.length *
  (180_000 +
    3 * WORKLOAD_NAMES.length * (WARMUP + 5) * 1000 +
    3 * ROUNDS * WORKLOAD_NAMES.length * CONNECTIONS.length * (DURATION + 5) * 1000);

const LOAD_BEFORE = os.loadavg()[0];
const log = (line = '') => process.stdout.write(`${line}\n`);
const children = new Set();
let workDir;
let issuer;
/** The PostgreSQL series' database and roles, while they exist. */
let postgres;

// ---------------------------------------------------------------------------------------------
// Set-up

/** A file per server (same `items`); ScopeDB's also holds `big`. */
function prepareDatabases(dir) {
  const files = {
    ours: join(dir, 'scopedb.sqlite'),
    reference: join(dir, 'reference.sqlite'),
    limit: join(dir, 'limit.sqlite'),
  };
  for (const path of Object.values(files)) {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    fillTable(db, 'items', ITEMS);
    db.close();
  }
  const db = new Database(files.ours);
  const started = performance.now();
  fillTable(db, 'big', BIG);
  db.close();
  return { ...files, bigMs: performance.now() - started };
}

/** The request numbers each server's answers are checked on before the load. */
const CHECKED_REQUESTS = [0, 1, 4242];

/** Per workload, the rows each checked request must answer (read from `rowsOf(sql, param)`). */
async function expectedAnswers(dialect, rowsOf) {
  const expected = {};
  for (const workload of Object.values(WORKLOADS)) {
    expected[workload.name] = [];
    for (const n of CHECKED_REQUESTS) {
      const sql = workload.sql(dialect);
      const rows = sql === undefined ? undefined : await rowsOf(sql, workload.param(n));
      expected[workload.name].push({ n, rows });
    }
  }
  return expected;
}

/** The expected answers, read from a SQLite file the way a server reads it. */
async function sqliteExpected(path) {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return await expectedAnswers('sqlite', (sql, param) => db.prepare(sql).raw(true).all(param));
  } finally {
    db.close();
  }
}

function spawn(name, script, env) {
  const nodeArgs = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(PROFILE_DIR, name)}`] : [];
  return spawnServer({
    name,
    script,
    nodeArgs,
    env,
    cwd: workDir, // no ./.env of the checkout leaks in
    echo: VERBOSE,
    registry: children,
  });
}

// ---------------------------------------------------------------------------------------------
// Checks

/**
 * Sends each workload's checked requests to a server and compares the answers; returns the
 * parsed answers of the last request per workload (the tools list and the 2026-07-28 `_meta`
 * are taken from ScopeDB's).
 */
async function verify(target, expected, workloads = Object.values(WORKLOADS)) {
  const answers = {};
  for (const workload of workloads)
    for (const { n, rows } of expected[workload.name]) {
      const headers = workload.headers(target.token);
      const { status, message, text } = await postMcp(
        target.mcpUrl,
        headers,
        workload.body(target.dialect, n),
      );
      const wrong =
        status !== 200 || !message?.result
          ? `HTTP ${status}`
          : workload.verifyAnswer(message, rows);
      if (wrong)
        throw new Error(
          `${target.name} answered workload ${workload.name} request ${n} wrongly (${wrong}): HTTP ${status} ${text.slice(0, 600)}`,
        );
      if (workload.sql(target.dialect) !== undefined) target.answeredCalls++;
      answers[workload.name] = message;
    }
  return answers;
}

// ---------------------------------------------------------------------------------------------
// Memory: peak RSS of ScopeDB's process during SELECT * over the 1M-row table

async function measureRss(target, pid) {
  const rss = () => procStatusKb(pid, 'VmRSS');
  const idle = [];
  for (let i = 0; i < 30; i++) {
    idle.push(rss());
    await sleep(10);
  }
  const baseline = idle.sort((a, b) => a - b)[idle.length >> 1];
  // Reset the kernel's high-water mark (VmHWM) to the current RSS, so it catches a peak that falls
  // between two samples; sampling alone is the fallback where that is not allowed.
  let hwmReset = false;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    hwmReset = true;
  } catch {
    // not allowed here: sampling alone
  }
  let sampledPeak = baseline;
  const sampler = setInterval(() => {
    sampledPeak = Math.max(sampledPeak, rss());
  }, 10);
  const latencies = [];
  let rows = 0;
  try {
    for (let call = 0; call < RSS_CALLS; call++) {
      const started = performance.now();
      const { status, message, text } = await postMcp(
        target.mcpUrl,
        WORKLOADS.a.headers(target.token),
        JSON.stringify({
          jsonrpc: '2.0',
          id: 100 + call,
          method: 'tools/call',
          params: {
            name: 'query',
            arguments: { sql: 'SELECT * FROM big', max_rows: RSS_MAX_ROWS },
          },
        }),
      );
      latencies.push(performance.now() - started);
      target.answeredCalls++;
      const result = message?.result?.structuredContent;
      // max_rows rows, or fewer if a result byte budget cut it first; truncated either way.
      const returned = result?.rows?.length ?? 0;
      if (status !== 200 || returned < 1 || returned > RSS_MAX_ROWS || result.truncated !== true)
        throw new Error(
          `${target.name}: SELECT * FROM big did not return up to ${RSS_MAX_ROWS} rows, truncated: HTTP ${status} ${text.slice(0, 400)}`,
        );
      rows = returned;
    }
    await sleep(200); // anything the call left to do after answering
  } finally {
    clearInterval(sampler);
  }
  const afterKb = rss();
  sampledPeak = Math.max(sampledPeak, afterKb);
  const peak = hwmReset ? Math.max(sampledPeak, procStatusKb(pid, 'VmHWM')) : sampledPeak;
  return { baselineKb: baseline, peakKb: peak, afterKb, latencies, hwmReset, rows };
}

// ---------------------------------------------------------------------------------------------
// Load

/**
 * One autocannon run of a workload on a server. Every request is a new one of the workload's
 * walk (another key or range start), every answer is checked cheaply (`answered`), and the CPU
 * time of the server's process tree is read from /proc before and after.
 */
async function load(target, workload, connections, seconds) {
  const cpuBefore = treeCpuSeconds(target.pid);
  const backendsBefore = target.backends && (await target.backends.snapshot());
  let n = 0;
  let toolErrors = 0;
  let firstToolError;
  const latencies = [];
  const instance = autocannon({
    url: target.mcpUrl,
    connections,
    pipelining: 1,
    duration: seconds,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: new URL(target.mcpUrl).pathname,
        headers: workload.headers(target.token),
        body: workload.body(target.dialect, 0),
        setupRequest: (request) => {
          request.body = workload.body(target.dialect, ++n);
          return request;
        },
        onResponse: (status, body) => {
          if (status === 200 && !workload.answered(body)) {
            toolErrors++;
            firstToolError ??= body.slice(0, 400);
          }
        },
      },
    ],
  });
  instance.on('response', (_client, status, _bytes, ms) => {
    if (status >= 200 && status < 300) latencies.push(ms);
  });
  const result = await instance;
  if (workload.sql(target.dialect) !== undefined) target.answeredCalls += result['2xx'];
  const cpuSeconds = treeCpuSeconds(target.pid) - cpuBefore;
  const backendSeconds = target.backends
    ? backendCpuSpent(backendsBefore, await target.backends.snapshot(), target.backends.reference)
    : NaN;
  latencies.sort((a, b) => a - b);
  return {
    server: target.name,
    workload: workload.name,
    connections,
    cpuMsPerRequest: (cpuSeconds * 1000) / result['2xx'],
    backendCpuMsPerRequest: (backendSeconds * 1000) / result['2xx'],
    requests: result.requests.total,
    rps: result.requests.average,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    toolErrors,
    firstToolError,
  };
}

const invalid = (run) => run.non2xx || run.errors || run.timeouts || run.toolErrors;

function runLine(prefix, run) {
  const backend = Number.isFinite(run.backendCpuMsPerRequest)
    ? `  PostgreSQL CPU ${fixed(run.backendCpuMsPerRequest, 3)} ms/req`
    : '';
  return `  ${prefix} ${run.server.padEnd(9)} ${run.workload} x${String(run.connections).padEnd(3)} ${fixed(run.rps, 1).padStart(8)} req/s  CPU ${fixed(run.cpuMsPerRequest, 3)} ms/req${backend}  p50 ${fixed(run.p50, 2)} ms  p99 ${fixed(run.p99, 2)} ms${invalid(run) ? `  non-2xx ${run.non2xx} errors ${run.errors} timeouts ${run.timeouts} tool errors ${run.toolErrors}` : ''}`;
}

/**
 * A warm-up per (server, workload) at the highest connection count, then ROUNDS rounds: each
 * runs every (workload, connections) once per server, the servers in an order rotated by one
 * per round (reference, ScopeDB, limit; ScopeDB, limit, reference; ...).
 */
async function interleaved(targets, workloads) {
  if (WARMUP > 0) {
    log(`  warm-up: ${WARMUP} s per server and workload ...`);
    for (const target of targets)
      for (const workload of workloads) {
        const run = await load(target, workload, Math.max(...CONNECTIONS), WARMUP);
        if (invalid(run))
          throw new Error(
            `warm-up of ${target.name} on ${workload.name} failed: ${JSON.stringify(run)}`,
          );
      }
  }
  const runs = [];
  const total = ROUNDS * workloads.length * CONNECTIONS.length * targets.length;
  for (let round = 1; round <= ROUNDS; round++) {
    const shift = (round - 1) % targets.length;
    const order = [...targets.slice(shift), ...targets.slice(0, shift)];
    for (const workload of workloads)
      for (const connections of CONNECTIONS)
        for (const target of order) {
          const run = { round, ...(await load(target, workload, connections, DURATION)) };
          runs.push(run);
          log(runLine(`round ${round} run ${runs.length}/${total}`, run));
          if (target.process.exited) throw childFailure(target.process, 'exited during the load');
        }
  }
  return runs;
}

// ---------------------------------------------------------------------------------------------
// The series

/** Starts ScopeDB and the reference, waits until both listen; returns their targets. */
async function startPair({ app, dialect, oursEnv, refEnv, backends }) {
  const [ourPort, refPort] = [await freePort(), await freePort()];
  const oursProcess = spawn('ScopeDB', join(app, 'dist', 'main.js'), {
    ...scopedbEnvironment(ourPort, issuer.url, oursEnv),
  });
  const refProcess = spawn('reference', join(ROOT, 'bench', 'reference-server.mjs'), {
    ...baseEnvironment(),
    PORT: String(refPort),
    HOST: '127.0.0.1',
    ...refEnv,
  });
  const ourUrl = `http://127.0.0.1:${ourPort}/mcp`;
  const ours = {
    name: 'ScopeDB',
    mcpUrl: ourUrl,
    token: issuer.token({ audience: ourUrl, scope: 'db:query' }),
    process: oursProcess,
    pid: oursProcess.pid,
    dialect,
    answeredCalls: 0,
    backends: backends && { snapshot: backends, reference: false },
  };
  const ref = {
    name: 'reference',
    mcpUrl: `http://127.0.0.1:${refPort}/mcp`,
    token: undefined,
    process: refProcess,
    pid: refProcess.pid,
    dialect,
    answeredCalls: 0,
    backends: backends && { snapshot: backends, reference: true },
  };
  await Promise.all([
    waitListening(oursProcess, `http://127.0.0.1:${ourPort}/.well-known/oauth-protected-resource`),
    waitListening(refProcess, ref.mcpUrl),
  ]);
  log(`  ScopeDB pid ${ours.pid} at ${ours.mcpUrl} (issuer ${issuer.url})`);
  log(`  reference pid ${ref.pid} at ${ref.mcpUrl}`);
  return { ours, ref };
}

/** The limit server on its own copy of `items`, listing what ScopeDB listed. */
async function startLimit(dir, database, scopedbAnswers) {
  const port = await freePort();
  const mcpUrl = `http://127.0.0.1:${port}/mcp`;
  const toolsFile = join(dir, 'limit-tools.json');
  writeFileSync(
    toolsFile,
    JSON.stringify({ tools: scopedbAnswers.d.result.tools, meta: scopedbAnswers.c.result._meta }),
  );
  const auditFile = join(dir, 'limit-audit.sqlite');
  const limitProcess = spawn('limit', join(ROOT, 'bench', 'limit-server.mjs'), {
    ...baseEnvironment(),
    PORT: String(port),
    HOST: '127.0.0.1',
    LIMIT_DB: database,
    LIMIT_AUDIT_DB: auditFile,
    LIMIT_ISSUER: issuer.url,
    LIMIT_RESOURCE: mcpUrl,
    LIMIT_TOOLS: toolsFile,
  });
  await waitListening(limitProcess, mcpUrl);
  log(`  limit pid ${limitProcess.pid} at ${mcpUrl}`);
  return {
    name: 'limit',
    mcpUrl,
    token: issuer.token({ audience: mcpUrl, scope: 'db:query' }),
    process: limitProcess,
    pid: limitProcess.pid,
    dialect: 'sqlite',
    answeredCalls: 0,
    auditFile,
  };
}

/** Successful `query` calls in a SQLite audit log (ScopeDB's internal file or the limit's). */
function sqliteAuditCount(path, table = 'audit_log') {
  const auditDb = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return auditDb
      .prepare(`SELECT count(*) AS n FROM ${table} WHERE tool = 'query' AND outcome = 'success'`)
      .get().n;
  } finally {
    auditDb.close();
  }
}

/**
 * The full stack was exercised: every answered call is in the server's audit log (a call that
 * autocannon cut off at the end of a run may be there too, unanswered, so at least as many).
 */
async function auditCheck(target, countAudited) {
  await sleep(500);
  const audited = await countAudited();
  if (audited < target.answeredCalls)
    throw new Error(
      `${target.name} answered ${target.answeredCalls} query calls but its audit log has ${audited} successful ones`,
    );
  return { server: target.name, audited, answered: target.answeredCalls };
}

async function sqliteSeries(app) {
  const dir = join(workDir, 'sqlite');
  mkdirSync(dir);
  log(`SQLite: preparing files in ${dir} ...`);
  const dbs = prepareDatabases(dir);
  log(`  items: ${ITEMS} rows in each; big: ${BIG} rows in ScopeDB's (${fixed(dbs.bigMs, 0)} ms)`);
  const expected = await sqliteExpected(dbs.reference);
  const { ours, ref } = await startPair({
    app,
    dialect: 'sqlite',
    oursEnv: { DATABASE_URL: `sqlite://${dbs.ours}` },
    refEnv: { REFERENCE_DB: dbs.reference },
  });
  const scopedbAnswers = await verify(ours, expected);
  const limit = await startLimit(dir, dbs.limit, scopedbAnswers);
  await verify(ref, expected);
  const limitAnswers = await verify(limit, expected);
  if (JSON.stringify(limitAnswers.d.result.tools) !== JSON.stringify(scopedbAnswers.d.result.tools))
    throw new Error('the limit server does not list the tools ScopeDB lists');
  log('  all three answer every workload with the right rows');
  const rss = await rssStep(ours);
  const workloads = WORKLOAD_NAMES.map((name) => WORKLOADS[name]);
  const runs = await interleaved([ref, ours, limit], workloads);
  const audit = [
    await auditCheck(ours, () =>
      sqliteAuditCount(join(dirname(dbs.ours), 'scopedb-internal.sqlite')),
    ),
    await auditCheck(limit, () => sqliteAuditCount(limit.auditFile)),
  ];
  await Promise.all([ours, ref, limit].map((target) => stopServer(target.process)));
  return {
    title: 'SQLite',
    servers: {
      reference: 'reference (Express + SDK `createMcpHandler`, no auth, better-sqlite3)',
      ScopeDB: 'ScopeDB (JWT + JWKS, scopes, rate limits, audit, request log)',
      limit:
        'limit (`node:http`, JWT verified once per token, scope, prepared statement, group-committed audit)',
    },
    workloads: WORKLOAD_NAMES,
    summary: summarize(runs, WORKLOAD_NAMES, CONNECTIONS),
    rss,
    runs,
    audit,
  };
}

async function rssStep(ours) {
  log(`  peak RSS: ${RSS_CALLS} x SELECT * FROM big (max_rows ${RSS_MAX_ROWS}) on ScopeDB ...`);
  const rss = await measureRss(ours, ours.pid);
  log(
    `  baseline ${fixed(mb(rss.baselineKb), 1)} MB, peak ${fixed(mb(rss.peakKb), 1)} MB, after ${fixed(mb(rss.afterKb), 1)} MB${rss.hwmReset ? '' : ' (VmHWM reset not allowed: sampled only)'}`,
  );
  return rss;
}

async function postgresSeries(app) {
  if (!['sqlite', 'postgres'].includes(POSTGRES_INTERNAL))
    throw new Error(`BENCH_POSTGRES_INTERNAL must be sqlite or postgres, got ${POSTGRES_INTERNAL}`);
  log('PostgreSQL: creating a database and roles ...');
  postgres = await createScopedbPostgres('scopedb_bench');
  const { rows: version } = await postgres.admin.query('SHOW server_version');
  const started = performance.now();
  await fillTables(postgres.env.DATABASE_URL, ITEMS, BIG);
  log(
    `  ${postgres.database}: items ${ITEMS} rows, big ${BIG} rows, VACUUM ANALYZE (${fixed(performance.now() - started, 0)} ms)`,
  );
  // One workload: the key lookup (the range read's timestamps and numerics are rendered
  // differently by the two servers' drivers, and the limit server is SQLite's anchor).
  const workloads = [WORKLOADS.a];
  const expected = await expectedAnswers('postgres', async (sql, param) => {
    const { rows } = await postgres.admin.query({ text: sql, values: [param], rowMode: 'array' });
    return rows;
  });
  const internalFile = join(workDir, 'postgres-internal.sqlite');
  const { ours, ref } = await startPair({
    app,
    dialect: 'postgres',
    oursEnv: {
      ...postgres.env,
      ...(POSTGRES_INTERNAL === 'sqlite' && { INTERNAL_DATABASE_URL: `sqlite:${internalFile}` }),
    },
    refEnv: { REFERENCE_DATABASE_URL: postgres.env.DATABASE_READER_URL },
    backends: () => backendCpu(postgres.admin, postgres.database),
  });
  await verify(ref, expected, workloads);
  await verify(ours, expected, workloads);
  log('  both answer the key lookup with the right row');
  const rss = await rssStep(ours);
  const runs = await interleaved([ref, ours], workloads);
  const audit = [
    await auditCheck(ours, async () =>
      POSTGRES_INTERNAL === 'sqlite'
        ? sqliteAuditCount(internalFile)
        : (
            await postgres.admin.query(
              "SELECT count(*)::int AS n FROM scopedb.audit_log WHERE tool = 'query' AND outcome = 'success'",
            )
          ).rows[0].n,
    ),
  ];
  await Promise.all([ours, ref].map((target) => stopServer(target.process)));
  await postgres.drop();
  postgres = undefined;
  return {
    title: 'PostgreSQL',
    servers: {
      reference:
        'reference (Express + SDK `createMcpHandler`, no auth, node-postgres `pg.Pool`, prepared statement)',
      ScopeDB: 'ScopeDB (JWT + JWKS, scopes, rate limits, audit, request log)',
    },
    workloads: ['a'],
    summary: summarize(runs, ['a'], CONNECTIONS),
    rss,
    runs,
    audit,
    backendCpu: true,
    version: `PostgreSQL ${version[0].server_version}`,
  };
}

/**
 * BENCH_SERIES=introspection: two ScopeDB servers on copies of one SQLite database, one with
 * AUTH_INTROSPECTION on (answers cached AUTH_INTROSPECTION_CACHE_S, its default 60 s, against the
 * loopback issuer's introspection endpoint) and one with it off, loaded alternately with
 * workload a; their ratio is the cost of introspection on a busy client (target: on within 10%
 * of off).
 */
async function introspectionSeries(app) {
  const dir = join(workDir, 'introspection');
  mkdirSync(join(dir, 'on'), { recursive: true });
  log(`Introspection: preparing files in ${dir} ...`);
  const dbs = prepareDatabases(dir);
  const onDb = join(dir, 'on', 'scopedb.sqlite');
  cpSync(dbs.ours, onDb);
  const expected = await sqliteExpected(dbs.reference);
  const start = async (name, database, env) => {
    const port = await freePort();
    const server = spawn(name, join(app, 'dist', 'main.js'), {
      ...scopedbEnvironment(port, issuer.url, { DATABASE_URL: `sqlite://${database}`, ...env }),
    });
    await waitListening(server, `http://127.0.0.1:${port}/.well-known/oauth-protected-resource`);
    const mcpUrl = `http://127.0.0.1:${port}/mcp`;
    const token = issuer.token({ audience: mcpUrl, scope: 'db:query' });
    const target = { name, mcpUrl, token, dialect: 'sqlite', answeredCalls: 0 };
    return { ...target, process: server, pid: server.pid };
  };
  const off = await start('off', dbs.ours, {});
  const on = await start('on', onDb, {
    AUTH_INTROSPECTION: 'true',
    AUTH_INTROSPECTION_CLIENT_ID: issuer.introspectionClient.id,
    AUTH_INTROSPECTION_CLIENT_SECRET: issuer.introspectionClient.secret,
  });
  const callsBefore = issuer.introspectionCalls;
  for (const target of [off, on]) await verify(target, expected, [WORKLOADS.a]);
  log('  both answer the key lookup with the right row');
  const runs = await interleaved([off, on], [WORKLOADS.a]);
  const calls = issuer.introspectionCalls - callsBefore;
  if (calls < 1) throw new Error('the server with AUTH_INTROSPECTION on never called the issuer');
  await Promise.all([stopServer(off.process), stopServer(on.process)]);
  if (runs.some(invalid))
    throw new Error('a run saw non-2xx responses, errors, timeouts or tool errors');
  for (const connections of CONNECTIONS) {
    const [offMedian, onMedian] = ['off', 'on'].map((name) =>
      median(runs.filter((run) => run.server === name && run.connections === connections)),
    );
    const ratio = onMedian.rps / offMedian.rps;
    log(
      `Introspection on / off, ${connections} connections: ${fixed(onMedian.rps, 1)} / ${fixed(offMedian.rps, 1)} req/s = ${fixed(ratio, 3)}x (target >= 0.90: ${verdict(ratio >= 0.9)})`,
    );
  }
  log(`${calls} introspection call(s) for the whole run, one token`);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const mainJs = join(ROOT, 'dist', 'main.js');
  if (!existsSync(mainJs)) throw new Error(`${mainJs} is missing: run npm run build first`);
  workDir = mkdtempSync(join(os.tmpdir(), 'scopedb-bench-'));
  // The build as it is now, so that a rebuild of dist/ during the run (nest build empties it
  // first) cannot pull files from under the server, e.g. its worker processes' script.
  const app = join(workDir, 'app');
  mkdirSync(app);
  cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');

  issuer = await startIssuer();
  if (SERIES[0] === 'introspection') return introspectionSeries(app);
  const run = { sqlite: sqliteSeries, postgres: postgresSeries };
  const series = [];
  for (const name of SERIES) {
    const result = await run[name](app);
    series.push(result);
    log();
    log(seriesReport(result, SETTINGS).lines.join('\n'));
    log();
  }

  const failed = series.flatMap((result) =>
    result.runs.filter(invalid).map((r) => ({ ...r, series: result.title })),
  );
  if (failed.length > 0) {
    for (const r of failed.filter((f) => f.firstToolError))
      log(`${r.series} ${r.server} ${r.workload} answered wrongly: ${r.firstToolError}`);
    throw new Error(
      `${failed.length} run(s) saw non-2xx responses, errors, timeouts or wrong answers: the numbers are not valid (BENCHMARKS.md left as it was)`,
    );
  }

  const host = { ...machine(), loadBefore: LOAD_BEFORE };
  host.postgres = series.find((result) => result.version)?.version;
  const reports = series.map((result) => seriesReport(result, SETTINGS));
  const targets = reports.flatMap((report) => report.targets);
  const missed = targets.filter((target) => !target.ok);
  log('Targets:');
  for (const target of targets) log(`  ${verdict(target.ok)}  ${target.text}`);
  const results = [
    ...resultsHeader({ date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), host }, SETTINGS),
    '',
    `**${missed.length === 0 ? 'Every target met' : `${missed.length} of ${targets.length} targets missed`}.**`,
    ...reports.flatMap((report) => ['', ...report.lines]),
  ].join('\n');

  if (WRITE && SERIES.length === SERIES_NAMES.length) {
    writeFileSync(
      join(ROOT, 'BENCHMARKS.md'),
      `# Benchmarks\n\nWritten by \`npm run bench\` (\`bench/run.mjs\`) from its last run; run it again to refresh.\n\n${results}\n\n${howItIsMeasured(SETTINGS)}${keptNotes()}`,
    );
    log('Wrote BENCHMARKS.md');
  } else if (WRITE) log(`BENCHMARKS.md left as it was: BENCH_SERIES=${SERIES[0]} ran one series`);
  if (missed.length > 0) {
    process.stderr.write(`bench: ${missed.length} of ${targets.length} targets missed\n`);
    return 1;
  }
  return 0;
}

/** The hand-written notes at the end of BENCHMARKS.md (from NOTES_HEADING on), kept across runs. */
const NOTES_HEADING = '## Notes';
function keptNotes() {
  const path = join(ROOT, 'BENCHMARKS.md');
  if (!existsSync(path)) return '';
  const text = readFileSync(path, 'utf8');
  const at = text.indexOf(`\n${NOTES_HEADING}\n`);
  return at === -1 ? '' : `\n${text.slice(at).trimEnd()}\n`;
}

async function cleanup() {
  await Promise.all([...children].map((server) => stopServer(server)));
  await issuer?.close();
  await dropPostgres();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

/** Drops the PostgreSQL series' database and roles, if they are there; reports a failure. */
async function dropPostgres() {
  if (!postgres) return;
  try {
    await postgres.drop();
    postgres = undefined;
  } catch (error) {
    process.stderr.write(
      `bench: could not drop the PostgreSQL database ${postgres.database} and its roles: ${error.message}\n`,
    );
  }
}

/** After a signal or the watchdog: the servers are killed, the database and files removed. */
async function abandon(code) {
  for (const server of children) server.child.kill('SIGKILL');
  await Promise.race([dropPostgres(), sleep(15_000)]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  process.exit(code);
}

const watchdog = setTimeout(() => {
  process.stderr.write(`bench: gave up after ${WATCHDOG_MS / 1000} s\n`);
  void abandon(1);
}, WATCHDOG_MS);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => void abandon(130));

let exitCode;
try {
  exitCode = (await main()) ?? 0;
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  exitCode = 1;
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
process.exit(exitCode);
