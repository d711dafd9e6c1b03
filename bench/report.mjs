/**
 * What `npm run bench` prints and writes to BENCHMARKS.md: the medians per (workload,
 * connections), the targets, every round, and the "How it is measured" section.
 */
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { RANGE_MAX_ROWS, RANGE_ROWS, WORKLOADS } from './workloads.mjs';

export const RATIO_TARGET = 1.3; // ScopeDB req/s over the reference's, workloads a, b, c
export const CPU_TARGET = 3; // ScopeDB CPU per request over the limit server's, every workload
export const RSS_TARGET_MB = 50;
/** The workloads held to the req/s ratio: the reference lists one tool where ScopeDB lists all. */
const RATIO_WORKLOADS = ['a', 'b', 'c'];

export const fixed = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
export const mb = (kb) => kb / 1024;
export const verdict = (ok) => (ok ? 'PASS' : 'MISS');

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** The median run by req/s (the lower middle one of an even count). */
export const median = (runs) => [...runs].sort((a, b) => a.rps - b.rps)[(runs.length - 1) >> 1];
const medianOf = (values) => [...values].sort((a, b) => a - b)[(values.length - 1) >> 1];

export function machine() {
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
  };
}

/**
 * Per (workload, connections): each server's median req/s and median CPU ms per request over the
 * rounds (each taken on its own: the run with the median req/s need not have the median CPU),
 * and the two ratios.
 */
export function summarize(runs, workloads, connectionCounts) {
  const rows = [];
  for (const workload of workloads)
    for (const connections of connectionCounts) {
      const servers = {};
      for (const run of runs.filter(
        (r) => r.workload === workload && r.connections === connections,
      ))
        (servers[run.server] ??= []).push(run);
      const medians = Object.fromEntries(
        Object.entries(servers).map(([name, list]) => {
          const mid = median(list);
          return [
            name,
            {
              rps: mid.rps,
              p50: mid.p50,
              p99: mid.p99,
              cpu: medianOf(list.map((r) => r.cpuMsPerRequest)),
              backendCpu: medianOf(list.map((r) => r.backendCpuMsPerRequest)),
            },
          ];
        }),
      );
      const ours = medians.ScopeDB;
      rows.push({
        workload,
        connections,
        medians,
        ratio: ours && medians.reference ? ours.rps / medians.reference.rps : NaN,
        cpuRatio: ours && medians.limit ? ours.cpu / medians.limit.cpu : NaN,
      });
    }
  return rows;
}

export function resultsHeader({ date, host }, settings) {
  return [
    '## Results',
    '',
    `- Date: ${date}`,
    `- Machine: ${host.cpus} CPUs (\`nproc\`), ${host.cpu}, ${fixed(host.memoryGiB, 1)} GiB RAM, ${host.os}; 1-minute load average ${fixed(host.loadBefore, 2)} before the run`,
    `- Node.js: ${host.node}${host.postgres ? `; ${host.postgres}` : ''}`,
    `- Command: \`npm run bench\` (autocannon, pipelining 1; connections ${settings.connections.join(' and ')}; workloads ${settings.workloads.join(', ')}; per series ${settings.warmup} s warm-up per server and workload, then ${settings.rounds} interleaved rounds of ${settings.duration} s runs, each round every (workload, connections) once per server, the server order rotating; the medians are over the rounds)`,
  ];
}

