import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';

/** Thrown for a missing or malformed setting; the message is one line naming the variable. */
export class ConfigurationError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigurationError';
  }
}

export type Environment = Record<string, string | undefined>;

// Asymmetric JWS algorithms only: `none` and HS* must never verify an access token.
export const SUPPORTED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
] as const;
export type JwsAlgorithm = (typeof SUPPORTED_ALGORITHMS)[number];

// RFC 6749 §3.3 scope-token: printable ASCII except space, '"' and '\'.
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export interface ServerSettings {
  port: number;
  host: string;
  publicUrl: string;
  maxBodyBytes: number;
}

export interface AuthSettings {
  issuer: string;
  jwksUri: string | undefined;
  algorithms: JwsAlgorithm[];
  clockToleranceS: number;
  resourceUrl: string;
  /** Every spelling of the resource a token's `aud` may carry. */
  audiences: string[];
  baselineScopes: string[];
  jwksCacheMaxAgeMs: number;
  jwksTimeoutMs: number;
  /** Confirm each token with Casdoor's introspection endpoint (AUTH_INTROSPECTION); off: undefined. */
  introspection: IntrospectionSettings | undefined;
}

/** What Casdoor's introspection cannot be reached means: refuse, or accept for a grace period. */
export const INTROSPECTION_FAILURE_MODES = ['refuse', 'accept'] as const;
export type IntrospectionFailureMode = (typeof INTROSPECTION_FAILURE_MODES)[number];

/** AUTH_INTROSPECTION_*: revocation through Casdoor's RFC 7662 endpoint. */
export interface IntrospectionSettings {
  /** The Casdoor application that introspects (the one that issues the tokens: Casdoor answers only for its own). */
  clientId: string;
  /** Its client secret; never in a message or a log line. */
  clientSecret: string;
  /** How long one answer is reused for a token, ms (never past the token's `exp`). */
  cacheMs: number;
  /** Timeout of one introspection call, ms. */
  timeoutMs: number;
  onFailure: IntrospectionFailureMode;
  /** With onFailure `accept`: how long into an outage locally verified tokens are still accepted, ms. */
  graceMs: number;
}

export interface McpSettings {
  path: string;
  resourceUrl: string;
  resourceName: string;
  allowedOrigins: string[];
  hideUnauthorizedTools: boolean;
  /** Serve 2025-era single `tools/call` requests without the SDK's per-request server. */
  directToolCalls: boolean;
  /** Serve POST requests to the MCP endpoint without Express's router and body parser. */
  fastPath: boolean;
  /** Serve the worked example extension (src/examples/reports) and its `reports:read` scope. */
  reportsExample: boolean;
}

/** What every engine shares: result limits, the write deadline, fair shares. */
interface CommonDatabaseSettings {
  /** Budget of a query result's rendered rows, bytes. */
  maxResultBytes: number;
  /** Longest text (characters) or blob (bytes) in one result cell. */
  maxCellChars: number;
  /** Deadline of a write tool or migration, ms. */
  writeTimeoutMs: number;
  /** SQL jobs one principal may have queued or running at once. */
  maxInFlightPerPrincipal: number;
  /** Longest wait for a free SQL worker or connection, ms. */
  queueTimeoutMs: number;
}

export interface SqliteDatabaseSettings extends CommonDatabaseSettings {
  type: 'sqlite';
  path: string;
  busyTimeoutMs: number;
  /** Worker processes (connections) for read queries; one more serves writes. */
  queryWorkers: number;
  /** Run reads whose compiled program is bounded (key lookups) on the main thread. */
  inlineReads: boolean;
  /** Memory ceiling of each SQL worker process (OS limit), MiB. */
  workerMemoryMb: number;
}

/** A PostgreSQL connection string and its form for messages (password replaced by ***). */
export interface PostgresUrl {
  url: string;
  redactedUrl: string;
}

export interface PostgresDatabaseSettings extends CommonDatabaseSettings {
  type: 'postgres';
  /** DATABASE_URL: the role that runs the tools' SQL (reads too, unless readerUrl is set). */
  connection: PostgresUrl;
  /** DATABASE_READER_URL: a role with read privileges only, for query, explain and the catalog. */
  reader: PostgresUrl | undefined;
  /** Connections per role (DATABASE_POOL_SIZE). */
  poolSize: number;
  /** Start even when a role is a superuser or has BYPASSRLS (DATABASE_ALLOW_PRIVILEGED_ROLE). */
  allowPrivilegedRole: boolean;
}

