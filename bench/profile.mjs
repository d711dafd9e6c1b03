/**
 * `npm run bench:profile`: where ScopeDB's CPU goes, by layer, in microseconds per request.
 *
 * Starts the bench's issuer and a SQLite database, ScopeDB as `npm run bench` runs it
 * (`node --cpu-prof dist/main.js`, same environment), drives one workload (BENCH_WORKLOAD=a|b|c|d,
 * bench/workloads.mjs) with autocannon, stops ScopeDB (which writes its profile) and prints the
 * self time of the profile's samples taken during the measured load, by layer, over the requests
 * answered in it.
 *
 * Attribution: a sample's time (until the next sample) goes to the function on top of the stack,
 * by the URL of its script (node_modules package, ScopeDB's dist/<folder>, node: internals). A
 * frame without a URL (a native function: a better-sqlite3 call, a builtin's C++) is counted for
 * the nearest caller that has one, except the V8 pseudo-frames: (garbage collector) is GC,
 * (program) is V8 and native code outside any JS frame, (idle) is the event loop waiting and is
 * left out. Calls into better-sqlite3's native methods made from ScopeDB's code are shown as
 * SQL, not as the folder that made them. The SQL worker processes are not profiled: their CPU
 * time during the load comes from /proc and is shown on a line of its own.
 *
 * Knobs (env): BENCH_WORKLOAD (a), BENCH_DURATION (s, 10), BENCH_WARMUP (s, 2),
 * BENCH_CONNECTIONS (10), BENCH_LOG_LEVEL (unset: ScopeDB's default, info), BENCH_PROFILE_KEEP (a
 * folder to copy the .cpuprofile into, for a look in DevTools), BENCH_VERBOSE (0).
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { freePort } from '../test/support/free-port.mjs';
import { startIssuer } from './issuer.mjs';
import {
  knob,
  processCpuSeconds,
  scopedbEnvironment,
  spawnServer,
  stopServer,
  treeCpuSeconds,
  waitListening,
} from './processes.mjs';
import { ITEMS, WORKLOADS, fillTable, postMcp } from './workloads.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORKLOAD = process.env.BENCH_WORKLOAD?.trim() || 'a';
if (!Object.hasOwn(WORKLOADS, WORKLOAD))
  throw new Error(`BENCH_WORKLOAD must be one of ${Object.keys(WORKLOADS).join(', ')}`);
const DURATION = knob('BENCH_DURATION', 10, 1, 120);
const WARMUP = knob('BENCH_WARMUP', 2, 0, 60);
const CONNECTIONS = knob('BENCH_CONNECTIONS', 10, 1, 256);
const VERBOSE = knob('BENCH_VERBOSE', 0, 0, 1) === 1;
const log = (line = '') => process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------
// Layers

/** node_modules packages by layer; a package not named here is shown under its own name. */
const PACKAGE_LAYERS = {
  'Express (router, body-parser and their deps)': [
    'express',
    'router',
    'body-parser',
    'raw-body',
    'type-is',
    'iconv-lite',
    'content-type',
    'media-typer',
    'on-finished',
    'finalhandler',
    'qs',
    'depd',
    'bytes',
    'mime-types',
    'mime-db',
    'http-errors',
    'statuses',
    'unpipe',
    'ee-first',
    'encodeurl',
    'escape-html',
    'parseurl',
    'path-to-regexp',
    'proxy-addr',
    'forwarded',
    'ipaddr.js',
    'accepts',
    'negotiator',
    'vary',
    'content-disposition',
    'cookie',
    'cookie-signature',
    'etag',
    'fresh',
    'range-parser',
    'merge-descriptors',
    'utils-merge',
    'methods',
    'debug',
    'setprototypeof',
    'inherits',
    'safe-buffer',
    'safer-buffer',
    'toidentifier',
    'is-promise',
    'call-bind-apply-helpers',
    'call-bound',
    'get-intrinsic',
    'get-proto',
    'es-errors',
    'es-object-atoms',
    'es-define-property',
    'gopd',
    'has-symbols',
    'hasown',
    'function-bind',
    'side-channel',
    'side-channel-list',
    'side-channel-map',
    'side-channel-weakmap',
    'object-inspect',
    'dunder-proto',
    'math-intrinsics',
    'once',
    'wrappy',
    'send',
    'serve-static',
  ],
  'logging (pino, pino-http, nestjs-pino)': [
    'pino',
    'pino-http',
    'nestjs-pino',
    'pino-std-serializers',
    'sonic-boom',
    'thread-stream',
    'fast-redact',
    '@pinojs/redact',
    'quick-format-unescaped',
    'atomic-sleep',
    'on-exit-leak-free',
    'safe-stable-stringify',
    'real-require',
    'process-warning',
  ],
  'JWT / auth (passport*, jsonwebtoken, jwks-rsa)': [
    '@nestjs/passport',
    'passport',
    'passport-jwt',
    'passport-strategy',
    'jsonwebtoken',
    'jws',
    'jwa',
    'jwks-rsa',
    'jose',
    'ecdsa-sig-formatter',
    'buffer-equal-constant-time',
    'lodash.includes',
    'lodash.isboolean',
    'lodash.isinteger',
    'lodash.isnumber',
    'lodash.isplainobject',
    'lodash.isstring',
    'lodash.once',
    'semver',
    'ms',
    'lru-memoizer',
    'lru-cache',
    'limiter',
  ],
  'MCP SDK (@modelcontextprotocol/*)': ['@modelcontextprotocol/'],
  zod: ['zod'],
  'rxjs (and tslib)': ['rxjs', 'tslib'],
  'better-sqlite3 / SQL (native)': ['better-sqlite3', 'bindings', 'file-uri-to-path'],
  'Nest core (@nestjs/*)': ['@nestjs/'],
};
const PACKAGE_LAYER = new Map();
for (const [layer, packages] of Object.entries(PACKAGE_LAYERS))
  for (const name of packages) if (!PACKAGE_LAYER.has(name)) PACKAGE_LAYER.set(name, layer);
