import { registerAs } from '@nestjs/config';
import { readSettings } from './settings.js';

// One namespace per feature; each is validated by readSettings before the app starts (main.ts).
export const serverConfig = registerAs('server', () => readSettings(process.env).server);
export const authConfig = registerAs('auth', () => readSettings(process.env).auth);
export const mcpConfig = registerAs('mcp', () => readSettings(process.env).mcp);
export const databaseConfig = registerAs('database', () => readSettings(process.env).database);
export const internalConfig = registerAs('internal', () => readSettings(process.env).internal);
export const auditConfig = registerAs('audit', () => readSettings(process.env).audit);

export const logConfig = registerAs('log', () => readSettings(process.env).log);
export const rateLimitConfig = registerAs('rateLimit', () => readSettings(process.env).rateLimit);

export const CONFIG_NAMESPACES = [
  serverConfig,
  authConfig,
  mcpConfig,
  databaseConfig,
  internalConfig,
  auditConfig,
  logConfig,
  rateLimitConfig,
];