export type DatabaseSettings = SqliteDatabaseSettings | PostgresDatabaseSettings;

/**
 * ScopeDB's own database (INTERNAL_DATABASE_URL): a SQLite file that no tool connection opens, or
 * a PostgreSQL database whose `scopedb` schema the tools' roles have no privilege on.
 */
export type InternalSettings = SqliteInternalSettings | PostgresInternalSettings;
export interface SqliteInternalSettings {
  type: 'sqlite';
  path: string;
  busyTimeoutMs: number;
}
export interface PostgresInternalSettings extends PostgresUrl {
  type: 'postgres';
  schema: string;
}

/** Where the audit log lives: a SQLite file (the internal database by default) or PostgreSQL. */
export type AuditDatabaseLocation =
  | { type: 'sqlite'; path: string; busyTimeoutMs: number }
  | {
      type: 'postgres';
      url: string;
      /** The URL with its password replaced by ***, for messages and logs. */
      redactedUrl: string;
      /** The schema its tables live in (the internal database's `scopedb`); else the default. */
      schema?: string;
    };

export interface AuditSettings {
  database: AuditDatabaseLocation;
  /** The setting that put it there (AUDIT_DATABASE_URL, else the internal database's), for messages. */
  setting: 'AUDIT_DATABASE_URL' | 'INTERNAL_DATABASE_URL';
  /** Answer calls even when their records cannot be written (AUDIT_FAIL_OPEN; weaker). */
  failOpen: boolean;
  /** How long past WRITE_TIMEOUT_MS a write's pending record waits before it is marked interrupted. */
  intentGraceMs: number;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

export interface LogSettings {
  level: LogLevelName;
}

export interface RateLimitSettings {
  /** Requests per minute for one principal (`sub`), over every limited route. */
  perMinute: number;
  /** Requests per minute from one IP address without a valid token (refusals included). */
  anonymousPerMinute: number;
  /** Where every replica counts (RATE_LIMIT_REDIS_URL); unset: each process counts in memory. */
  redis: RateLimitRedisSettings | undefined;
}

export interface RateLimitRedisSettings {
  url: string;
  /** The URL with its password replaced by ***, for messages and logs. */
  redactedUrl: string;
  /** Starts every key (RATE_LIMIT_REDIS_PREFIX), so deployments sharing one Redis stay apart. */
  prefix: string;
}

/** The Prometheus listener (METRICS_PORT, METRICS_HOST): a port of its own, never the MCP port. */
export interface MetricsSettings {
  /** Unset: no metrics listener. */
  port: number | undefined;
  host: string;
}

export interface Settings {
  server: ServerSettings;
  auth: AuthSettings;
  mcp: McpSettings;
  database: DatabaseSettings;
  internal: InternalSettings;
  audit: AuditSettings;
  log: LogSettings;
  rateLimit: RateLimitSettings;
  metrics: MetricsSettings;
}

function value(env: Environment, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  return trimmed === '' ? undefined : trimmed;
}

function integer(env: Environment, name: string, fallback: number, min: number, max: number) {
  const raw = value(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw))
    throw new ConfigurationError(name, `must be a whole number, got "${raw}"`);
  const parsed = Number(raw);
  if (parsed < min || parsed > max)
    throw new ConfigurationError(name, `must be between ${min} and ${max}, got ${parsed}`);
  return parsed;
}

function boolean(env: Environment, name: string, fallback: boolean): boolean {
  const raw = value(env, name);
  if (raw === undefined) return fallback;
  if (/^(true|1|yes)$/i.test(raw)) return true;
  if (/^(false|0|no)$/i.test(raw)) return false;
  throw new ConfigurationError(name, `must be true or false, got "${raw}"`);
}

const httpUrl = z.url({ protocol: /^https?$/ });

function url(name: string, raw: string): URL {
  const parsed = httpUrl.safeParse(raw);
  if (!parsed.success) throw new ConfigurationError(name, `must be an http(s) URL, got "${raw}"`);
  const result = new URL(parsed.data);
  if (result.hash || result.username || result.password)
    throw new ConfigurationError(name, 'must not contain a fragment or credentials');
  return result;
}