const SQL_LAYER = 'better-sqlite3 / SQL (native)';
const ASYNC_HOOKS_LAYER = 'async_hooks / AsyncLocalStorage (node)';
/** Node's own modules that carry HTTP: the server, sockets, streams, the HTTP parser. */
const NODE_HTTP =
  /^node:(_http_|http$|https$|net$|stream$|internal\/(http|streams|net|stream_base|js_stream|child_process))/;

function packageOf(url) {
  const rest = url.slice(url.lastIndexOf('/node_modules/') + '/node_modules/'.length);
  const parts = rest.split('/');
  return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

/** The layer of a frame with a URL; undefined when it counts for its caller. */
function layerOfUrl(url, appDist) {
  if (!url) return undefined;
  if (url.includes('/node_modules/')) {
    const name = packageOf(url);
    const scope = name.startsWith('@') ? `${name.split('/')[0]}/` : undefined;
    return PACKAGE_LAYER.get(name) ?? (scope && PACKAGE_LAYER.get(scope)) ?? `package ${name}`;
  }
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (path.startsWith(appDist)) {
    const folder = path.slice(appDist.length).split('/');
    return `ScopeDB dist/${folder.length > 1 ? folder[0] : folder[0]}`;
  }
  if (/^node:(internal\/)?async_(hooks|local_storage)/.test(url)) return ASYNC_HOOKS_LAYER;
  if (NODE_HTTP.test(url)) return 'node http / net / streams';
  // A file write is its caller's: in practice pino's log lines (sonic-boom's writeSync).
  if (/^node:(internal\/)?fs/.test(url)) return undefined;
  if (/^node:(internal\/)?child_process/.test(url))
    return 'SQL worker IPC (node child_process, main thread)';
  if (/^node:(internal\/)?crypto/.test(url)) return 'node crypto';
  if (/^node:(internal\/process\/task_queues|internal\/timers|timers)/.test(url))
    return 'node microtask queue / timers';
  if (url === 'node:events') return 'node events (EventEmitter)';
  // The SDK's web-standard transport: Request, Response, Headers (undici), web streams, URL.
  if (/^node:internal\/(webstreams|deps\/undici|url|abort_controller|event_target|blob)/.test(url))
    return 'node web platform (undici Request/Response/Headers, web streams, URL)';
  if (url.startsWith('node:')) return 'node other internals';
  return `other (${url})`;
}

/** better-sqlite3's native methods, when ScopeDB's code calls them directly. */
const SQLITE_NATIVE = new Set([
  'prepare',
  'get',
  'all',
  'run',
  'iterate',
  'raw',
  'pluck',
  'expand',
  'columns',
  'bind',
  'exec',
  'pragma',
  'safeIntegers',
  'next',
]);

/**
 * Self time per layer (microseconds) of the samples taken between `fromUs` and `toUs` (the
 * profile's clock: CLOCK_MONOTONIC microseconds, the clock of process.hrtime in every process).
 */
export function layersOf(profile, appDist, fromUs, toUs) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  const layerCache = new Map();
  const layerOf = (id) => {
    let layer = layerCache.get(id);
    if (layer !== undefined) return layer;
    const { callFrame } = byId.get(id);
    const name = callFrame.functionName;
    if (name === '(garbage collector)') layer = 'GC';
    else if (name === '(idle)') layer = 'idle';
    else if (name === '(program)') layer = 'V8 / native outside JS frames (program)';
    else if (name === '(root)') layer = 'other';
    else {
      layer = callFrame.url ? layerOfUrl(callFrame.url, appDist) : undefined;
      if (layer === undefined) {
        // Native code, or a file write: its caller's layer.
        const up = parent.get(id);
        const callerLayer = up === undefined ? 'other' : layerOf(up);
        const sqlite =
          !callFrame.url &&
          SQLITE_NATIVE.has(name) &&
          (callerLayer.startsWith('ScopeDB') || callerLayer === SQL_LAYER);
        layer = sqlite ? SQL_LAYER : callerLayer;
      }
    }
    layerCache.set(id, layer);
    return layer;
  };
  const totals = new Map();
  let at = profile.startTime;
  const stamps = profile.timeDeltas.map((delta) => (at += delta));
  for (let i = 0; i < profile.samples.length - 1; i++) {
    if (stamps[i] < fromUs || stamps[i] >= toUs) continue;
    const layer = layerOf(profile.samples[i]);
    totals.set(layer, (totals.get(layer) ?? 0) + (stamps[i + 1] - stamps[i]));
  }
  return totals;
}

