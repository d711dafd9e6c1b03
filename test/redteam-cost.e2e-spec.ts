// Red team: bounded cost, attacked past the issue's examples. While one principal attacks, another
// principal's key lookups (answered on the main process) are timed, and the main process's peak
// memory (VmHWM) is read before and after. Each test asserts the safe behaviour.
import Database from 'better-sqlite3';
import { startTestApp, type TestApp } from './support/app.js';
import { TestIssuer } from './support/issuer.js';
import { processMemory } from './support/proc.js';
import { callTool, postMcp } from './support/mcp-http.js';
import { textOf, type ToolClient, toolClient } from './support/tool-client.js';

const MIB = 1024 * 1024;
/** SQL_WORKER_MEMORY_MB's default: no process may grow past it for one call. */
const CEILING = 512 * MIB;
/** The issue's bound for another principal's small read while an attack runs. */
const WELL_UNDER_A_SECOND_MS = 1000;
/** QUERY_MAX_RESULT_BYTES's default: the budget of a query's rows. */
const QUERY_MAX_RESULT_BYTES = 262_144;

const SEED = `
  CREATE TABLE rt_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
  INSERT INTO rt_items VALUES (1, 'apple'), (2, 'pear');
  CREATE TABLE rt_big (id INTEGER PRIMARY KEY);
  WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 500)
    INSERT INTO rt_big SELECT n FROM c;
`;

/**
 * A 2^levels-fold statement in about 90 characters a level: each CTE is a UNION ALL of the one
 * before, twice, and NOT MATERIALIZED makes SQLite copy it into the program at each use.
 */
const doublingCte = (levels: number) => {
  const ctes = ['a0 AS (SELECT 1 AS x)'];
  for (let i = 1; i <= levels; i++)
    ctes.push(
      `a${i} AS NOT MATERIALIZED (SELECT x FROM a${i - 1} UNION ALL SELECT x FROM a${i - 1})`,
    );
  return `WITH ${ctes.join(', ')} SELECT x FROM a${levels} LIMIT 1`;
};

describe('red team: bounded cost', () => {
  let issuer: TestIssuer;
  let sut: TestApp;
  let attacker: ToolClient;
  let victim: ToolClient;

  const peakRss = () => processMemory(process.pid)!.vmHwm;

  /**
   * Runs the attack while the victim sends one key lookup after another; the slowest lookup, and
   * how much the main process's peak memory rose.
   */
  async function whileVictimReads(attack: () => Promise<unknown>) {
    const peakBefore = peakRss();
    let done = false;
    const lookups: number[] = [];
    const victimLoop = (async () => {
      while (!done) {
        const { result, ms } = await victim.timed('lookup', 'query', {
          sql: 'SELECT name FROM rt_items WHERE id = ?',
          params: [1],
        });
        expect(textOf(result)).toContain('apple');
        lookups.push(ms);
      }
    })();
    // Let the victim's lookups start before the attack is sent.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const outcome = await attack().finally(() => (done = true));
    await victimLoop;
    return {
      outcome,
      slowestLookupMs: Math.round(Math.max(...lookups)),
      mainGrewMiB: Math.round((peakRss() - peakBefore) / MIB),
    };
  }

  beforeAll(async () => {
    issuer = await TestIssuer.start();
    sut = await startTestApp(
      { AUTH_ISSUER: issuer.url },
      { prepareDatabase: (path) => new Database(path).exec(SEED).close() },
    );
    attacker = toolClient(
      sut.mcpUrl,
      issuer.token({
        audience: sut.mcpUrl,
        scope: 'db:query db:modify',
        claims: { sub: 'rt-attacker' },
      }),
    );
    victim = toolClient(
      sut.mcpUrl,
      issuer.token({ audience: sut.mcpUrl, scope: 'db:query', claims: { sub: 'rt-victim' } }),
    );
  });
  afterAll(async () => {
    await sut.close();
    await issuer.close();
  });

  it("a db:query caller's 1.5 KB statement that compiles to 2^16 copies neither stalls the main process nor grows it past the ceiling", async () => {
    const sql = doublingCte(16);
    expect(sql.length).toBeLessThan(4096);

    const measured = await whileVictimReads(() => attacker.call('query', { sql }));

    expect(measured.slowestLookupMs).toBeLessThan(WELL_UNDER_A_SECOND_MS);
    expect(measured.mainGrewMiB).toBeLessThan(CEILING / MIB);
  }, 120_000);

  it("execute's RETURNING is held to a byte budget: 500 rows of 60 000 characters do not come back whole", async () => {
    let bodyBytes = 0;
    const measured = await whileVictimReads(async () => {
      const response = await postMcp(
        sut.mcpUrl,
        callTool('execute', {
          sql: "UPDATE rt_big SET id = id RETURNING printf('%.*c', 60000, 'x') AS pad",
        }),
        { token: attacker.token },
      );
      bodyBytes = Buffer.byteLength(response.body);
      return response.status;
    });

    // Seen here: a 60 MB answer (text and structuredContent each hold every row), the main
    // process's peak 490 MiB higher, the victim's lookups up to 270 ms slower.
    expect(measured.slowestLookupMs).toBeLessThan(WELL_UNDER_A_SECOND_MS);
    expect(bodyBytes).toBeLessThan(4 * QUERY_MAX_RESULT_BYTES);
  }, 120_000);
});
