import { registerAs } from '@nestjs/config';
import type { Settings } from './settings.js';

// One namespace per feature, injected typed: `@Inject(authConfig.KEY) cfg: ConfigType<typeof
// authConfig>`. Their values are parts of the one Settings an application start reads and
// validates (configNamespaces, loaded by AppModule.forRoot).

/** A namespace's injection token and type; its value is loaded with configNamespaces. */
function namespace<K extends keyof Settings>(name: K) {
  return registerAs(name, (): Settings[K] => {
    throw new Error(`The ${name} settings are loaded per application start, by configNamespaces`);
  });
}

export const serverConfig = namespace('server');
export const authConfig = namespace('auth');
export const mcpConfig = namespace('mcp');
export const databaseConfig = namespace('database');
export const internalConfig = namespace('internal');
export const auditConfig = namespace('audit');
export const logConfig = namespace('log');
export const rateLimitConfig = namespace('rateLimit');
export const metricsConfig = namespace('metrics');

/** Every namespace (under the tokens above), each a part of these settings. */
export function configNamespaces(settings: Settings) {
  return (Object.keys(settings) as (keyof Settings)[]).map((name) =>
    registerAs(name, () => settings[name]),
  );
}
