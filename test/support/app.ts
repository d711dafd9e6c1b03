import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { startApp, type StartOptions } from '../../src/bootstrap.js';
import { freePort } from './free-port.mjs';

export interface TestApp {
  app: NestExpressApplication;
  /** http://localhost:<port> */
  baseUrl: string;
  mcpUrl: string;
  /** The application database: the user's data only. */
  databasePath: string;
  /** ScopeDB's own SQLite file: the migrations ledger and bookkeeping (and the audit log by default). */
  internalDatabasePath: string;
  /** The SQLite file the audit log is in (throws when it is in PostgreSQL). */
  auditDatabasePath: string;
  close(): Promise<void>;
}

export { freePort };

export interface TestAppOptions {
  /** Runs on the fresh database file before the app opens it (e.g. to seed it). */
  prepareDatabase?: (path: string) => void;
  /** Modules served beside ScopeDB's own (an extension under test). */
  modules?: StartOptions['modules'];
}

/** The path of a sqlite:<path> or sqlite:///<absolute path> setting. */
export function sqliteUrlPath(url: string): string {
  return url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
}

/**
 * Sets the process environment the app reads at start: every setting a spec may change is reset
 * (unset, or to the test value), then `env` applied. Returns the settings as applied.
 */
export function applyTestSettings(
  env: Record<string, string | undefined>,
): Record<string, string | undefined> {
  const settings: Record<string, string | undefined> = {
    INTERNAL_DATABASE_URL: undefined,
    AUDIT_DATABASE_URL: undefined,
    PUBLIC_URL: undefined,
    MCP_PATH: undefined,
    RESOURCE_URL: undefined,
    AUTH_JWKS_URI: undefined,
    AUTH_ALGORITHMS: undefined,
    AUTH_CLOCK_TOLERANCE_S: undefined,
    AUTH_BASELINE_SCOPES: undefined,
    MCP_ALLOWED_ORIGINS: undefined,
    MCP_HIDE_UNAUTHORIZED_TOOLS: undefined,
    MCP_DIRECT_TOOL_CALLS: undefined,
    QUERY_INLINE_READS: undefined,
    DATABASE_READER_URL: undefined,
    DATABASE_POOL_SIZE: undefined,
    DATABASE_ALLOW_PRIVILEGED_ROLE: undefined,
    WRITE_TIMEOUT_MS: undefined,
    SQL_WORKER_MEMORY_MB: undefined,
    SQL_MAX_IN_FLIGHT_PER_PRINCIPAL: undefined,
    SQL_QUEUE_TIMEOUT_MS: undefined,
    LOG_LEVEL: undefined,
    // Suites send hundreds of requests a minute from one principal and one IP; the limits have
    // their own spec (operations.e2e-spec.ts), which sets them.
    RATE_LIMIT_PER_MINUTE: '1000000',
    RATE_LIMIT_ANONYMOUS_PER_MINUTE: '1000000',
    RATE_LIMIT_REDIS_URL: undefined,
    RATE_LIMIT_REDIS_PREFIX: undefined,
    REPORTS_EXAMPLE: undefined,
    METRICS_PORT: undefined,
    METRICS_HOST: undefined,
    ...env,
  };
  for (const [name, value] of Object.entries(settings)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  return settings;
}

/**
 * Starts the real app on a loopback port (`PORT` if given, else a free one) with a fresh SQLite
 * file and these settings.
 */
export async function startTestApp(
  env: Record<string, string | undefined>,
  options: TestAppOptions = {},
): Promise<TestApp> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'scopedb-test-'));
  const databasePath = join(dir, 'test.sqlite');
  options.prepareDatabase?.(databasePath);
  const settings = applyTestSettings({
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: `sqlite:${databasePath}`,
    ...env,
  });
  const app = await startApp({
    logger: process.env.TEST_LOGS ? undefined : false,
    modules: options.modules,
  });
  const baseUrl = `http://localhost:${port}`;
  const internalDatabasePath = settings.INTERNAL_DATABASE_URL
    ? sqliteUrlPath(settings.INTERNAL_DATABASE_URL)
    : join(dir, 'scopedb-internal.sqlite');
  const audit = settings.AUDIT_DATABASE_URL;
  return {
    app,
    baseUrl,
    mcpUrl: `${baseUrl}${settings.MCP_PATH ?? '/mcp'}`,
    databasePath,
    internalDatabasePath,
    get auditDatabasePath() {
      if (audit === undefined) return internalDatabasePath;
      if (!audit.startsWith('sqlite:')) throw new Error('the audit log is not in a SQLite file');
      return sqliteUrlPath(audit);
    },
    close: async () => {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