/** One series' lines (medians with targets, RSS, audit, every round) and its targets. */
export function seriesReport(result, settings) {
  const { title, servers, summary, rss, runs, audit, backendCpu } = result;
  const names = Object.keys(servers);
  const hasRef = names.includes('reference');
  const hasLimit = names.includes('limit');
  const targets = [];
  const lines = [
    `### ${title}: medians over ${settings.rounds} rounds`,
    '',
    'Servers:',
    ...names.map((name) => `- ${servers[name]}`),
    '',
    ...Object.values(WORKLOADS)
      .filter((w) => result.workloads.includes(w.name))
      .map((w) => `- workload ${w.name}: ${w.title}`),
    '',
    `| workload | conns | ${names.map((n) => `${n} req/s`).join(' | ')} | ScopeDB / reference req/s | ${names.map((n) => `${n} CPU ms/req`).join(' | ')}${backendCpu ? ' | PostgreSQL CPU ms/req (ref / ScopeDB)' : ''}${hasLimit ? ' | ScopeDB / limit CPU' : ''} |`,
    `|---|---:|${names.map(() => '---:').join('|')}|---:|${names.map(() => '---:').join('|')}${backendCpu ? '|---:' : ''}${hasLimit ? '|---:' : ''}|`,
  ];
  for (const row of summary) {
    const m = row.medians;
    const ratioHeld = hasRef && RATIO_WORKLOADS.includes(row.workload);
    const ratioOk = row.ratio >= RATIO_TARGET;
    const cpuOk = row.cpuRatio <= CPU_TARGET;
    const label = `${title} ${row.workload} x${row.connections}`;
    if (ratioHeld)
      targets.push({
        ok: ratioOk,
        text: `${label}: ScopeDB / reference req/s ${fixed(row.ratio, 2)}x (target >= ${RATIO_TARGET}x)`,
      });
    if (hasLimit)
      targets.push({
        ok: cpuOk,
        text: `${label}: ScopeDB / limit CPU per request ${fixed(row.cpuRatio, 2)}x (target <= ${CPU_TARGET}x)`,
      });
    const ratioCell = `${fixed(row.ratio, 2)}x${ratioHeld ? ` **${verdict(ratioOk)}**` : ''}`;
    const backend = backendCpu
      ? ` | ${fixed(m.reference?.backendCpu, 3)} / ${fixed(m.ScopeDB?.backendCpu, 3)}`
      : '';
    const cpuCell = hasLimit ? ` | ${fixed(row.cpuRatio, 2)}x **${verdict(cpuOk)}**` : '';
    lines.push(
      `| ${row.workload} | ${row.connections} | ${names.map((n) => fixed(m[n]?.rps, 1)).join(' | ')} | ${ratioCell} | ${names.map((n) => fixed(m[n]?.cpu, 3)).join(' | ')}${backend}${cpuCell} |`,
    );
  }
  lines.push(
    '',
    `Targets: ScopeDB >= ${RATIO_TARGET}x the reference's req/s on ${RATIO_WORKLOADS.filter((w) => result.workloads.includes(w)).join(', ')}${hasLimit ? `; ScopeDB's CPU per request <= ${CPU_TARGET}x the limit server's on every workload` : ''}.`,
    '',
  );
  for (const { server, audited, answered } of audit)
    lines.push(
      `${server}'s audit log holds ${audited} successful \`query\` calls for the ${answered} it answered (checks, RSS calls and warm-up included).`,
    );

  const growthMb = mb(rss.peakKb - rss.baselineKb);
  const rssOk = growthMb < RSS_TARGET_MB;
  targets.push({
    ok: rssOk,
    text: `${title} peak RSS growth on SELECT * FROM big: ${fixed(growthMb, 1)} MB (target < ${RSS_TARGET_MB} MB)`,
  });
  const sortedLatencies = [...rss.latencies].sort((a, b) => a - b);
  lines.push(
    '',
    `### ${title}: peak RSS growth: \`SELECT * FROM big\` (1,000,000 rows, max_rows ${settings.rssMaxRows})`,
    '',
    `| baseline RSS | peak RSS | RSS after | growth (peak - baseline) | rows returned | call latency (first / median of ${settings.rssCalls}) |`,
    '|---:|---:|---:|---:|---:|---:|',
    `| ${fixed(mb(rss.baselineKb), 1)} MB | ${fixed(mb(rss.peakKb), 1)} MB | ${fixed(mb(rss.afterKb), 1)} MB | ${fixed(growthMb, 1)} MB | ${rss.rows} | ${fixed(rss.latencies[0], 1)} ms / ${fixed(percentile(sortedLatencies, 50), 1)} ms |`,
    '',
    `peak RSS growth = ${fixed(growthMb, 1)} MB (target < ${RSS_TARGET_MB} MB): **${verdict(rssOk)}**`,
    '',
    `### ${title}: every run, in order`,
    '',
    `| round | workload | conns | server | requests | req/s | p50 ms | p99 ms | CPU ms/req${backendCpu ? ' | PostgreSQL CPU ms/req' : ''} | non-2xx | errors | timeouts |`,
    `|---:|---|---:|---|---:|---:|---:|---:|---:${backendCpu ? '|---:' : ''}|---:|---:|---:|`,
    ...runs.map(
      (run) =>
        `| ${run.round} | ${run.workload} | ${run.connections} | ${run.server} | ${run.requests} | ${fixed(run.rps, 1)} | ${fixed(run.p50, 2)} | ${fixed(run.p99, 2)} | ${fixed(run.cpuMsPerRequest, 3)}${backendCpu ? ` | ${fixed(run.backendCpuMsPerRequest, 3)}` : ''} | ${run.non2xx} | ${run.errors} | ${run.timeouts} |`,
    ),
  );
  return { lines, targets };
}

