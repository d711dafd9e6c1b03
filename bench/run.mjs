/**
 * `npm run bench`: ScopeDB's full stack against the bare MCP SDK, on loopback, in one run, in two
 * series: SQLite, then PostgreSQL.
 *
 * 1. SQLite: two files with the same 100,000-row `items` table; ScopeDB's also gets a
 *    1,000,000-row `big` table. PostgreSQL: a throwaway database with ScopeDB's three roles
 *    (bench/postgres.mjs) and the same two tables, made by the tools' role, VACUUM ANALYZEd.
 * 2. A loopback Casdoor-shaped issuer (discovery + JWKS, RSA 4096) signs a db:query token.
 * 3. Child processes: ScopeDB as in production (`node dist/main.js`, configured by env) and the
 *    reference (bench/reference-server.mjs: Express + the SDK's createMcpHandler, no auth,
 *    better-sqlite3 or node-postgres).
 * 4. Each server must answer the point lookup correctly before any load is sent.
 * 5. Peak RSS growth of ScopeDB during `SELECT * FROM big` (sampled from /proc).
 * 6. autocannon, same settings for both, alternating reference/ScopeDB runs after a warm-up.
 * 7. Prints the results and rewrites BENCHMARKS.md with them (BENCH_WRITE=0 to skip; only a run
 *    of both series writes it). The PostgreSQL database and its roles are dropped at the end,
 *    whatever happened.
 *
 * Exits non-zero only when the benchmark could not run (or a load saw errors, which makes its
 * numbers meaningless); a missed target is reported as MISS.
 *
 * Knobs (env): BENCH_DURATION (s per run, 10), BENCH_WARMUP (s, 3), BENCH_ROUNDS (3),
 * BENCH_CONNECTIONS (10), BENCH_WRITE (1), BENCH_VERBOSE (0: 1 echoes the servers' output),
 * BENCH_PROFILE_DIR (unset: a folder to run both servers with --cpu-prof into; written at exit),
 * BENCH_LOG_LEVEL (unset: ScopeDB logs at its default level; e.g. warn to leave out request lines),
 * BENCH_SERIES (all: sqlite, postgres or all; or introspection: ScopeDB with AUTH_INTROSPECTION on against
 * it off, printed only), BENCH_POSTGRES_INTERNAL (sqlite: ScopeDB's own records
 * in its local file, the default of one server; postgres: in the scopedb schema, as replicas share
 * them), BENCH_POSTGRES_URL (a superuser's connection string,
 * postgres://postgres@127.0.0.1:5432/test).
 */
