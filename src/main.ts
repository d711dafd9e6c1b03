import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { startApp } from './bootstrap.js';
import { ConfigurationError, readSettings } from './config/settings.js';

if (existsSync('.env')) process.loadEnvFile('.env');
try {
  readSettings(process.env);
} catch (error) {
  if (!(error instanceof ConfigurationError)) throw error;
  process.stderr.write(`Configuration error: ${error.message}\n`);
  process.exit(1);
}
const app = await startApp();

// Drain and close (lifecycle hooks, HTTP server, database), then exit 0 rather than re-raising.
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(
          `Shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`,
        );
        process.exit(1);
      },
    );
  });
