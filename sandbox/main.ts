import 'reflect-metadata';
import { startApp } from '../src/bootstrap.js';
import { drainHttpServer } from '../src/common/graceful-shutdown.js';
import { ConfigurationError, readSettings } from '../src/config/settings.js';
import { ToolRegistry } from '../src/mcp/tool-registry.js';
import { DEMO_USERS } from './accounts.js';
import { seedDemoDatabase } from './demo-database.js';
import { startSandboxIssuer } from './issuer.js';
import { instructions } from './instructions.js';

// `npm run dev`: ScopeDB with a Casdoor-shaped development authorization server and a demo
// database, all on loopback. Never part of the production entrypoint (dist/main.js).

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

if (process.env.NODE_ENV === 'production')
  fail(
    'Refusing to start: npm run dev runs a development authorization server with demo users and ' +
      'public passwords, and NODE_ENV is production. Run the production server with `node dist/main.js` ' +
      'and AUTH_ISSUER set to your Casdoor.',
  );

const issuerPortText = process.env.SANDBOX_ISSUER_PORT?.trim() || '3001';
if (!/^\d+$/.test(issuerPortText) || Number(issuerPortText) > 65535)
  fail(`Configuration error: SANDBOX_ISSUER_PORT: must be a port number, got "${issuerPortText}"`);
const issuerPort = Number(issuerPortText);

// Loopback only, whatever the environment says; the issuer is the sandbox's own.
process.env.HOST = '127.0.0.1';
process.env.AUTH_ISSUER = `http://localhost:${issuerPort}`;
delete process.env.AUTH_JWKS_URI;
process.env.DATABASE_URL ||= 'sqlite:data/demo.sqlite';
process.env.LOG_LEVEL ||= 'warn';
// MCP Inspector's web UI, so that it may call the endpoint from the browser: Inspector 2.x opens
// on 127.0.0.1, 1.x on localhost.
process.env.MCP_ALLOWED_ORIGINS ||= 'http://localhost:6274,http://127.0.0.1:6274';
// The worked example extension (src/examples/reports): its reports read the demo shop's tables.
process.env.REPORTS_EXAMPLE ||= 'true';

let settings: ReturnType<typeof readSettings>;
try {
  settings = readSettings(process.env);
} catch (error) {
  if (!(error instanceof ConfigurationError)) throw error;
  fail(`Configuration error: ${error.message}`);
}

const { database } = settings;
if (database.type !== 'sqlite')
  fail(
    'The sandbox seeds its demo data into a SQLite file; leave DATABASE_URL unset (or sqlite:<path>) for npm run dev.',
  );
const seeded = seedDemoDatabase(database.path);
// The app first: it does not contact the issuer before a token arrives (its keys are fetched on
// the first one), and its tool registry says which scopes the issuer offers.
const app = await startApp({ settings });
const scopes = app.get(ToolRegistry).scopes();
const issuer = await startSandboxIssuer({
  port: issuerPort,
  resourceUrl: settings.mcp.resourceUrl,
  scopes,
}).catch(async (error: unknown) => {
  await app.close();
  return fail(
    `The sandbox issuer could not listen on 127.0.0.1:${issuerPort} (${error instanceof Error ? error.message : String(error)}); set SANDBOX_ISSUER_PORT to a free port.`,
  );
});

process.stdout.write(
  instructions({
    mcpUrl: settings.mcp.resourceUrl,
    issuerUrl: issuer.url,
    databasePath: database.path,
    seeded,
    baselineScopes: settings.auth.baselineScopes,
    scopes,
    reportsExample: settings.mcp.reportsExample,
    users: DEMO_USERS,
  }),
);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    drainHttpServer(app.getHttpServer(), 2_000)
      .then(() => Promise.all([app.close(), issuer.close()]))
      .then(
        () => process.exit(0),
        (error: unknown) =>
          fail(`Shutdown failed: ${error instanceof Error ? error.message : String(error)}`),
      );
  });