import { spawn } from 'node:child_process';
import {
  cpSync,
  readdirSync,
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
import { mcpHeaders, mcpMessageJson } from '../test/support/mcp-wire.mjs';
import { startIssuer } from './issuer.mjs';
import { backendCpu, backendCpuSpent, createScopedbPostgres, fillTables } from './postgres.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ITEMS = 100_000;
const BIG = 1_000_000;
const RSS_MAX_ROWS = 1000;
const RSS_CALLS = 3;
const RATIO_TARGET = 1.3;
const RSS_TARGET_MB = 50;
const POINT_SQL = { sqlite: 'SELECT id, name, price FROM items WHERE id = ?' };
POINT_SQL.postgres = 'SELECT id, name, price FROM items WHERE id = $1';
/**
 * Where ScopeDB keeps its own records in the PostgreSQL series: `sqlite` (the default of one
 * server: its local internal file, as in the SQLite series) or `postgres` (the `scopedb` schema,
 * as replicas share it).
 */
const POSTGRES_INTERNAL = process.env.BENCH_POSTGRES_INTERNAL ?? 'sqlite';
const KEY_STEP = 7919; // prime, so successive requests walk all 100,000 ids in a scattered order

function knob(name, fallback, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new Error(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  return value;
}
const DURATION = knob('BENCH_DURATION', 10, 1, 120);
const WARMUP = knob('BENCH_WARMUP', 3, 0, 60);
const ROUNDS = knob('BENCH_ROUNDS', 3, 1, 9);
const CONNECTIONS = knob('BENCH_CONNECTIONS', 10, 1, 256);
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
// Whole run, worst case: build is done; per series DB set-up, start-up, RSS and the loads, with room.
const WATCHDOG_MS =
  SERIES.length * (120_000 + ROUNDS * 2 * (DURATION + 5) * 1000 + 2 * WARMUP * 1000);

const LOAD_BEFORE = os.loadavg()[0];
const log = (line = '') => process.stdout.write(`${line}\n`);
const children = new Set();
let workDir;
let issuer;
/** The PostgreSQL series' database and roles, while they exist. */
let postgres;

// ---------------------------------------------------------------------------------------------
// Set-up

/** `count` rows of items' shape, generated in SQLite itself in one transaction. */
function fillTable(db, table, count) {
  db.exec(
    `CREATE TABLE ${table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL, created_at TEXT NOT NULL)`,
  );
  db.transaction(() =>
    db
      .prepare(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO ${table} (id, name, price, created_at)
         SELECT i, 'item ' || i, ((i * 7919) % 100000) / 100.0,
                strftime('%Y-%m-%dT%H:%M:%SZ', 1767225600 + i * 60, 'unixepoch')
         FROM n`,
      )
      .run(count),
  )();
}

function prepareDatabases(dir) {
  const ours = join(dir, 'scopedb.sqlite');
  const reference = join(dir, 'reference.sqlite');
  for (const path of [ours, reference]) {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    fillTable(db, 'items', ITEMS);
    db.close();
  }
  const db = new Database(ours);
  const started = performance.now();
  fillTable(db, 'big', BIG);
  const bigMs = performance.now() - started;
  const sample = new Database(reference, { readonly: true });
  const expected = (id) => sample.prepare(POINT_SQL.sqlite).raw(true).get(id);
  const check = [1, 4242, ITEMS].map((id) => ({ id, row: expected(id) }));
  sample.close();
  db.close();
  return { ours, reference, check, bigMs };
}

/** A child process whose output is kept (its tail, for error messages) rather than shown. */
function spawnServer(name, args, env) {
  const profile = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(PROFILE_DIR, name)}`] : [];
  const child = spawn(process.execPath, [...profile, ...args], {
    cwd: workDir, // no ./.env of the checkout leaks in
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { name, child, pid: child.pid, tail: '', exited: undefined };
  const keep = (chunk) => {
    server.tail = (server.tail + chunk).slice(-6000);
    if (VERBOSE) process.stderr.write(`[${name}] ${chunk}`);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  server.exit = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      server.exited = { code, signal };
      children.delete(server);
      resolve(server.exited);
    }),
  );
  child.on('error', (error) => keep(`spawn error: ${error.message}\n`));
  children.add(server);
  return server;
}

async function stopServer(server) {
  if (server.exited) return;
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5000);
  await server.exit;
  clearTimeout(timer);
}

function childFailure(server, what) {
  return new Error(
    `${server.name} ${what}; its last output:\n${server.tail.trim() || '(none)'}`.trimEnd(),
  );
}

/** Polls until the server answers HTTP at all (any status), or fails if it exits first. */
async function waitListening(server, url, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server.exited)
      throw childFailure(server, `exited during start-up (${JSON.stringify(server.exited)})`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      if (Date.now() > deadline)
        throw childFailure(server, `did not listen within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function environmentWithout(prefixes) {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !prefixes.some((p) => name.startsWith(p))),
  );
}

// ---------------------------------------------------------------------------------------------
// MCP over HTTP

function pointLookupBody(sql, id, rpcId = 1) {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: rpcId,
    method: 'tools/call',
    params: { name: 'query', arguments: { sql, params: [id] } },
  });
}

/** POST to the MCP endpoint; the JSON-RPC message from a JSON body or the first SSE event. */
async function postMcp(target, body) {
  const response = await fetch(target.mcpUrl, {
    method: 'POST',
    headers: target.headers,
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  const json = mcpMessageJson(response.headers.get('content-type') ?? '', text);
  let message;
  try {
    message = json === undefined ? undefined : JSON.parse(json);
  } catch {
    message = undefined;
  }
  return { status: response.status, message, text };
}

async function verify(target, check) {
  for (const { id, row } of check) {
    const { status, message, text } = await postMcp(target, pointLookupBody(target.sql, id));
    target.answered++;
    const rows = message?.result?.structuredContent?.rows;
    if (
      status !== 200 ||
      message?.result?.isError ||
      JSON.stringify(rows) !== JSON.stringify([row])
    )
      throw new Error(
        `${target.name} did not answer the point lookup of id ${id} with ${JSON.stringify([row])}: HTTP ${status} ${text.slice(0, 600)}`,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// Memory: peak RSS of ScopeDB's process during SELECT * over the 1M-row table

function procStatusKb(pid, field) {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
    readFileSync(`/proc/${pid}/status`, 'utf8'),
  );
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
        target,
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
      target.answered++;
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
// CPU: user + system time of a server's process tree (ScopeDB's SQL worker processes included)

const CLOCK_TICKS_PER_S = 100; // USER_HZ, the unit of /proc/<pid>/stat times on Linux

function processTree(pid) {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    let tasks;
    try {
      tasks = readdirSync(`/proc/${pids[i]}/task`);
    } catch {
      continue; // exited
    }
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${pids[i]}/task/${task}/children`, 'utf8');
        pids.push(...children.split(' ').filter(Boolean).map(Number));
      } catch {
        // the thread ended
      }
    }
  }
  return pids;
}

