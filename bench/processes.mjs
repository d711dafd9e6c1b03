/**
 * The benchmark's child processes and what it reads about them from /proc: start, wait, stop,
 * and the CPU time of a process tree. Shared by bench/run.mjs and bench/profile.mjs.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A whole-number setting from the environment, `fallback` when unset, checked against a range. */
export function knob(name, fallback, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new Error(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  return value;
}

/** The process environment without the variables any server of the bench reads. */
export function baseEnvironment() {
  const prefixes = [
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
    'LIMIT_',
    'QUERY_',
    'WRITE_',
  ];
  return {
    ...Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !prefixes.some((p) => name.startsWith(p))),
    ),
    NODE_ENV: 'production',
  };
}

/** ScopeDB's environment in the bench: production settings, loopback, the bench's issuer. */
export function scopedbEnvironment(port, issuerUrl, env) {
  return {
    ...baseEnvironment(),
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    AUTH_ISSUER: issuerUrl,
    // One client is the whole load here: the per-principal limit (600/min by default) would cap
    // it. The limiter still counts every request; LOG_LEVEL stays at its default (a line each).
    RATE_LIMIT_PER_MINUTE: '1000000',
    ...(process.env.BENCH_LOG_LEVEL && { LOG_LEVEL: process.env.BENCH_LOG_LEVEL }),
    ...env,
  };
}

/**
 * A Node child process whose output is kept (its tail, for error messages) rather than shown,
 * unless `echo` is set. `nodeArgs` go before the script (e.g. --cpu-prof).
 */
export function spawnServer({ name, script, args = [], nodeArgs = [], env, cwd, echo, registry }) {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    cwd, // a folder without a .env, so none of the checkout's settings leak in
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { name, child, pid: child.pid, tail: '', exited: undefined };
  const keep = (chunk) => {
    server.tail = (server.tail + chunk).slice(-6000);
    if (echo) process.stderr.write(`[${name}] ${chunk}`);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  server.exit = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      server.exited = { code, signal };
      registry?.delete(server);
      resolve(server.exited);
    }),
  );
  child.on('error', (error) => keep(`spawn error: ${error.message}\n`));
  registry?.add(server);
  return server;
}

/** SIGTERM (which lets --cpu-prof write its profile), SIGKILL after 5 s. */
export async function stopServer(server) {
  if (server.exited) return;
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5000);
  await server.exit;
  clearTimeout(timer);
}

export function childFailure(server, what) {
  return new Error(
    `${server.name} ${what}; its last output:\n${server.tail.trim() || '(none)'}`.trimEnd(),
  );
}

/** Polls until the server answers HTTP at all (any status), or fails if it exits first. */
export async function waitListening(server, url, timeoutMs = 30_000) {
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
      await sleep(100);
    }
  }
}

export function procStatusKb(pid, field) {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
    readFileSync(`/proc/${pid}/status`, 'utf8'),
  );
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

const CLOCK_TICKS_PER_S = 100; // USER_HZ, the unit of /proc/<pid>/stat times on Linux

/** The pid and all its descendants (ScopeDB's SQL worker processes among them). */
export function processTree(pid) {
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

/** CPU seconds (user + system) a process has used so far, or NaN when it is gone or off Linux. */
export function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S; // utime, stime
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds used so far by the process and its living descendants, or NaN off Linux. A worker
 * that exits during a run takes its time with it (the parent's cutime counts only waited-for
 * children), so a run compares two readings of the same tree.
 */
export function treeCpuSeconds(pid) {
  let seconds = 0;
  for (const member of processTree(pid)) {
    const own = processCpuSeconds(member);
    if (Number.isNaN(own)) {
      if (member === pid) return NaN;
      continue; // a descendant that exited between listing and reading
    }
    seconds += own;
  }
  return seconds;
}