// ---------------------------------------------------------------------------------------------

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

async function main() {
  const workload = WORKLOADS[WORKLOAD];
  const workDir = mkdtempSync(join(os.tmpdir(), 'scopedb-profile-'));
  const children = new Set();
  const issuer = await startIssuer();
  try {
    const database = join(workDir, 'scopedb.sqlite');
    const db = new Database(database);
    db.pragma('journal_mode = WAL');
    fillTable(db, 'items', ITEMS);
    db.close();
    const profileDir = join(workDir, 'profile');
    mkdirSync(profileDir);
    const port = await freePort();
    const mcpUrl = `http://127.0.0.1:${port}/mcp`;
    const appDist = join(ROOT, 'dist') + '/';
    const server = spawnServer({
      name: 'ScopeDB',
      script: join(ROOT, 'dist', 'main.js'),
      nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
      env: scopedbEnvironment(port, issuer.url, { DATABASE_URL: `sqlite://${database}` }),
      cwd: workDir, // no ./.env of the checkout leaks in
      echo: VERBOSE,
      registry: children,
    });
    await waitListening(server, `http://127.0.0.1:${port}/.well-known/oauth-protected-resource`);
    const token = issuer.token({ audience: mcpUrl, scope: 'db:query' });
    const headers = workload.headers(token);
    const check = await postMcp(mcpUrl, headers, workload.body('sqlite', 0));
    if (check.status !== 200 || !check.message?.result)
      throw new Error(`ScopeDB did not answer workload ${WORKLOAD}: ${check.text.slice(0, 400)}`);

    const drive = async (seconds) => {
      let n = 0;
      let wrong = 0;
      const result = await autocannon({
        url: mcpUrl,
        connections: CONNECTIONS,
        pipelining: 1,
        duration: seconds,
        requests: [
          {
            method: 'POST',
            path: '/mcp',
            headers,
            body: workload.body('sqlite', 0),
            setupRequest: (request) => {
              request.body = workload.body('sqlite', ++n);
              return request;
            },
            onResponse: (status, body) => {
              if (status === 200 && !workload.answered(body)) wrong++;
            },
          },
        ],
      });
      if (result.non2xx || result.errors || result.timeouts || wrong)
        throw new Error(
          `the load saw non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}, wrong answers ${wrong}`,
        );
      return result;
    };
    if (WARMUP > 0) await drive(WARMUP);
    log(
      `workload ${WORKLOAD} (${workload.title}), ${CONNECTIONS} connections, ${DURATION} s, ScopeDB pid ${server.pid} under --cpu-prof ...`,
    );
    const cpuBefore = { main: processCpuSeconds(server.pid), tree: treeCpuSeconds(server.pid) };
    const from = nowUs();
    const result = await drive(DURATION);
    const to = nowUs();
    const cpuAfter = { main: processCpuSeconds(server.pid), tree: treeCpuSeconds(server.pid) };
    await stopServer(server);

    const file = readdirSync(profileDir).find(
      (name) => name.endsWith('.cpuprofile') && name.includes(`.${server.pid}.`),
    );
    if (!file) throw new Error(`ScopeDB (pid ${server.pid}) wrote no profile into ${profileDir}`);
    if (process.env.BENCH_PROFILE_KEEP)
      cpSync(join(profileDir, file), join(process.env.BENCH_PROFILE_KEEP, file));
    const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8'));
    const totals = layersOf(profile, appDist, from, to);
    const requests = result['2xx'];
    report(totals, requests, result, cpuBefore, cpuAfter);
  } finally {
    await Promise.all([...children].map((child) => stopServer(child)));
    await issuer.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

function report(totals, requests, result, cpuBefore, cpuAfter) {
  const idle = totals.get('idle') ?? 0;
  totals.delete('idle');
  const busy = [...totals.values()].reduce((sum, us) => sum + us, 0);
  const mainUs = (cpuAfter.main - cpuBefore.main) * 1e6;
  const workersUs = (cpuAfter.tree - cpuAfter.main - (cpuBefore.tree - cpuBefore.main)) * 1e6;
  // The profiler samples wall time: on a loaded machine a descheduled thread's time lands on
  // whatever was on its stack. Scaling every layer so that they add up to the CPU time /proc
  // counted for the process corrects for that, roughly (the process's other threads, GC helpers
  // and libuv's pool, are in /proc's number and in no sample).
  const scale = mainUs / busy;
  const perRequest = (us) => (us / requests).toFixed(1);
  log(
    `${requests} requests answered, ${fixed(result.requests.average)} req/s; main thread busy ${perRequest(busy)} us/request in the profile (idle ${perRequest(idle)} us/request left out); /proc: main process ${perRequest(mainUs)} us/request CPU, SQL worker processes ${perRequest(workersUs)} us/request`,
  );
  log(
    'Self time of the samples taken during the load, by layer: a sample counts for the function on top of the stack, by its script URL; a frame without a URL (native code) and a node:fs frame count for their nearest caller with one, better-sqlite3 native methods called from ScopeDB as SQL; (idle) is left out.',
  );
  log();
  log('| layer | us / request (profile) | us / request (scaled to /proc CPU) | share |');
  log('|---|---:|---:|---:|');
  for (const [layer, us] of [...totals].sort((a, b) => b[1] - a[1]))
    log(
      `| ${layer} | ${perRequest(us)} | ${perRequest(us * scale)} | ${((100 * us) / busy).toFixed(1)}% |`,
    );
  log(`| **main process** | **${perRequest(busy)}** | **${perRequest(mainUs)}** | 100% |`);
  log(`| SQL worker processes (/proc, not profiled) | | ${perRequest(workersUs)} | |`);
}

const fixed = (value) => (Number.isFinite(value) ? value.toFixed(0) : 'n/a');

try {
  await main();
} catch (error) {
  process.stderr.write(
    `bench:profile failed: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exitCode = 1;
}
