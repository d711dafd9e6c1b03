// `npm start`, the README's command for running against Casdoor, compiles if needed and then is
// the server process itself (`exec node dist/main.js`): npm forwards SIGTERM and SIGINT to it, so a
// signal sent to the command drains the server and ends it with exit code 0, its SQL workers
// with it; nothing is left holding the port or the database.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './support/app.js';
import { type NodeProcess, startCommand, untilHealthy } from './support/node-process.js';
import { commandLine, descendantsOf, isRunning, processesUsing } from './support/proc.js';

/** Whether a server of ours can listen on `port` now, i.e. nothing else does. */
function canListen(port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once('error', () => done(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => done(true)));
  });
}

describe('npm start', () => {
  let dir: string;
  let sut: NodeProcess | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-npm-start-'));
  });
  afterEach(() => {
    // Whatever happened, nothing of this test outlives it.
    const pids = sut ? [sut.child.pid!, ...descendantsOf(sut.child.pid!)] : [];
    for (const pid of [...pids, ...processesUsing(dir)])
      if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    sut = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['SIGTERM', 'the npm process'],
    ['SIGINT', 'the npm process'],
    // What Ctrl+C in a terminal does: the signal reaches every process of the foreground job.
    ['SIGINT', 'its process group'],
  ] as const)(
    '%s sent to %s drains the server, exits 0 and leaves no process running',
    async (signal, target) => {
      const port = await freePort();
      const url = `http://localhost:${port}`;
      sut = startCommand(
        'npm',
        ['start'],
        {
          HOME: process.env.HOME ?? dir,
          AUTH_ISSUER: 'https://casdoor.example.com',
          PORT: String(port),
          PUBLIC_URL: url,
          DATABASE_URL: `sqlite:${join(dir, 'scopedb.sqlite')}`,
        },
        process.cwd(),
        true,
      );
      const npm = sut.child.pid!;
      await untilHealthy(sut, url);
      const running = [npm, ...descendantsOf(npm)];
      const commands = running.map(commandLine);
      expect(commands.filter((command) => command === 'node dist/main.js')).toHaveLength(1);
      expect(
        commands.filter((command) => command.includes('sql.worker')).length,
      ).toBeGreaterThanOrEqual(2);
      expect(processesUsing(dir).length).toBeGreaterThanOrEqual(3);

      process.kill(target === 'the npm process' ? npm : -npm, signal);

      expect(await sut.exited).toEqual({ code: 0, signal: null });
      expect(sut.output().stdout).toContain(`${signal}: no new connections`);
      expect(running.filter(isRunning)).toEqual([]);
      expect(processesUsing(dir)).toEqual([]);
      expect(await canListen(port)).toBe(true);
    },
  );
});