/** The URL as written, without a trailing slash on a bare origin. */
function canonical(u: URL): string {
  const text = u.toString();
  return u.pathname === '/' && !u.search ? text.slice(0, -1) : text;
}

function list(env: Environment, name: string): string[] | undefined {
  const raw = value(env, name);
  if (raw === undefined) return undefined;
  return raw
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

export function readLogSettings(env: Environment): LogSettings {
  const raw = value(env, 'LOG_LEVEL')?.toLowerCase() ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(raw))
    throw new ConfigurationError(
      'LOG_LEVEL',
      `must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`,
    );
  return { level: raw as LogLevelName };
}

/** The path of a `sqlite:<path>` or `sqlite:///<absolute path>` URL. */
function sqlitePath(name: string, raw: string): string {
  const path = raw.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
  if (path === '' || path === ':memory:')
    throw new ConfigurationError(name, 'needs a file path, as in sqlite:data/scopedb.sqlite');
  return path;
}

/** Credentials never reach a message: `user:password@` becomes `user:***@`, `password=` too. */
export function redactUrl(raw: string): string {
  const scheme = raw.indexOf('://');
  // The last @, in case the password holds an unescaped @ or /: better too much hidden than too little.
  const at = raw.lastIndexOf('@');
  let redacted = raw;
  if (scheme >= 0 && at > scheme) {
    const userInfo = raw.slice(scheme + 3, at);
    const user = userInfo.split(':')[0];
    redacted = `${raw.slice(0, scheme + 3)}${userInfo.includes(':') ? `${user}:***` : user}${raw.slice(at)}`;
  }
  return redacted.replace(/([?&]password=)[^&]*/gi, '$1***');
}

/** The database settings alone (for tools such as audit:export that need no auth settings). */
export function readDatabaseSettings(env: Environment): DatabaseSettings {
  const name = 'DATABASE_URL';
  const raw = value(env, name) ?? 'sqlite:data/scopedb.sqlite';
  const common: CommonDatabaseSettings = {
    maxResultBytes: integer(env, 'QUERY_MAX_RESULT_BYTES', 262_144, 1024, 16_777_216),
    maxCellChars: integer(env, 'QUERY_MAX_CELL_CHARS', 2000, 16, 1_048_576),
    writeTimeoutMs: integer(env, 'WRITE_TIMEOUT_MS', 15_000, 100, 600_000),
    maxInFlightPerPrincipal: integer(env, 'SQL_MAX_IN_FLIGHT_PER_PRINCIPAL', 1000, 1, 100_000),
    queueTimeoutMs: integer(env, 'SQL_QUEUE_TIMEOUT_MS', 10_000, 100, 600_000),
  };
  if (raw.startsWith('sqlite:')) {
    if (value(env, 'DATABASE_READER_URL') !== undefined)
      throw new ConfigurationError('DATABASE_READER_URL', 'needs a postgres:// DATABASE_URL');
    return {
      type: 'sqlite',
      path: sqlitePath(name, raw),
      busyTimeoutMs: integer(env, 'DATABASE_BUSY_TIMEOUT_MS', 5000, 0, 600_000),
      queryWorkers: integer(env, 'QUERY_WORKERS', 2, 1, 32),
      inlineReads: boolean(env, 'QUERY_INLINE_READS', true),
      workerMemoryMb: integer(env, 'SQL_WORKER_MEMORY_MB', 512, 128, 65_536),
      ...common,
    };
  }
  if (POSTGRES_SCHEME.test(raw)) {
    const readerRaw = value(env, 'DATABASE_READER_URL');
    return {
      type: 'postgres',
      connection: postgresUrl(name, raw),
      reader: readerRaw === undefined ? undefined : postgresUrl('DATABASE_READER_URL', readerRaw),
      poolSize: integer(env, 'DATABASE_POOL_SIZE', 10, 2, 500),
      allowPrivilegedRole: boolean(env, 'DATABASE_ALLOW_PRIVILEGED_ROLE', false),
      ...common,
    };
  }
  throw new ConfigurationError(
    name,
    `must be sqlite:<path> or postgres://user:password@host[:port]/database, got "${redactUrl(raw)}"`,
  );
}

