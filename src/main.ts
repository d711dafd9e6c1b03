import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { Logger } from '@nestjs/common';
import { startApp } from './bootstrap.js';
import { drainHttpServer } from './common/graceful-shutdown.js';
import { ConfigurationError, readSettings, type Settings } from './config/settings.js';

if (existsSync('.env')) process.loadEnvFile('.env');
let settings: Settings;
try {
  settings = readSettings(process.env);
} catch (error) {
  if (!(error instanceof ConfigurationError)) throw error;
  process.stderr.write(`Configuration error: ${error.message}\n`);
  process.exit(1);
}
const app = await startApp({ settings }).catch((error: unknown) => {
  // One line, as for a configuration error; messages name places, never passwords.
  process.stderr.write(
    `Start-up failed: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});

// Under Kubernetes' default 30 s grace period, so that the hooks still run before SIGKILL.
const DRAIN_BOUND_MS = 25_000;

// Drain HTTP first: Nest's close() runs the hooks (which stop the SQL workers and flush the audit
// log) before it closes the server. Then close the app, and exit 0 rather than re-raising.
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    Logger.log(`${signal}: no new connections; finishing requests in flight`, 'ScopeDB');
    drainHttpServer(app.getHttpServer(), DRAIN_BOUND_MS)
      .then((drained) => {
        if (!drained)
          Logger.warn(`Requests still open after ${DRAIN_BOUND_MS} ms were cut off`, 'ScopeDB');
        return app.close();
      })
      .then(
        () => process.exit(0),
        (error: unknown) => {
          process.stderr.write(
            `Shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`,
          );
          process.exit(1);
        },
      );
  });
