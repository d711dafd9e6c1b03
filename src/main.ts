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
await startApp();