const POSTGRES_SCHEME = /^postgres(ql)?:\/\//;

/** A postgres:// or postgresql:// URL naming a host and a database; its query is passed to pg. */
function postgresUrl(name: string, raw: string): PostgresUrl {
  const redactedUrl = redactUrl(raw);
  if (!POSTGRES_SCHEME.test(raw))
    throw new ConfigurationError(
      name,
      `must be postgres://user:password@host[:port]/database, got "${redactedUrl}"`,
    );
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigurationError(
      name,
      `is not a valid URL: "${redactedUrl}"; expected postgres://user:password@host[:port]/database`,
    );
  }
  if (url.hostname === '' || url.pathname.length <= 1 || url.pathname.slice(1).includes('/'))
    throw new ConfigurationError(
      name,
      `must name a host and a database, as in postgres://user:password@host[:port]/database, got "${redactedUrl}"`,
    );
  return { url: raw, redactedUrl };
}

const INTERNAL_DATABASE_FILE = 'scopedb-internal.sqlite';
/** The schema of ScopeDB's own tables in a PostgreSQL internal database. */
export const INTERNAL_SCHEMA = 'scopedb';

/**
 * INTERNAL_DATABASE_URL: ScopeDB's own database (migrations ledger, bookkeeping, and the audit
 * log unless AUDIT_DATABASE_URL puts it elsewhere): a SQLite file, by default beside a SQLite
 * application database (data/ for PostgreSQL), or a PostgreSQL database (schema `scopedb`).
 */
export function readInternalSettings(env: Environment): InternalSettings {
  const name = 'INTERNAL_DATABASE_URL';
  const application = readDatabaseSettings(env);
  const busyTimeoutMs = integer(env, 'DATABASE_BUSY_TIMEOUT_MS', 5000, 0, 600_000);
  const raw = value(env, name);
  if (raw !== undefined && POSTGRES_SCHEME.test(raw)) {
    const internal = postgresUrl(name, raw);
    if (
      application.type === 'postgres' &&
      [application.connection, application.reader].some((role) => role?.url === internal.url)
    )
      throw new ConfigurationError(
        name,
        "connects as the role that runs the tools' SQL; ScopeDB's own tables need a role of their own, which the tools' roles cannot act as",
      );
    return { type: 'postgres', schema: INTERNAL_SCHEMA, ...internal };
  }
  if (raw !== undefined && !raw.startsWith('sqlite:'))
    throw new ConfigurationError(
      name,
      `must be sqlite:<path> or postgres://user:password@host[:port]/database, got "${redactUrl(raw)}"`,
    );
  const beside = application.type === 'sqlite' ? dirname(application.path) : 'data';
  const path = raw === undefined ? join(beside, INTERNAL_DATABASE_FILE) : sqlitePath(name, raw);
  if (application.type === 'sqlite' && resolve(path) === resolve(application.path))
    throw new ConfigurationError(
      name,
      'names the application database; ScopeDB keeps its own records in a file the tools never open',
    );
  const audit = value(env, 'AUDIT_DATABASE_URL');
  if (
    raw !== undefined &&
    audit?.startsWith('sqlite:') &&
    resolve(path) === resolve(sqlitePath('AUDIT_DATABASE_URL', audit))
  )
    throw new ConfigurationError(
      name,
      'names the AUDIT_DATABASE_URL file; leave AUDIT_DATABASE_URL unset to keep the audit log in the internal database',
    );
  return { type: 'sqlite', path, busyTimeoutMs };
}

/** AUDIT_DATABASE_URL: unset (the internal database), or a SQLite file or PostgreSQL database. */
export function readAuditSettings(env: Environment): AuditSettings {
  return {
    ...readAuditLocation(env),
    failOpen: boolean(env, 'AUDIT_FAIL_OPEN', false),
    intentGraceMs: integer(env, 'AUDIT_INTENT_GRACE_MS', 60_000, 100, 3_600_000),
  };
}