export function howItIsMeasured(settings) {
  const internal =
    settings.postgresInternal === 'sqlite'
      ? "its ledger and audit log in its local internal SQLite file (one server's default; `BENCH_POSTGRES_INTERNAL=postgres` puts them in the `scopedb` schema, as replicas share them)"
      : '`INTERNAL_DATABASE_URL` (its ledger and audit log in the `scopedb` schema of the same database, as replicas share them)';
  return `## How it is measured

\`npm run bench\` builds the project and runs \`bench/run.mjs\`, everything on 127.0.0.1, in two
series, SQLite then PostgreSQL, each with servers of its own (the other series' are stopped). A
loopback Casdoor-shaped issuer (\`bench/issuer.mjs\`: OIDC discovery and a JWKS with an RSA 4096
key) signs RS256 \`db:query\` tokens. The servers are child processes:

- **ScopeDB** as in production (\`node dist/main.js\`, from a copy of \`dist/\` taken at the start,
  configured by environment variables): JWT verified against the JWKS, scopes, rate limits (the
  per-principal limit raised so that the one bench client is not capped; every request still
  counts), Origin check, audit log, request log at its default level (\`info\`).
- **reference** (\`bench/reference-server.mjs\`): the MCP SDK as its docs show it, a plain Express 5
  app with \`express.json()\` and the SDK's \`createMcpHandler\` + \`toNodeHandler\`, whose factory
  builds an \`McpServer\` and registers the same \`query\` tool (same zod input and output schemas)
  on every request; no auth, no audit. The SDK serves both protocol eras.
- **limit** (\`bench/limit-server.mjs\`, SQLite series only): the physical anchor, plain
  \`node:http\` doing exactly the work of an authenticated, scoped, audited call: the bearer JWT
  verified once per distinct token (RS256 against the JWKS fetched once; iss, aud, exp checked)
  and found in a cache afterwards, the tool's scope checked, a cached prepared statement on a
  read-only better-sqlite3 connection (max_rows + 1 rows), one audit row per call group-committed
  to a SQLite file of its own (the rows of one event-loop turn in one transaction, each call
  answered after its row commits), the answer in ScopeDB's result shape for either era. Its
  \`tools/list\` is ScopeDB's own list, fetched from ScopeDB at the start.

The workloads (\`bench/workloads.mjs\`), on the same \`items\` table (100,000 rows: \`id\` integer
primary key, \`name\`, \`price\`, \`created_at\`), a file per server:

- **a**: a 2025-11-25 (stateless) JSON-RPC \`tools/call\` of \`query\`, \`SELECT id, name, price
  FROM items WHERE id = ?\` (\`$1\` on PostgreSQL), the id walking all 100,000 rows in a scattered
  order;
- **b**: the same with a ${RANGE_ROWS}-row range read, \`SELECT * FROM items WHERE id > ? ORDER BY id LIMIT
  ${RANGE_ROWS}\`, a start id that leaves ${RANGE_ROWS} rows, max_rows ${RANGE_MAX_ROWS} (nothing truncated);
- **c**: workload a's call as a 2026-07-28 request, as the SDK's client sends it: the
  \`params._meta\` envelope (protocol version, client info, capabilities) and the
  \`Mcp-Protocol-Version\`, \`Mcp-Method\` and \`Mcp-Name\` headers;
- **d**: a 2025-11-25 \`tools/list\` (the reference lists its one tool, ScopeDB and the limit server
  ScopeDB's list, so \`d\` is held to the CPU target only).

Each server must first answer three requests of every workload with the right rows (the
2026-07-28 answer with \`resultType: "complete"\`). autocannon (in the bench's process,
pipelining 1) warms each server up for ${settings.warmup} s per workload, then runs ${settings.rounds} rounds; a round
runs every (workload, connections in ${settings.connections.join(' and ')}) once for ${settings.duration} s on each server, the
server order rotated by one between rounds so that drift on the machine spreads over all of them.
req/s is autocannon's mean of per-second counts, p50/p99 come from every 2xx response's latency,
CPU ms per request is the user + system time of the server's process and its descendants
(ScopeDB's SQL worker processes) during the run (\`/proc/<pid>/stat\`) over its 2xx responses.
The medians table shows, per (workload, connections), each server's median req/s and median CPU
per request over the rounds. Any non-2xx response, socket error, timeout or wrong answer (every
answer is checked: rows present, ${RANGE_ROWS} of them for b, \`resultType\` for c, a tool list for d)
invalidates the benchmark. ScopeDB's audit log must hold at least as many successful \`query\`
calls as it answered (the limit server's likewise).

- SQLite: WAL mode; every server reads with better-sqlite3 on a read-only connection.
- PostgreSQL (workload a, reference and ScopeDB): a throwaway database (dropped at the end, with
  its roles) with ScopeDB's three roles (\`bench/postgres.mjs\`: the internal owner, with CREATE
  on the database; the tools' role, which creates \`items\` and \`big\`; a read-only role with
  SELECT on them) and the tables VACUUM ANALYZEd. ScopeDB runs with \`DATABASE_URL\` and
  \`DATABASE_READER_URL\`, default pool size (10), and ${internal}. The reference reads as the
  read-only role through a node-postgres \`pg.Pool\` of 10 connections, each SQL text a named
  prepared statement with bound parameters. The PostgreSQL server's CPU time spent for each
  server (its backends' user + system time, \`/proc/<pid>/stat\`, told apart by
  \`application_name\`) is a column of its own.

Targets: ScopeDB >= ${RATIO_TARGET}x the reference's req/s on a, b and c at each connection count;
ScopeDB's CPU per request <= ${CPU_TARGET}x the limit server's on a, b, c and d; peak RSS growth < ${RSS_TARGET_MB} MB. A
missed target makes \`npm run bench\` exit 1 after writing this file.

Memory is measured before the load, on ScopeDB's process: its RSS (\`/proc/<pid>/status\` VmRSS)
is sampled every 10 ms while idle (baseline: the median) and during ${settings.rssCalls} \`tools/call query\` of
\`SELECT * FROM big\` (a 1,000,000-row table of the same shape, max_rows ${settings.rssMaxRows}); the peak is the
largest sample or the kernel's high-water mark VmHWM (reset just before the calls through
\`/proc/<pid>/clear_refs\`), whichever is larger; "RSS after" is read 200 ms after the last call.
The servers, PostgreSQL and the load generator share the machine's cores, so the numbers are for
comparing the servers of a series in one run, not absolute capacity. \`npm run bench:profile\`
(\`bench/profile.mjs\`) shows where ScopeDB's CPU goes, by layer, per request.
`;
}
