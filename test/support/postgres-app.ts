import { startTestApp, type TestApp } from './app.js';
import { TestIssuer } from './issuer.js';
import { createScopedbPostgres, type ScopedbPostgres } from './postgres.js';
import { serverClient, textOf, type ToolClient } from './tool-client.js';

/** A server on PostgreSQL with ScopeDB's three roles, and a client holding every scope. */
export interface PostgresApp {
  issuer: TestIssuer;
  postgres: ScopedbPostgres;
  sut: TestApp;
  client: ToolClient;
  /** Stops the server, drops the database and its roles, stops the issuer. */
  close(): Promise<void>;
}

/**
 * Starts a server on a fresh database (`prefix`_...) with two connections per role, so that
 * consecutive calls meet the same connections again, and applies `setup` as migration "setup";
 * `env` adds settings.
 */
export async function startPostgresApp(
  prefix: string,
  setup: string,
  env: Record<string, string> = {},
): Promise<PostgresApp> {
  const issuer = await TestIssuer.start();
  let postgres: ScopedbPostgres | undefined;
  let sut: TestApp | undefined;
  const close = async () => {
    await sut?.close();
    await postgres?.drop();
    await issuer.close();
  };
  try {
    postgres = await createScopedbPostgres(prefix);
    sut = await startTestApp({
      AUTH_ISSUER: issuer.url,
      DATABASE_URL: postgres.urls.tools,
      DATABASE_READER_URL: postgres.urls.reader,
      INTERNAL_DATABASE_URL: postgres.urls.internal,
      DATABASE_POOL_SIZE: '2',
      WRITE_TIMEOUT_MS: '1500',
      ...env,
    });
    const client = serverClient(sut.baseUrl, issuer, 'db:query db:modify db:admin');
    const applied = await client.call('apply_migration', { name: 'setup', sql: setup });
    if (applied.isError) throw new Error(textOf(applied));
    return { issuer, postgres, sut, client, close };
  } catch (error) {
    await close();
    throw error;
  }
}