function readAuditLocation(env: Environment): Pick<AuditSettings, 'database' | 'setting'> {
  const name = 'AUDIT_DATABASE_URL';
  const raw = value(env, name);
  if (raw === undefined) {
    const internal = readInternalSettings(env);
    return {
      database:
        internal.type === 'sqlite'
          ? { type: 'sqlite', path: internal.path, busyTimeoutMs: internal.busyTimeoutMs }
          : {
              type: 'postgres',
              url: internal.url,
              redactedUrl: internal.redactedUrl,
              schema: internal.schema,
            },
      setting: 'INTERNAL_DATABASE_URL',
    };
  }
  if (raw.startsWith('sqlite:')) {
    const path = sqlitePath(name, raw);
    const application = readDatabaseSettings(env);
    if (application.type === 'sqlite' && resolve(path) === resolve(application.path))
      throw new ConfigurationError(
        name,
        'names the application database, which holds only your data; leave it unset to keep the audit log in the internal database',
      );
    const internal = readInternalSettings(env);
    if (
      value(env, 'INTERNAL_DATABASE_URL') === undefined &&
      internal.type === 'sqlite' &&
      resolve(path) === resolve(internal.path)
    )
      throw new ConfigurationError(
        name,
        'names the internal database; leave it unset to keep the audit log there',
      );
    return {
      database: {
        type: 'sqlite',
        path,
        busyTimeoutMs: integer(env, 'DATABASE_BUSY_TIMEOUT_MS', 5000, 0, 600_000),
      },
      setting: name,
    };
  }
  if (POSTGRES_SCHEME.test(raw)) {
    const audit = postgresUrl(name, raw);
    const application = readDatabaseSettings(env);
    if (
      application.type === 'postgres' &&
      [application.connection, application.reader].some((role) => role?.url === audit.url)
    )
      throw new ConfigurationError(
        name,
        "connects as the role that runs the tools' SQL, which could then read and write the audit log; give the audit log a role of its own",
      );
    return { database: { type: 'postgres', ...audit }, setting: name };
  }
  throw new ConfigurationError(
    name,
    `must be sqlite:<path> or postgres://user:password@host[:port]/database, got "${redactUrl(raw)}"`,
  );
}

/** RATE_LIMIT_*: the limits, and the Redis that replicas share them through (optional). */
export function readRateLimitSettings(env: Environment): RateLimitSettings {
  const prefix = value(env, 'RATE_LIMIT_REDIS_PREFIX') ?? 'scopedb';
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix))
    throw new ConfigurationError(
      'RATE_LIMIT_REDIS_PREFIX',
      `must be 1-64 letters, digits, '.', '_', ':' or '-', got "${prefix}"`,
    );
  return {
    perMinute: integer(env, 'RATE_LIMIT_PER_MINUTE', 600, 1, 1_000_000),
    anonymousPerMinute: integer(env, 'RATE_LIMIT_ANONYMOUS_PER_MINUTE', 60, 1, 1_000_000),
    redis: readRedisUrl(env, prefix),
  };
}

function readRedisUrl(env: Environment, prefix: string): RateLimitRedisSettings | undefined {
  const name = 'RATE_LIMIT_REDIS_URL';
  const raw = value(env, name);
  if (raw === undefined) return undefined;
  const redactedUrl = redactUrl(raw);
  const refusal = new ConfigurationError(
    name,
    `must be redis[s]://[[user]:password@]host[:port][/db], got "${redactedUrl}"`,
  );
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refusal;
  }
  if (
    !['redis:', 'rediss:'].includes(url.protocol) ||
    url.hostname === '' ||
    !/^(\/\d{0,2})?$/.test(url.pathname) ||
    url.hash
  )
    throw refusal;
  return { url: raw, redactedUrl, prefix };
}

// A host name (RFC 1123 labels) or an IP address, as listen() takes it.
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * METRICS_PORT, METRICS_HOST: off unless METRICS_PORT is set; then on loopback unless
 * METRICS_HOST says otherwise. Never the MCP port: the metrics have no authentication.
 */