/** CPU seconds used so far by the process and its descendants, or NaN off Linux. */
function treeCpuSeconds(pid) {
  let ticks = 0;
  try {
    for (const member of processTree(pid)) {
      const stat = readFileSync(`/proc/${member}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    }
  } catch {
    return NaN;
  }
  return ticks / CLOCK_TICKS_PER_S;
}

// ---------------------------------------------------------------------------------------------
// Load

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function load(target, seconds) {
  const cpuBefore = target.pid === undefined ? NaN : treeCpuSeconds(target.pid);
  const backendsBefore = target.backends && (await target.backends.snapshot());
  let key = 0;
  let toolErrors = 0;
  let firstToolError;
  const latencies = [];
  const instance = autocannon({
    url: target.mcpUrl,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: seconds,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: new URL(target.mcpUrl).pathname,
        headers: target.headers,
        body: pointLookupBody(target.sql, 1),
        setupRequest: (request) => {
          key = (key + KEY_STEP) % ITEMS;
          request.body = pointLookupBody(target.sql, key + 1, key + 1);
          return request;
        },
        onResponse: (status, body) => {
          if (status === 200 && (body.includes('"isError":true') || !body.includes('"rows":[['))) {
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
  target.answered += result['2xx'];
  const cpuSeconds = target.pid === undefined ? NaN : treeCpuSeconds(target.pid) - cpuBefore;
  const backendSeconds = target.backends
    ? backendCpuSpent(backendsBefore, await target.backends.snapshot(), target.backends.reference)
    : NaN;
  latencies.sort((a, b) => a - b);
  return {
    cpuMsPerRequest: (cpuSeconds * 1000) / result['2xx'],
    backendCpuMsPerRequest: (backendSeconds * 1000) / result['2xx'],
    server: target.name,
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

const median = (runs) => [...runs].sort((a, b) => a.rps - b.rps)[(runs.length - 1) >> 1];

// ---------------------------------------------------------------------------------------------
// Report

function machine() {
  let cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (model) cpu = model[1].trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  return {
    cpus: os.availableParallelism(),
    cpu,
    memoryGiB: os.totalmem() / 2 ** 30,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadBefore: LOAD_BEFORE,
  };
}

const fixed = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
const mb = (kb) => kb / 1024;

function header({ date, host }) {
  return [
    '## Results',
    '',
    `- Date: ${date}`,
    `- Machine: ${host.cpus} CPUs (\`nproc\`), ${host.cpu}, ${fixed(host.memoryGiB, 1)} GiB RAM, ${host.os}; 1-minute load average ${fixed(host.loadBefore, 2)} before the run`,
    `- Node.js: ${host.node}${host.postgres ? `; ${host.postgres}` : ''}`,
    `- Command: \`npm run bench\` (autocannon, ${CONNECTIONS} connections, pipelining 1; per series, ${WARMUP} s warm-up per server, then ${ROUNDS} alternating ${DURATION} s runs per server: reference, ScopeDB, reference, ...; the tables show each server's median run by req/s)`,
  ];
}

const verdict = (ok) => (ok ? 'PASS' : 'MISS');

/** One series' tables: the medians and their ratio, RSS growth, every run. */
function seriesReport({ title, refLabel, ref, ours, ratio, rss, runs, audit, backendCpu }) {
  const growthMb = mb(rss.peakKb - rss.baselineKb);
  const sortedLatencies = [...rss.latencies].sort((a, b) => a - b);
  const cpuHeader = backendCpu
    ? 'CPU ms per request (server) | CPU ms per request (PostgreSQL backends)'
    : 'CPU ms per request';
  const cpuCells = (run) =>
    backendCpu
      ? `${fixed(run.cpuMsPerRequest, 3)} | ${fixed(run.backendCpuMsPerRequest, 3)}`
      : fixed(run.cpuMsPerRequest, 3);
  const cpuAlign = backendCpu ? '---:|---:' : '---:';
  return [
    `### ${title}: \`tools/call query\`: point lookup in a 100,000-row table`,
    '',
    `| server | req/s | p50 ms | p99 ms | ${cpuHeader} | non-2xx |`,
    `|---|---:|---:|---:|${cpuAlign}|---:|`,
    `| ${refLabel} | ${fixed(ref.rps, 1)} | ${fixed(ref.p50, 2)} | ${fixed(ref.p99, 2)} | ${cpuCells(ref)} | ${ref.non2xx} |`,
    `| ScopeDB (JWT + JWKS, scopes, audit) | ${fixed(ours.rps, 1)} | ${fixed(ours.p50, 2)} | ${fixed(ours.p99, 2)} | ${cpuCells(ours)} | ${ours.non2xx} |`,
    '',
    `ratio ours/reference = ${fixed(ratio, 2)}x (target >= ${RATIO_TARGET.toFixed(2)}x): **${verdict(ratio >= RATIO_TARGET)}**`,
    '',
    `ScopeDB's audit log holds ${audit.audited} successful \`query\` calls for the ${audit.answered} it answered in the run (warm-up and checks included).`,
    '',
    `### ${title}: peak RSS growth: \`SELECT * FROM big\` (1,000,000 rows, max_rows ${RSS_MAX_ROWS})`,
    '',
    `| baseline RSS | peak RSS | RSS after | growth (peak - baseline) | rows returned | call latency (first / median of ${RSS_CALLS}) |`,
    '|---:|---:|---:|---:|---:|---:|',
    `| ${fixed(mb(rss.baselineKb), 1)} MB | ${fixed(mb(rss.peakKb), 1)} MB | ${fixed(mb(rss.afterKb), 1)} MB | ${fixed(growthMb, 1)} MB | ${rss.rows} | ${fixed(rss.latencies[0], 1)} ms / ${fixed(percentile(sortedLatencies, 50), 1)} ms |`,
    '',
    `peak RSS growth = ${fixed(growthMb, 1)} MB (target < ${RSS_TARGET_MB} MB): **${verdict(growthMb < RSS_TARGET_MB)}**`,
    '',
    `### ${title}: every run, in order`,
    '',
    `| # | server | requests | req/s | p50 ms | p99 ms | ${cpuHeader} | non-2xx | errors | timeouts |`,
    `|---:|---|---:|---:|---:|---:|${cpuAlign}|---:|---:|---:|`,
    ...runs.map(
      (run, i) =>
        `| ${i + 1} | ${run.server} | ${run.requests} | ${fixed(run.rps, 1)} | ${fixed(run.p50, 2)} | ${fixed(run.p99, 2)} | ${cpuCells(run)} | ${run.non2xx} | ${run.errors} | ${run.timeouts} |`,
    ),
  ];
}

const HOW = `## How it is measured

\`npm run bench\` builds the project and runs \`bench/run.mjs\`, everything on 127.0.0.1, in two
series, SQLite then PostgreSQL, each with a server pair of its own (the other series' servers are
stopped). Both series start a loopback Casdoor-shaped issuer (OIDC discovery and a JWKS with an
RSA 4096 key) and two servers as child processes: ScopeDB as in production (\`node dist/main.js\`,
from a copy of \`dist/\` taken at the start, configured by environment variables, audit log on,
request log at its default level, in-memory rate limits) and the reference
(\`bench/reference-server.mjs\`: a plain Express 5 app with \`express.json()\` and the SDK's
\`createMcpHandler\` + \`toNodeHandler\`, whose factory builds an \`McpServer\` and registers the same
\`query\` tool, same zod input and output schemas, on every request; no auth, no audit). The
request is a 2025-11-25 (legacy, stateless) JSON-RPC \`tools/call\` of \`query\` with \`SELECT id,
name, price FROM items WHERE id = ?\` (\`$1\` on PostgreSQL) on the same \`items\` table (100,000
rows: \`id\` integer primary key, \`name\`, \`price\`, \`created_at\`), the id walking all 100,000 rows
in a scattered order; ScopeDB's carries an RS256 \`db:query\` token, so every request is
signature-checked (JWKS cached), scope-checked and written to the audit log.

- SQLite: two files with the same \`items\` table, WAL mode; both servers read with better-sqlite3
  on a read-only connection.
- PostgreSQL: a throwaway database (dropped at the end, with its roles) with ScopeDB's three roles
  (\`bench/postgres.mjs\`: the internal owner, with CREATE on the database; the tools' role, which
  creates \`items\` and \`big\`; a read-only role with SELECT on them) and the tables VACUUM ANALYZEd.
  ScopeDB runs with \`DATABASE_URL\` and \`DATABASE_READER_URL\`, default pool size (10), and
  ${POSTGRES_INTERNAL === 'sqlite' ? "its ledger and audit log in its local internal SQLite file (one server's default; `BENCH_POSTGRES_INTERNAL=postgres` puts them in the `scopedb` schema, as replicas share them)" : '`INTERNAL_DATABASE_URL` (its ledger and audit log in the `scopedb` schema of the same database, as replicas share them)'}. The
  reference reads as the read-only role through a node-postgres \`pg.Pool\` of 10 connections,
  each SQL text a named prepared statement with bound parameters. The PostgreSQL server's CPU time
  spent for each server (its backends' user + system time, \`/proc/<pid>/stat\`, told apart by
  \`application_name\`) is a column of its own.

Each server must first answer three lookups with the right row. autocannon (same process as the
issuer, ${CONNECTIONS} connections, pipelining 1) warms each server up for ${WARMUP} s, then runs alternate
between the two (${ROUNDS} runs of ${DURATION} s each) so that drift on the machine hits both; req/s is
autocannon's mean of per-second counts, p50/p99 come from every 2xx response's latency, CPU ms
per request is the user + system time of the server's process and its children (ScopeDB's SQL
worker processes) during the run (\`/proc/<pid>/stat\`) over its 2xx responses, and the
table shows each server's median run. Any non-2xx response, socket error, timeout or tool error
during a run invalidates the benchmark. Memory is measured before the load, on ScopeDB's process:
its RSS (\`/proc/<pid>/status\` VmRSS) is sampled every 10 ms while idle (baseline: the median) and
during ${RSS_CALLS} \`tools/call query\` of \`SELECT * FROM big\` (a 1,000,000-row table of the same shape,
max_rows ${RSS_MAX_ROWS}); the peak is the largest sample or the kernel's high-water mark VmHWM (reset
just before the calls through \`/proc/<pid>/clear_refs\`), whichever is larger; "RSS after" is read
200 ms after the last call. Both servers, PostgreSQL and the load generator share the machine's
cores, so the numbers are for comparing the two servers of a series in one run, not absolute
capacity.
`;

// ---------------------------------------------------------------------------------------------
// The series

function baseEnvironment() {
  return {
    ...environmentWithout([
      'AUTH_',
      'MCP_',
      'RESOURCE_',
      'DATABASE_',
      'INTERNAL_DATABASE_',
      'AUDIT_',
      'RATE_LIMIT_',
      'PUBLIC_URL',
      'PORT',
      'HOST',
      'REFERENCE_',
      'QUERY_',
      'WRITE_',
    ]),
    NODE_ENV: 'production',
  };
}

/**
 * Starts ScopeDB and the reference on a database, checks their answers, measures ScopeDB's RSS
 * during SELECT * FROM big, then runs the interleaved loads. The servers are left running.
 */
async function measure({ app, oursEnv, refEnv, sql, check, backends }) {
  const base = baseEnvironment();
  const [ourPort, refPort] = [await freePort(), await freePort()];
  const ourOrigin = `http://127.0.0.1:${ourPort}`;
  const resourceUrl = `${ourOrigin}/mcp`;
  const oursProcess = spawnServer('ScopeDB', [join(app, 'dist', 'main.js')], {
    ...base,
    PORT: String(ourPort),
    HOST: '127.0.0.1',
    PUBLIC_URL: ourOrigin,
    AUTH_ISSUER: issuer.url,
    // One client is the whole load here: the per-principal limit (600/min by default) would cap
    // it. The limiter still counts every request; LOG_LEVEL stays at its default (a line each).
    RATE_LIMIT_PER_MINUTE: '1000000',
    ...(process.env.BENCH_LOG_LEVEL && { LOG_LEVEL: process.env.BENCH_LOG_LEVEL }),
    ...oursEnv,
  });
  const refProcess = spawnServer('reference', [join(ROOT, 'bench', 'reference-server.mjs')], {
    ...base,
    PORT: String(refPort),
    HOST: '127.0.0.1',
    ...refEnv,
  });
  const servers = { oursProcess, refProcess };
  const ours = {
    name: 'ScopeDB',
    mcpUrl: resourceUrl,
    headers: mcpHeaders(issuer.token({ audience: resourceUrl, scope: 'db:query' })),
    answered: 0,
    pid: oursProcess.pid,
    sql,
    backends: backends && { snapshot: backends, reference: false },
  };
  const ref = {
    name: 'reference',
    mcpUrl: `http://127.0.0.1:${refPort}/mcp`,
    headers: mcpHeaders(),
    answered: 0,
    pid: refProcess.pid,
    sql,
    backends: backends && { snapshot: backends, reference: true },
  };
  await Promise.all([
    waitListening(oursProcess, `${ourOrigin}/.well-known/oauth-protected-resource`),
    waitListening(refProcess, ref.mcpUrl),
  ]);
  log(`  ScopeDB pid ${oursProcess.pid} at ${ours.mcpUrl} (issuer ${issuer.url})`);
  log(`  reference pid ${refProcess.pid} at ${ref.mcpUrl}`);

  await verify(ref, check);
  await verify(ours, check);
  log('  both answer the point lookup with the right row');

  log(`  peak RSS: ${RSS_CALLS} x SELECT * FROM big (max_rows ${RSS_MAX_ROWS}) on ScopeDB ...`);
  const rss = await measureRss(ours, oursProcess.pid);
  log(
    `  baseline ${fixed(mb(rss.baselineKb), 1)} MB, peak ${fixed(mb(rss.peakKb), 1)} MB, after ${fixed(mb(rss.afterKb), 1)} MB${rss.hwmReset ? '' : ' (VmHWM reset not allowed: sampled only)'}`,
  );

  if (WARMUP > 0) {
    log(`  warm-up: ${WARMUP} s each ...`);
    for (const target of [ref, ours]) {
      const run = await load(target, WARMUP);
      if (run.non2xx || run.errors || run.timeouts || run.toolErrors)
        throw new Error(`warm-up of ${target.name} failed: ${JSON.stringify(run)}`);
    }
  }
  const runs = [];
  for (let round = 1; round <= ROUNDS; round++)
    for (const target of [ref, ours]) {
      const run = await load(target, DURATION);
      runs.push(run);
      const backendCpu = backends
        ? `  PostgreSQL CPU ${fixed(run.backendCpuMsPerRequest, 3)} ms/req`
        : '';
      log(
        `  run ${runs.length}/${ROUNDS * 2} ${target.name.padEnd(9)} ${fixed(run.rps, 1).padStart(8)} req/s  CPU ${fixed(run.cpuMsPerRequest, 3)} ms/req${backendCpu}  p50 ${fixed(run.p50, 2)} ms  p99 ${fixed(run.p99, 2)} ms  non-2xx ${run.non2xx}  errors ${run.errors}  timeouts ${run.timeouts}  tool errors ${run.toolErrors}`,
      );
    }
  for (const server of [oursProcess, refProcess])
    if (server.exited) throw childFailure(server, `exited during the load`);
  return { ours, ref, rss, runs, servers };
}

/** Medians, ratio and the audit check of a measured series; stops its servers. */
async function conclude(measured, countAudited) {
  const { ours, ref, runs, rss, servers } = measured;
  // The full stack was exercised: every answered call of ScopeDB's is in its audit log (a call
  // that autocannon cut off at the end of a run may be there too, unanswered).
  await sleep(500);
  const audited = await countAudited();
  if (audited < ours.answered)
    throw new Error(
      `ScopeDB answered ${ours.answered} query calls but its audit log has ${audited} successful ones`,
    );
  await Promise.all([stopServer(servers.oursProcess), stopServer(servers.refProcess)]);
  const refMedian = median(runs.filter((run) => run.server === ref.name));
  const ourMedian = median(runs.filter((run) => run.server === ours.name));
  return {
    ref: refMedian,
    ours: ourMedian,
    ratio: ourMedian.rps / refMedian.rps,
    rss,
    runs,
    audit: { audited, answered: ours.answered },
  };
}

async function sqliteSeries(app) {
  const dir = join(workDir, 'sqlite');
  mkdirSync(dir);
  log(`SQLite: preparing files in ${dir} ...`);
  const dbs = prepareDatabases(dir);
  log(`  items: ${ITEMS} rows in each; big: ${BIG} rows in ScopeDB's (${fixed(dbs.bigMs, 0)} ms)`);
  const measured = await measure({
    app,
    oursEnv: { DATABASE_URL: `sqlite://${dbs.ours}` },
    refEnv: { REFERENCE_DB: dbs.reference },
    sql: POINT_SQL.sqlite,
    check: dbs.check,
  });
  const result = await conclude(measured, () =>
    sqliteAuditCount(join(dirname(dbs.ours), 'scopedb-internal.sqlite')),
  );
  return {
    ...result,
    title: 'SQLite',
    refLabel: 'reference (Express + SDK `createMcpHandler`, no auth, better-sqlite3)',
  };
}

/** Successful `query` calls in the audit log of a SQLite internal database. */
function sqliteAuditCount(path) {
  const auditDb = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return auditDb
      .prepare("SELECT count(*) AS n FROM audit_log WHERE tool = 'query' AND outcome = 'success'")
      .get().n;
  } finally {
    auditDb.close();
  }
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
  const check = [];
  for (const id of [1, 4242, ITEMS]) {
    const { rows } = await postgres.admin.query({
      text: POINT_SQL.postgres,
      values: [id],
      rowMode: 'array',
    });
    check.push({ id, row: rows[0] });
  }
  const internalFile = join(workDir, 'postgres-internal.sqlite');
  const measured = await measure({
    app,
    oursEnv: {
      ...postgres.env,
      ...(POSTGRES_INTERNAL === 'sqlite' && { INTERNAL_DATABASE_URL: `sqlite:${internalFile}` }),
    },
    refEnv: { REFERENCE_DATABASE_URL: postgres.env.DATABASE_READER_URL },
    sql: POINT_SQL.postgres,
    check,
    backends: () => backendCpu(postgres.admin, postgres.database),
  });
  const result = await conclude(measured, async () =>
    POSTGRES_INTERNAL === 'sqlite'
      ? sqliteAuditCount(internalFile)
      : (
          await postgres.admin.query(
            "SELECT count(*)::int AS n FROM scopedb.audit_log WHERE tool = 'query' AND outcome = 'success'",
          )
        ).rows[0].n,
  );
  await postgres.drop();
  postgres = undefined;
  return {
    ...result,
    title: 'PostgreSQL',
    refLabel:
      'reference (Express + SDK `createMcpHandler`, no auth, node-postgres `pg.Pool`, prepared statement)',
    backendCpu: true,
    version: `PostgreSQL ${version[0].server_version}`,
  };
}

/**
 * BENCH_SERIES=introspection: two ScopeDB servers on copies of one SQLite database, one with
 * AUTH_INTROSPECTION on (answers cached AUTH_INTROSPECTION_CACHE_S, its default 60 s, against the
 * loopback issuer's introspection endpoint) and one with it off, loaded alternately; their ratio
 * is the cost of introspection on a busy client (target: on within 10% of off).
 */
async function introspectionSeries(app) {
  const dir = join(workDir, 'introspection');
  mkdirSync(join(dir, 'on'), { recursive: true });
  log(`Introspection: preparing files in ${dir} ...`);
  const dbs = prepareDatabases(dir);
  const onDb = join(dir, 'on', 'scopedb.sqlite');
  cpSync(dbs.ours, onDb);
  const base = baseEnvironment();
  const start = async (name, database, env) => {
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const server = spawnServer(name, [join(app, 'dist', 'main.js')], {
      ...base,
      PORT: String(port),
      HOST: '127.0.0.1',
      PUBLIC_URL: origin,
      AUTH_ISSUER: issuer.url,
      RATE_LIMIT_PER_MINUTE: '1000000',
      DATABASE_URL: `sqlite://${database}`,
      ...(process.env.BENCH_LOG_LEVEL && { LOG_LEVEL: process.env.BENCH_LOG_LEVEL }),
      ...env,
    });
    await waitListening(server, `${origin}/.well-known/oauth-protected-resource`);
    const mcpUrl = `${origin}/mcp`;
    const target = { name, mcpUrl, answered: 0, pid: server.pid, sql: POINT_SQL.sqlite, server };
    target.headers = mcpHeaders(issuer.token({ audience: mcpUrl, scope: 'db:query' }));
    return target;
  };
  const off = await start('off', dbs.ours, {});
  const on = await start('on', onDb, {
    AUTH_INTROSPECTION: 'true',
    AUTH_INTROSPECTION_CLIENT_ID: issuer.introspectionClient.id,
    AUTH_INTROSPECTION_CLIENT_SECRET: issuer.introspectionClient.secret,
  });
  const callsBefore = issuer.introspectionCalls;
  for (const target of [off, on]) await verify(target, dbs.check);
  log('  both answer the point lookup with the right row');
  for (const target of WARMUP > 0 ? [off, on] : []) await load(target, WARMUP);
  const runs = [];
  for (let round = 1; round <= ROUNDS; round++)
    for (const target of [off, on]) {
      const run = await load(target, DURATION);
      runs.push(run);
      log(
        `  run ${runs.length}/${ROUNDS * 2} introspection ${target.name.padEnd(3)} ${fixed(run.rps, 1).padStart(8)} req/s  CPU ${fixed(run.cpuMsPerRequest, 3)} ms/req  p50 ${fixed(run.p50, 2)} ms  p99 ${fixed(run.p99, 2)} ms  non-2xx ${run.non2xx}  errors ${run.errors}`,
      );
    }
  const calls = issuer.introspectionCalls - callsBefore;
  if (calls < 1) throw new Error('the server with AUTH_INTROSPECTION on never called the issuer');
  await Promise.all([stopServer(off.server), stopServer(on.server)]);
  const [offMedian, onMedian] = ['off', 'on'].map((name) =>
    median(runs.filter((run) => run.server === name)),
  );
  const ratio = onMedian.rps / offMedian.rps;
  const answered = runs
    .filter((run) => run.server === 'on')
    .reduce((n, run) => n + run.requests, 0);
  log();
  log(
    `Introspection on / off: ${fixed(onMedian.rps, 1)} / ${fixed(offMedian.rps, 1)} req/s = ${fixed(ratio, 3)}x (target >= 0.90: ${verdict(ratio >= 0.9)}); p50 ${fixed(onMedian.p50, 2)} / ${fixed(offMedian.p50, 2)} ms; ${calls} introspection call(s) for ${answered} requests with one token`,
  );
  return { title: 'Introspection', runs };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const mainJs = join(ROOT, 'dist', 'main.js');
  if (!existsSync(mainJs)) throw new Error(`${mainJs} is missing: run npm run build first`);
  workDir = mkdtempSync(join(os.tmpdir(), 'scopedb-bench-'));
  // The build as it is now, so that a rebuild of dist/ during the run (nest build empties it
  // first) cannot pull files from under the server, e.g. its worker threads' script.
  const app = join(workDir, 'app');
  mkdirSync(app);
  cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');

  issuer = await startIssuer();
  const series = [];
  if (SERIES[0] === 'introspection') {
    const result = await introspectionSeries(app);
    if (result.runs.some((run) => run.non2xx || run.errors || run.timeouts || run.toolErrors))
      throw new Error('a run saw non-2xx responses, errors, timeouts or tool errors');
    return;
  }
  const run = { sqlite: sqliteSeries, postgres: postgresSeries };
  for (const name of SERIES) {
    const result = await run[name](app);
    series.push(result);
    log();
    log(seriesReport(result).join('\n'));
    log();
  }

  const host = machine();
  host.postgres = series.find((result) => result.version)?.version;
  const results = [
    ...header({ date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), host }),
    ...series.flatMap((result) => ['', ...seriesReport(result)]),
  ].join('\n');

  const failed = series.flatMap((result) =>
    result.runs
      .filter((run) => run.non2xx || run.errors || run.timeouts || run.toolErrors)
      .map((run) => ({ ...run, series: result.title })),
  );
  if (failed.length > 0) {
    for (const run of failed.filter((r) => r.firstToolError))
      log(`${run.series} ${run.server} answered a tool error: ${run.firstToolError}`);
    throw new Error(
      `${failed.length} run(s) saw non-2xx responses, errors, timeouts or tool errors: the numbers are not valid (BENCHMARKS.md left as it was)`,
    );
  }
  if (WRITE && SERIES.length === SERIES_NAMES.length) {
    writeFileSync(
      join(ROOT, 'BENCHMARKS.md'),
      `# Benchmarks\n\nWritten by \`npm run bench\` (\`bench/run.mjs\`) from its last run; run it again to refresh.\n\n${results}\n\n${HOW}${keptNotes()}`,
    );
    log('Wrote BENCHMARKS.md');
  } else if (WRITE) log(`BENCHMARKS.md left as it was: BENCH_SERIES=${SERIES[0]} ran one series`);
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

let exitCode = 0;
try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  exitCode = 1;
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
process.exit(exitCode);
