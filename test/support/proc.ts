import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** What Linux reports of a process's memory, bytes; undefined once the process is gone. */
export interface ProcessMemory {
  /** RLIMIT_DATA (`Max data size`, soft limit); Infinity when unlimited. */
  dataLimit: number;
  /** Private writable mappings: what RLIMIT_DATA counts. */
  vmData: number;
  vmRss: number;
  /** Peak resident set size since the process started (`VmHWM`). */
  vmHwm: number;
  /** Anonymous resident memory: the heaps, without the mapped executable and libraries. */
  rssAnon: number;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** /proc/<pid>/status and /proc/<pid>/limits, read now. */
export function processMemory(pid: number): ProcessMemory | undefined {
  // The limits are read before and after the status: a worker being spawned is, until it execs,
  // a copy of its parent (the parent's VmData, no limit yet), then sets its limit before it
  // execs node. A status read across that change would pair the parent's memory with the
  // worker's limit; such a sample is no one's, and is dropped.
  const limits = read(`/proc/${pid}/limits`);
  const status = read(`/proc/${pid}/status`);
  if (status === undefined || limits === undefined) return undefined;
  if (read(`/proc/${pid}/limits`) !== limits) return undefined;
  const kB = (field: string) => {
    const found = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return found ? Number(found[1]) * 1024 : undefined;
  };
  const [vmData, vmRss, vmHwm, rssAnon] = [kB('VmData'), kB('VmRSS'), kB('VmHWM'), kB('RssAnon')];
  // A process that has ended but is not yet reaped (a zombie) has no memory lines.
  if (vmData === undefined || vmRss === undefined || vmHwm === undefined || rssAnon === undefined)
    return undefined;
  const limit = /^Max data size\s+(\S+)/m.exec(limits)![1];
  return {
    dataLimit: limit === 'unlimited' ? Infinity : Number(limit),
    vmData,
    vmRss,
    vmHwm,
    rssAnon,
  };
}

/** Samples the memory of the processes `pids()` names every few milliseconds until stopped. */
export function sampleMemory(pids: () => number[], everyMs = 5) {
  const samples: (ProcessMemory & { pid: number })[] = [];
  const take = () => {
    for (const pid of pids()) {
      const memory = processMemory(pid);
      if (memory) samples.push({ pid, ...memory });
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

/** The text of a /proc file, or undefined once the process is gone or the file is closed. */
function readProc(read: () => string): string | undefined {
  try {
    return read();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES') return undefined;
    throw error;
  }
}

/** The direct children of a process (Linux). */
export function childrenOf(pid: number): number[] {
  const children = readProc(() => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8'));
  return (children ?? '').split(/\s+/).filter(Boolean).map(Number);
}

/** Its children, their children, and so on. */
export function descendantsOf(pid: number): number[] {
  return childrenOf(pid).flatMap((child) => [child, ...descendantsOf(child)]);
}

/** Still running (a zombie, ended and not yet reaped, is not). */
export function isRunning(pid: number): boolean {
  const status = readProc(() => readFileSync(`/proc/${pid}/status`, 'utf8'));
  return status !== undefined && !/^State:\s+Z/m.test(status);
}

/** Its command line, arguments joined by spaces. */
export function commandLine(pid: number): string {
  const raw = readProc(() => readFileSync(`/proc/${pid}/cmdline`, 'utf8')) ?? '';
  return raw.split('\0').filter(Boolean).join(' ');
}

/** The files a process has open (Linux /proc). */
export function openFiles(pid: number): string[] {
  const fds = readProc(() => readdirSync(`/proc/${pid}/fd`).join('\n')) ?? '';
  return fds
    .split('\n')
    .filter(Boolean)
    .flatMap((fd) => readProc(() => readlinkSync(`/proc/${pid}/fd/${fd}`)) ?? []);
}

/** The running processes that work in `dir`, name it on their command line or hold a file in it. */
export function processesUsing(dir: string): number[] {
  const inside = (path: string) => path === dir || path.startsWith(`${dir}/`);
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter(
      (pid) =>
        isRunning(pid) &&
        (inside(readProc(() => readlinkSync(`/proc/${pid}/cwd`)) ?? '') ||
          commandLine(pid).includes(dir) ||
          openFiles(pid).some(inside)),
    );
}