export function readMetricsSettings(env: Environment, mcpPort: number): MetricsSettings {
  const host = value(env, 'METRICS_HOST');
  if (host !== undefined && isIP(host) === 0 && !HOST_NAME.test(host))
    throw new ConfigurationError(
      'METRICS_HOST',
      `must be a host name or an IP address, got "${host}"`,
    );
  if (value(env, 'METRICS_PORT') === undefined) {
    if (host !== undefined)
      throw new ConfigurationError(
        'METRICS_HOST',
        'is set but METRICS_PORT is not: set METRICS_PORT to serve metrics',
      );
    return { port: undefined, host: '127.0.0.1' };
  }
  const port = integer(env, 'METRICS_PORT', 0, 1, 65535);
  if (port === mcpPort)
    throw new ConfigurationError(
      'METRICS_PORT',
      `must differ from PORT (${mcpPort}): metrics are never served on the MCP port`,
    );
  return { port, host: host ?? '127.0.0.1' };
}

/**
 * AUTH_INTROSPECTION and its companions. Off unless AUTH_INTROSPECTION=true; then the client
 * credentials are required, and the companions of a mode that is off are refused (a setting that
 * would do nothing is a mistake worth a message). The secret never appears in a message.
 */
export function readIntrospectionSettings(env: Environment): IntrospectionSettings | undefined {
  const companions = [
    'AUTH_INTROSPECTION_CLIENT_ID',
    'AUTH_INTROSPECTION_CLIENT_SECRET',
    'AUTH_INTROSPECTION_CACHE_S',
    'AUTH_INTROSPECTION_TIMEOUT_MS',
    'AUTH_INTROSPECTION_ON_FAILURE',
    'AUTH_INTROSPECTION_GRACE_S',
  ];
  if (!boolean(env, 'AUTH_INTROSPECTION', false)) {
    const stray = companions.find((name) => value(env, name) !== undefined);
    if (stray)
      throw new ConfigurationError(
        stray,
        'is set but AUTH_INTROSPECTION is not true: set AUTH_INTROSPECTION=true to confirm tokens with Casdoor',
      );
    return undefined;
  }
  const clientId = value(env, 'AUTH_INTROSPECTION_CLIENT_ID');
  if (clientId === undefined)
    throw new ConfigurationError(
      'AUTH_INTROSPECTION_CLIENT_ID',
      'is required with AUTH_INTROSPECTION=true: the client id of the Casdoor application that issues the tokens',
    );
  const clientSecret = value(env, 'AUTH_INTROSPECTION_CLIENT_SECRET');
  if (clientSecret === undefined)
    throw new ConfigurationError(
      'AUTH_INTROSPECTION_CLIENT_SECRET',
      'is required with AUTH_INTROSPECTION=true: the client secret of that Casdoor application',
    );
  const onFailure = value(env, 'AUTH_INTROSPECTION_ON_FAILURE') ?? 'refuse';
  if (!(INTROSPECTION_FAILURE_MODES as readonly string[]).includes(onFailure))
    throw new ConfigurationError(
      'AUTH_INTROSPECTION_ON_FAILURE',
      `must be ${INTROSPECTION_FAILURE_MODES.join(' or ')}, got "${onFailure}"`,
    );
  if (onFailure === 'refuse' && value(env, 'AUTH_INTROSPECTION_GRACE_S') !== undefined)
    throw new ConfigurationError(
      'AUTH_INTROSPECTION_GRACE_S',
      'applies only with AUTH_INTROSPECTION_ON_FAILURE=accept',
    );
  return {
    clientId,
    clientSecret,
    cacheMs: integer(env, 'AUTH_INTROSPECTION_CACHE_S', 60, 1, 3600) * 1000,
    timeoutMs: integer(env, 'AUTH_INTROSPECTION_TIMEOUT_MS', 3000, 100, 60_000),
    onFailure: onFailure as IntrospectionFailureMode,
    graceMs: integer(env, 'AUTH_INTROSPECTION_GRACE_S', 300, 1, 86_400) * 1000,
  };
}

/** Reads and validates every setting; throws a ConfigurationError naming the first bad variable. */
export function readSettings(env: Environment): Settings {
  const port = integer(env, 'PORT', 3000, 0, 65535);
  const host = value(env, 'HOST') ?? '127.0.0.1';
  const publicUrl = url('PUBLIC_URL', value(env, 'PUBLIC_URL') ?? `http://localhost:${port}`);
  if (publicUrl.pathname !== '/' || publicUrl.search)
    throw new ConfigurationError('PUBLIC_URL', 'must be an origin (scheme, host and port only)');

  const path = value(env, 'MCP_PATH') ?? '/mcp';
  if (!/^\/[A-Za-z0-9._~\-/]*$/.test(path) || path.endsWith('/') || path.includes('//'))
    throw new ConfigurationError('MCP_PATH', `must be a path such as /mcp, got "${path}"`);

  const resource = url('RESOURCE_URL', value(env, 'RESOURCE_URL') ?? `${publicUrl.origin}${path}`);
  if (resource.search) throw new ConfigurationError('RESOURCE_URL', 'must not have a query');
  const resourceUrl = canonical(resource);
  const audiences = resource.pathname === '/' ? [resourceUrl, `${resourceUrl}/`] : [resourceUrl];

  const issuerRaw = value(env, 'AUTH_ISSUER');
  if (issuerRaw === undefined)
    throw new ConfigurationError(
      'AUTH_ISSUER',
      'is required: the Casdoor URL, e.g. https://casdoor.example.com',
    );
  url('AUTH_ISSUER', issuerRaw);
  const jwksRaw = value(env, 'AUTH_JWKS_URI');
  const jwksUri = jwksRaw === undefined ? undefined : url('AUTH_JWKS_URI', jwksRaw).toString();

  const algorithms = (list(env, 'AUTH_ALGORITHMS') ?? ['RS256']).map((alg) => {
    if (!(SUPPORTED_ALGORITHMS as readonly string[]).includes(alg))
      throw new ConfigurationError(
        'AUTH_ALGORITHMS',
        `"${alg}" is not accepted; choose from ${SUPPORTED_ALGORITHMS.join(', ')}`,
      );
    return alg as JwsAlgorithm;
  });
  if (algorithms.length === 0)
    throw new ConfigurationError('AUTH_ALGORITHMS', 'must name at least one algorithm');

  const baselineScopes = list(env, 'AUTH_BASELINE_SCOPES') ?? ['db:query'];
  for (const scope of baselineScopes)
    if (!SCOPE_TOKEN.test(scope))
      throw new ConfigurationError('AUTH_BASELINE_SCOPES', `"${scope}" is not a valid scope`);

  const allowedOrigins = (list(env, 'MCP_ALLOWED_ORIGINS') ?? []).map((origin) => {
    const parsed = url('MCP_ALLOWED_ORIGINS', origin);
    if (parsed.pathname !== '/' || parsed.search)
      throw new ConfigurationError(
        'MCP_ALLOWED_ORIGINS',
        `"${origin}" must be an origin such as https://app.example.com`,
      );
    return parsed.origin;
  });

  return {
    server: {
      port,
      host,
      publicUrl: publicUrl.origin,
      maxBodyBytes: integer(env, 'MCP_MAX_BODY_BYTES', 1_048_576, 1024, 67_108_864),
    },
    auth: {
      issuer: issuerRaw,
      jwksUri,
      algorithms,
      clockToleranceS: integer(env, 'AUTH_CLOCK_TOLERANCE_S', 30, 0, 600),
      resourceUrl,
      audiences,
      baselineScopes,
      jwksCacheMaxAgeMs: integer(env, 'AUTH_JWKS_CACHE_MAX_AGE_S', 600, 1, 86_400) * 1000,
      jwksTimeoutMs: integer(env, 'AUTH_JWKS_TIMEOUT_MS', 5000, 100, 60_000),
      introspection: readIntrospectionSettings(env),
    },
    mcp: {
      path,
      resourceUrl,
      resourceName: value(env, 'RESOURCE_NAME') ?? 'ScopeDB MCP',
      allowedOrigins: [...new Set([publicUrl.origin, ...allowedOrigins])],
      hideUnauthorizedTools: boolean(env, 'MCP_HIDE_UNAUTHORIZED_TOOLS', false),
      directToolCalls: boolean(env, 'MCP_DIRECT_TOOL_CALLS', true),
      fastPath: boolean(env, 'MCP_FAST_PATH', true),
      reportsExample: boolean(env, 'REPORTS_EXAMPLE', false),
    },
    database: readDatabaseSettings(env),
    internal: readInternalSettings(env),
    audit: readAuditSettings(env),
    log: readLogSettings(env),
    rateLimit: readRateLimitSettings(env),
    metrics: readMetricsSettings(env, port),
  };
}
