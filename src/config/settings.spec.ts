import {
  ConfigurationError,
  readAuditSettings,
  readInternalSettings,
  readIntrospectionSettings,
  readDatabaseSettings,
  readMetricsSettings,
  readRateLimitSettings,
  readSettings,
  redactUrl,
  type Environment,
  type Settings,
} from './settings.js';

const ISSUER = 'https://casdoor.example.com';

/** The ConfigurationError that reading `env` throws (fails the test if nothing is thrown). */
function configurationErrorOf(env: Environment): ConfigurationError {
  try {
    readSettings(env);
  } catch (error) {
    if (error instanceof ConfigurationError) return error;
    throw error;
  }
  throw new Error(`readSettings accepted ${JSON.stringify(env)}`);
}

describe(readSettings.name, () => {
  describe('defaults', () => {
    const sut = readSettings({ AUTH_ISSUER: ISSUER });

    it('listens on 127.0.0.1:3000', () => {
      expect(sut.server.port).toBe(3000);
      expect(sut.server.host).toBe('127.0.0.1');
    });

    it('derives PUBLIC_URL from the port', () => {
      expect(sut.server.publicUrl).toBe('http://localhost:3000');
      expect(readSettings({ AUTH_ISSUER: ISSUER, PORT: '8080' }).server.publicUrl).toBe(
        'http://localhost:8080',
      );
    });

    it('serves MCP at /mcp', () => {
      expect(sut.mcp.path).toBe('/mcp');
    });

    it('uses PUBLIC_URL + MCP_PATH as the resource and the only audience', () => {
      expect(sut.auth.resourceUrl).toBe('http://localhost:3000/mcp');
      expect(sut.mcp.resourceUrl).toBe('http://localhost:3000/mcp');
      expect(sut.auth.audiences).toEqual(['http://localhost:3000/mcp']);
    });

    it('follows PUBLIC_URL and MCP_PATH when they are set', () => {
      const settings = readSettings({
        AUTH_ISSUER: ISSUER,
        PUBLIC_URL: 'https://db.example.com',
        MCP_PATH: '/v1/mcp',
      });
      expect(settings.auth.resourceUrl).toBe('https://db.example.com/v1/mcp');
      expect(settings.mcp.allowedOrigins).toEqual(['https://db.example.com']);
    });

    it('accepts RS256 only, with 30 s of clock tolerance', () => {
      expect(sut.auth.algorithms).toEqual(['RS256']);
      expect(sut.auth.clockToleranceS).toBe(30);
    });

    it('keeps the issuer exactly as written and resolves the JWKS later', () => {
      expect(sut.auth.issuer).toBe(ISSUER);
      expect(sut.auth.jwksUri).toBeUndefined();
    });

    it('asks for db:query as the baseline scope', () => {
      expect(sut.auth.baselineScopes).toEqual(['db:query']);
    });

    it('stores data in sqlite:data/scopedb.sqlite', () => {
      expect(sut.database).toEqual({
        type: 'sqlite',
        path: 'data/scopedb.sqlite',
        busyTimeoutMs: 5000,
        queryWorkers: 2,
        inlineReads: true,
        maxResultBytes: 262_144,
        maxCellChars: 2000,
        writeTimeoutMs: 15_000,
        workerMemoryMb: 512,
        maxInFlightPerPrincipal: 1000,
        queueTimeoutMs: 10_000,
      });
    });

    it('lists every tool, answers plain 2025-era tool calls directly, on the fast path, and allows only its own origin', () => {
      expect(sut.mcp.hideUnauthorizedTools).toBe(false);
      expect(sut.mcp.directToolCalls).toBe(true);
      expect(sut.mcp.fastPath).toBe(true);
      expect(sut.mcp.allowedOrigins).toEqual(['http://localhost:3000']);
    });

    it('logs at info and limits 600 requests a minute per principal, 60 per anonymous IP, in memory', () => {
      expect(sut.log).toEqual({ level: 'info' });
      expect(sut.rateLimit).toStrictEqual({
        perMinute: 600,
        anonymousPerMinute: 60,
        redis: undefined,
      });
    });

    it('serves no metrics', () => {
      expect(sut.metrics).toStrictEqual({ port: undefined, host: '127.0.0.1' });
    });

    it('treats blank values as unset', () => {
      expect(
        readSettings({ AUTH_ISSUER: ISSUER, PORT: '  ', MCP_PATH: '', METRICS_PORT: ' ' }),
      ).toEqual(sut);
    });
  });

  describe('RESOURCE_URL at the root of an origin', () => {
    it.each(['https://mcp.example.com', 'https://mcp.example.com/'])(
      'accepts %s with and without a trailing slash in aud',
      (resource) => {
        const sut = readSettings({ AUTH_ISSUER: ISSUER, RESOURCE_URL: resource });
        expect(sut.auth.resourceUrl).toBe('https://mcp.example.com');
        expect(sut.auth.audiences).toEqual(['https://mcp.example.com', 'https://mcp.example.com/']);
      },
    );

    it('accepts only the exact spelling of a resource with a path', () => {
      const sut = readSettings({ AUTH_ISSUER: ISSUER, RESOURCE_URL: 'https://mcp.example.com/db' });
      expect(sut.auth.audiences).toEqual(['https://mcp.example.com/db']);
    });
  });

  describe('optional settings', () => {
    it('reads lists separated by commas or spaces', () => {
      const sut = readSettings({
        AUTH_ISSUER: ISSUER,
        AUTH_ALGORITHMS: 'RS256, ES256 PS512',
        AUTH_BASELINE_SCOPES: 'db:query,openid',
        MCP_ALLOWED_ORIGINS: 'https://app.example.com https://other.example.com:8443',
      });
      expect(sut.auth.algorithms).toEqual(['RS256', 'ES256', 'PS512']);
      expect(sut.auth.baselineScopes).toEqual(['db:query', 'openid']);
      expect(sut.mcp.allowedOrigins).toEqual([
        'http://localhost:3000',
        'https://app.example.com',
        'https://other.example.com:8443',
      ]);
    });

    it.each([
      ['true', true],
      ['YES', true],
      ['1', true],
      ['false', false],
      ['no', false],
      ['0', false],
    ])('reads MCP_HIDE_UNAUTHORIZED_TOOLS=%s as %s', (raw, expected) => {
      const sut = readSettings({ AUTH_ISSUER: ISSUER, MCP_HIDE_UNAUTHORIZED_TOOLS: raw });
      expect(sut.mcp.hideUnauthorizedTools).toBe(expected);
    });

    it.each([
      ['MCP_DIRECT_TOOL_CALLS', 'false', (settings: Settings) => settings.mcp.directToolCalls],
      ['MCP_FAST_PATH', 'false', (settings: Settings) => settings.mcp.fastPath],
      [
        'QUERY_INLINE_READS',
        'no',
        (settings: Settings) =>
          settings.database.type === 'sqlite' && settings.database.inlineReads,
      ],
    ])('reads %s=%s as false', (name, raw, read) => {
      expect(read(readSettings({ AUTH_ISSUER: ISSUER, [name]: raw }))).toBe(false);
    });

    it('reads an absolute sqlite path from sqlite:///', () => {
      const sut = readSettings({
        AUTH_ISSUER: ISSUER,
        DATABASE_URL: 'sqlite:///var/lib/scopedb/db.sqlite',
      });
      expect(sut.database).toMatchObject({ type: 'sqlite', path: '/var/lib/scopedb/db.sqlite' });
    });

    it('converts the JWKS cache age to milliseconds', () => {
      const sut = readSettings({ AUTH_ISSUER: ISSUER, AUTH_JWKS_CACHE_MAX_AGE_S: '60' });
      expect(sut.auth.jwksCacheMaxAgeMs).toBe(60_000);
    });
  });

  describe('refuses to start with a bad setting, naming it', () => {
    it('AUTH_ISSUER missing', () => {
      const error = configurationErrorOf({});
      expect(error.variable).toBe('AUTH_ISSUER');
      expect(error.message).toMatch(/^AUTH_ISSUER: is required/);
    });

    it.each([
      ['AUTH_ISSUER', { AUTH_ISSUER: 'casdoor.example.com' }],
      ['AUTH_ISSUER', { AUTH_ISSUER: 'ftp://casdoor.example.com' }],
      ['AUTH_JWKS_URI', { AUTH_ISSUER: ISSUER, AUTH_JWKS_URI: 'not a url' }],
      ['PUBLIC_URL', { AUTH_ISSUER: ISSUER, PUBLIC_URL: 'localhost:3000' }],
      ['PUBLIC_URL', { AUTH_ISSUER: ISSUER, PUBLIC_URL: 'https://db.example.com/base' }],
      ['RESOURCE_URL', { AUTH_ISSUER: ISSUER, RESOURCE_URL: 'https://mcp.example.com/#fragment' }],
      [
        'RESOURCE_URL',
        { AUTH_ISSUER: ISSUER, RESOURCE_URL: 'https://user:secret@mcp.example.com/mcp' },
      ],
      ['RESOURCE_URL', { AUTH_ISSUER: ISSUER, RESOURCE_URL: 'https://mcp.example.com/mcp?x=1' }],
      [
        'MCP_ALLOWED_ORIGINS',
        { AUTH_ISSUER: ISSUER, MCP_ALLOWED_ORIGINS: 'https://app.example.com/path' },
      ],
    ])('%s: a malformed URL (%j)', (variable, env: Environment) => {
      const error = configurationErrorOf(env);
      expect(error.variable).toBe(variable);
      expect(error.message.startsWith(`${variable}: `)).toBe(true);
    });

    it.each(['abc', '3000x', '-1', '1.5'])('PORT=%s is not a number', (port) => {
      const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, PORT: port });
      expect(error.variable).toBe('PORT');
      expect(error.message).toBe(`PORT: must be a whole number, got "${port}"`);
    });

    it('PORT out of range', () => {
      expect(configurationErrorOf({ AUTH_ISSUER: ISSUER, PORT: '65536' }).message).toBe(
        'PORT: must be between 0 and 65535, got 65536',
      );
    });

    it.each(['none', 'HS256', 'RS256,HS256', 'RS256 none'])('AUTH_ALGORITHMS=%s', (algorithms) => {
      const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, AUTH_ALGORITHMS: algorithms });
      expect(error.variable).toBe('AUTH_ALGORITHMS');
      expect(error.message).toMatch(/^AUTH_ALGORITHMS: "(none|HS256)" is not accepted/);
    });

    it('AUTH_ALGORITHMS naming no algorithm', () => {
      expect(configurationErrorOf({ AUTH_ISSUER: ISSUER, AUTH_ALGORITHMS: ',' }).message).toBe(
        'AUTH_ALGORITHMS: must name at least one algorithm',
      );
    });

    it.each(['mcp', '/mcp/', '//mcp', '/m cp', '/mcp?x'])('MCP_PATH=%s', (path) => {
      const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, MCP_PATH: path });
      expect(error.variable).toBe('MCP_PATH');
      expect(error.message).toBe(`MCP_PATH: must be a path such as /mcp, got "${path}"`);
    });

    it.each([
      ['postgres://scopedb:secret@db.example.com', 'must name a host and a database'],
      ['postgres://scopedb:secret@db.example.com/a/b', 'must name a host and a database'],
      ['mysql://db.example.com/scopedb', 'must be sqlite:<path> or postgres://'],
    ])('DATABASE_URL=%s is refused', (url, message) => {
      const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, DATABASE_URL: url });
      expect(error.variable).toBe('DATABASE_URL');
      expect(error.message).toContain(message);
      expect(error.message).not.toContain('secret');
    });

    it('refuses DATABASE_READER_URL without a PostgreSQL DATABASE_URL', () => {
      const error = configurationErrorOf({
        AUTH_ISSUER: ISSUER,
        DATABASE_READER_URL: 'postgres://reader@db/app',
      });
      expect(error.message).toBe('DATABASE_READER_URL: needs a postgres:// DATABASE_URL');
    });

    it.each(['sqlite:', 'sqlite::memory:'])('DATABASE_URL=%s has no file path', (url) => {
      const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, DATABASE_URL: url });
      expect(error.variable).toBe('DATABASE_URL');
      expect(error.message).toMatch(/^DATABASE_URL: needs a file path/);
    });

    it('DATABASE_URL of another kind, without echoing its credentials', () => {
      const error = configurationErrorOf({
        AUTH_ISSUER: ISSUER,
        DATABASE_URL: 'mysql://root:hunter2@db/x',
      });
      expect(error.variable).toBe('DATABASE_URL');
      expect(error.message).toMatch(/^DATABASE_URL: must be sqlite:<path>/);
      expect(error.message).not.toContain('hunter2');
    });

    it.each(['maybe', 'on', 'truthy'])('MCP_HIDE_UNAUTHORIZED_TOOLS=%s is not a boolean', (raw) => {
      const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, MCP_HIDE_UNAUTHORIZED_TOOLS: raw });
      expect(error.variable).toBe('MCP_HIDE_UNAUTHORIZED_TOOLS');
      expect(error.message).toBe(
        `MCP_HIDE_UNAUTHORIZED_TOOLS: must be true or false, got "${raw}"`,
      );
    });

    it('LOG_LEVEL of an unknown level', () => {
      const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, LOG_LEVEL: 'verbose' });
      expect(error.variable).toBe('LOG_LEVEL');
      expect(error.message).toBe(
        'LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, silent, got "verbose"',
      );
    });

    it('AUTH_BASELINE_SCOPES with a malformed scope', () => {
      const error = configurationErrorOf({
        AUTH_ISSUER: ISSUER,
        AUTH_BASELINE_SCOPES: 'db:query "quoted"',
      });
      expect(error.variable).toBe('AUTH_BASELINE_SCOPES');
    });

    it.each([
      ['AUTH_CLOCK_TOLERANCE_S', '601'],
      ['AUTH_JWKS_TIMEOUT_MS', '99'],
      ['AUTH_JWKS_CACHE_MAX_AGE_S', '0'],
      ['MCP_MAX_BODY_BYTES', '100'],
      ['DATABASE_BUSY_TIMEOUT_MS', 'soon'],
      ['RATE_LIMIT_PER_MINUTE', '0'],
      ['RATE_LIMIT_ANONYMOUS_PER_MINUTE', 'many'],
      ['SQL_WORKER_MEMORY_MB', '64'],
      ['SQL_WORKER_MEMORY_MB', '65537'],
      ['SQL_MAX_IN_FLIGHT_PER_PRINCIPAL', '0'],
      ['SQL_QUEUE_TIMEOUT_MS', '99'],
      ['QUERY_WORKERS', '0'],
      ['METRICS_PORT', '0'],
      ['METRICS_PORT', '65536'],
    ])('%s=%s out of range', (variable, raw) => {
      const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, [variable]: raw });
      expect(error.variable).toBe(variable);
      expect(error.message.startsWith(`${variable}: `)).toBe(true);
    });
  });
});

describe(readMetricsSettings.name, () => {
  const sut = readMetricsSettings;

  it('serves metrics on loopback once METRICS_PORT is set', () => {
    expect(sut({ METRICS_PORT: '9464' }, 3000)).toStrictEqual({ port: 9464, host: '127.0.0.1' });
  });

  it.each(['0.0.0.0', '::', '10.0.0.7', 'metrics.internal'])(
    'listens on METRICS_HOST=%s',
    (host) => {
      expect(sut({ METRICS_PORT: '9464', METRICS_HOST: host }, 3000)).toStrictEqual({
        port: 9464,
        host,
      });
    },
  );

  it.each([
    [{ METRICS_PORT: 'abc' }, 'METRICS_PORT: must be a whole number, got "abc"'],
    [{ METRICS_PORT: '-1' }, 'METRICS_PORT: must be a whole number, got "-1"'],
    [
      { METRICS_PORT: '3000' },
      'METRICS_PORT: must differ from PORT (3000): metrics are never served on the MCP port',
    ],
    [
      { METRICS_HOST: '0.0.0.0' },
      'METRICS_HOST: is set but METRICS_PORT is not: set METRICS_PORT to serve metrics',
    ],
    [
      { METRICS_PORT: '9464', METRICS_HOST: 'http://host' },
      'METRICS_HOST: must be a host name or an IP address, got "http://host"',
    ],
    [
      { METRICS_PORT: '9464', METRICS_HOST: 'a b' },
      'METRICS_HOST: must be a host name or an IP address, got "a b"',
    ],
  ])('refuses %j in one line naming the variable', (env, message) => {
    expect(configurationErrorOf({ AUTH_ISSUER: ISSUER, PORT: '3000', ...env }).message).toBe(
      message,
    );
  });
});

describe(readIntrospectionSettings.name, () => {
  const sut = readIntrospectionSettings;
  const on = { AUTH_INTROSPECTION: 'true', AUTH_INTROSPECTION_CLIENT_ID: 'app-id' };
  const secret = 'the-secret-1a2b3c';

  it('is off by default', () => {
    expect(sut({})).toBeUndefined();
    expect(readSettings({ AUTH_ISSUER: ISSUER }).auth.introspection).toBeUndefined();
  });

  it('refuses (refuse) on failure by default, with answers kept 60 s', () => {
    expect(sut({ ...on, AUTH_INTROSPECTION_CLIENT_SECRET: secret })).toStrictEqual({
      clientId: 'app-id',
      clientSecret: secret,
      cacheMs: 60_000,
      timeoutMs: 3000,
      onFailure: 'refuse',
      graceMs: 300_000,
    });
  });

  it('accepts for AUTH_INTROSPECTION_GRACE_S with AUTH_INTROSPECTION_ON_FAILURE=accept', () => {
    expect(
      sut({
        ...on,
        AUTH_INTROSPECTION_CLIENT_SECRET: secret,
        AUTH_INTROSPECTION_ON_FAILURE: 'accept',
        AUTH_INTROSPECTION_GRACE_S: '30',
        AUTH_INTROSPECTION_CACHE_S: '5',
      }),
    ).toMatchObject({ onFailure: 'accept', graceMs: 30_000, cacheMs: 5000 });
  });

  it.each([
    [
      { AUTH_INTROSPECTION: 'true' },
      'AUTH_INTROSPECTION_CLIENT_ID: is required with AUTH_INTROSPECTION=true: the client id of the Casdoor application that issues the tokens',
    ],
    [
      on,
      'AUTH_INTROSPECTION_CLIENT_SECRET: is required with AUTH_INTROSPECTION=true: the client secret of that Casdoor application',
    ],
    [
      { AUTH_INTROSPECTION_CLIENT_SECRET: secret },
      'AUTH_INTROSPECTION_CLIENT_SECRET: is set but AUTH_INTROSPECTION is not true: set AUTH_INTROSPECTION=true to confirm tokens with Casdoor',
    ],
    [
      { ...on, AUTH_INTROSPECTION_CLIENT_SECRET: secret, AUTH_INTROSPECTION_ON_FAILURE: 'allow' },
      'AUTH_INTROSPECTION_ON_FAILURE: must be refuse or accept, got "allow"',
    ],
    [
      { ...on, AUTH_INTROSPECTION_CLIENT_SECRET: secret, AUTH_INTROSPECTION_GRACE_S: '60' },
      'AUTH_INTROSPECTION_GRACE_S: applies only with AUTH_INTROSPECTION_ON_FAILURE=accept',
    ],
    [
      { ...on, AUTH_INTROSPECTION_CLIENT_SECRET: secret, AUTH_INTROSPECTION_CACHE_S: '0' },
      'AUTH_INTROSPECTION_CACHE_S: must be between 1 and 3600, got 0',
    ],
    [{ AUTH_INTROSPECTION: 'maybe' }, 'AUTH_INTROSPECTION: must be true or false, got "maybe"'],
  ])('refuses %j in one line naming the variable, never the secret', (env, message) => {
    const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, ...env });
    expect(error.message).toBe(message);
    expect(error.message).not.toContain(secret);
  });
});

describe(readDatabaseSettings.name, () => {
  const sut = readDatabaseSettings;

  it('reads the database settings without any auth setting', () => {
    const env = { DATABASE_URL: 'sqlite:///var/lib/scopedb/db.sqlite', QUERY_WORKERS: '4' };

    expect(sut(env)).toEqual(readSettings({ ...env, AUTH_ISSUER: ISSUER }).database);
    expect(sut(env)).toMatchObject({ path: '/var/lib/scopedb/db.sqlite', queryWorkers: 4 });
  });

  it('refuses a bad DATABASE_URL as the server does', () => {
    expect(() => sut({ DATABASE_URL: 'postgres://db' })).toThrow(ConfigurationError);
  });

  it.each([
    'postgres://scopedb:s3cret@db.example.com:5433/app',
    'postgresql://scopedb@10.0.0.5/app?sslmode=require&application_name=x',
  ])('reads a PostgreSQL DATABASE_URL, its parameters passed on: %s', (url) => {
    expect(
      sut({ DATABASE_URL: url, DATABASE_READER_URL: 'postgres://reader:pw@db/app' }),
    ).toMatchObject({
      type: 'postgres',
      connection: { url, redactedUrl: url.replace('s3cret', '***') },
      reader: { url: 'postgres://reader:pw@db/app', redactedUrl: 'postgres://reader:***@db/app' },
      poolSize: 10,
      allowPrivilegedRole: false,
    });
  });
});

describe(readAuditSettings.name, () => {
  const sut = readAuditSettings;
  /** The ConfigurationError for this AUDIT_DATABASE_URL (fails the test if none is thrown). */
  function refusal(url: string, env: Environment = {}): ConfigurationError {
    try {
      sut({ ...env, AUDIT_DATABASE_URL: url });
    } catch (error) {
      if (error instanceof ConfigurationError) return error;
      throw error;
    }
    throw new Error(`AUDIT_DATABASE_URL=${url} was accepted`);
  }

  it('keeps the audit log in the internal database when unset or blank', () => {
    const internal = {
      database: { type: 'sqlite', path: 'data/scopedb-internal.sqlite', busyTimeoutMs: 5000 },
      setting: 'INTERNAL_DATABASE_URL',
    };

    expect(sut({})).toMatchObject(internal);
    expect(sut({ AUDIT_DATABASE_URL: '  ' })).toMatchObject(internal);
    expect(readSettings({ AUTH_ISSUER: ISSUER }).audit).toMatchObject(internal);
    expect(sut({ INTERNAL_DATABASE_URL: 'sqlite:///srv/own.sqlite' }).database).toMatchObject({
      path: '/srv/own.sqlite',
    });
  });

  it.each([
    ['sqlite:data/audit.sqlite', 'data/audit.sqlite'],
    ['sqlite:///var/lib/scopedb/audit.sqlite', '/var/lib/scopedb/audit.sqlite'],
  ])(
    'reads %s as a SQLite file (%s), with the busy timeout of DATABASE_BUSY_TIMEOUT_MS',
    (url, path) => {
      expect(sut({ AUDIT_DATABASE_URL: url, DATABASE_BUSY_TIMEOUT_MS: '750' })).toMatchObject({
        database: { type: 'sqlite', path, busyTimeoutMs: 750 },
        setting: 'AUDIT_DATABASE_URL',
      });
    },
  );

  it.each([
    [
      'postgres://scopedb:s3cret@db.example.com:5433/audit',
      'postgres://scopedb:***@db.example.com:5433/audit',
    ],
    [
      'postgresql://audit@10.0.0.5/audit?sslmode=require',
      'postgresql://audit@10.0.0.5/audit?sslmode=require',
    ],
  ])('reads %s as PostgreSQL, keeping a redacted form for messages', (url, redactedUrl) => {
    expect(sut({ AUDIT_DATABASE_URL: url })).toMatchObject({
      database: { type: 'postgres', url, redactedUrl },
      setting: 'AUDIT_DATABASE_URL',
    });
  });

  it('refuses the application database itself, however it is spelt', () => {
    const error = refusal('sqlite:./data/../data/scopedb.sqlite');

    expect(error.message).toBe(
      'AUDIT_DATABASE_URL: names the application database, which holds only your data; leave it unset to keep the audit log in the internal database',
    );
  });

  it('refuses the internal database by its default path: leave it unset for that', () => {
    expect(refusal('sqlite:data/./scopedb-internal.sqlite').message).toBe(
      'AUDIT_DATABASE_URL: names the internal database; leave it unset to keep the audit log there',
    );
  });

  it.each(['sqlite:', 'sqlite::memory:'])('refuses %s: no file path', (url) => {
    expect(refusal(url).message).toMatch(/^AUDIT_DATABASE_URL: needs a file path/);
  });

  it.each([
    ['no database', 'postgres://scopedb:hunter2@db.example.com'],
    ['no host', 'postgres://scopedb:hunter2@/audit'],
    ['a path that is not a database name', 'postgres://scopedb:hunter2@db/audit/x'],
    ['a port that is not a number', 'postgres://scopedb:hunter2@db:port/audit'],
    ['another kind of database', 'mysql://root:hunter2@db/audit'],
    ['a password with an unescaped @ and /', 'postgres://root:hun/ter@2@db'],
    ['a password in the query', 'postgres://db?password=hunter2'],
  ])('refuses %s in one line naming the variable, never echoing the password', (_case, url) => {
    const error = refusal(url);

    expect(error.variable).toBe('AUDIT_DATABASE_URL');
    expect(error.message).toMatch(/^AUDIT_DATABASE_URL: /);
    expect(error.message).not.toContain('\n');
    expect(error.message).not.toMatch(/hunter|ter@2/);
  });

  it('fails closed unless AUDIT_FAIL_OPEN says otherwise, with a minute of grace for intents', () => {
    expect(sut({})).toMatchObject({ failOpen: false, intentGraceMs: 60_000 });
    expect(sut({ AUDIT_FAIL_OPEN: 'true', AUDIT_INTENT_GRACE_MS: '500' })).toMatchObject({
      failOpen: true,
      intentGraceMs: 500,
    });
  });

  it.each([
    ['AUDIT_FAIL_OPEN', 'sometimes'],
    ['AUDIT_INTENT_GRACE_MS', '10'],
    ['AUDIT_INTENT_GRACE_MS', 'soon'],
  ])('refuses %s=%s in one line naming it', (variable, raw) => {
    expect(() => sut({ [variable]: raw })).toThrow(new RegExp(`^${variable}: `));
  });

  it('is read with every other setting, so the server refuses a bad value at start-up', () => {
    let error: unknown;
    try {
      readSettings({ AUTH_ISSUER: ISSUER, AUDIT_DATABASE_URL: 'redis://cache' });
    } catch (caught) {
      error = caught;
    }

    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error).toMatchObject({ variable: 'AUDIT_DATABASE_URL' });
  });
});

describe(readInternalSettings.name, () => {
  const sut = readInternalSettings;
  /** The ConfigurationError for this environment (fails the test if none is thrown). */
  function refusal(env: Environment): ConfigurationError {
    try {
      sut(env);
    } catch (error) {
      if (error instanceof ConfigurationError) return error;
      throw error;
    }
    throw new Error(`${JSON.stringify(env)} was accepted`);
  }

  it('puts the internal database beside the application database by default', () => {
    expect(sut({})).toEqual({
      type: 'sqlite',
      path: 'data/scopedb-internal.sqlite',
      busyTimeoutMs: 5000,
    });
    expect(
      sut({ DATABASE_URL: 'sqlite:///var/lib/scopedb/app.sqlite', DATABASE_BUSY_TIMEOUT_MS: '80' }),
    ).toEqual({
      type: 'sqlite',
      path: '/var/lib/scopedb/scopedb-internal.sqlite',
      busyTimeoutMs: 80,
    });
    expect(sut({ DATABASE_URL: 'postgres://tools@db/app' })).toMatchObject({
      path: 'data/scopedb-internal.sqlite',
    });
    expect(readSettings({ AUTH_ISSUER: ISSUER }).internal).toEqual(sut({}));
  });

  it('reads a PostgreSQL INTERNAL_DATABASE_URL, schema scopedb, and keeps the audit log there', () => {
    const env = {
      DATABASE_URL: 'postgres://tools@db/app',
      INTERNAL_DATABASE_URL: 'postgres://owner:hunter2@db/app',
    };
    const internal = {
      type: 'postgres',
      url: 'postgres://owner:hunter2@db/app',
      redactedUrl: 'postgres://owner:***@db/app',
      schema: 'scopedb',
    };
    expect(sut(env)).toEqual(internal);
    expect(readAuditSettings(env)).toMatchObject({
      database: internal,
      setting: 'INTERNAL_DATABASE_URL',
    });
  });

  it.each([
    ['sqlite:state/own.sqlite', 'state/own.sqlite'],
    ['sqlite:///srv/scopedb/own.sqlite', '/srv/scopedb/own.sqlite'],
  ])('reads INTERNAL_DATABASE_URL=%s as %s', (url, path) => {
    expect(sut({ INTERNAL_DATABASE_URL: url })).toMatchObject({ path });
  });

  it.each([
    [
      'the application database',
      { INTERNAL_DATABASE_URL: 'sqlite:./data/scopedb.sqlite' },
      'INTERNAL_DATABASE_URL: names the application database; ScopeDB keeps its own records in a file the tools never open',
    ],
    [
      'the application database, set elsewhere',
      { DATABASE_URL: 'sqlite:x/app.sqlite', INTERNAL_DATABASE_URL: 'sqlite:x/../x/app.sqlite' },
      'INTERNAL_DATABASE_URL: names the application database; ScopeDB keeps its own records in a file the tools never open',
    ],
    [
      'the AUDIT_DATABASE_URL file',
      { INTERNAL_DATABASE_URL: 'sqlite:audit.sqlite', AUDIT_DATABASE_URL: 'sqlite:./audit.sqlite' },
      'INTERNAL_DATABASE_URL: names the AUDIT_DATABASE_URL file; leave AUDIT_DATABASE_URL unset to keep the audit log in the internal database',
    ],
    [
      'another scheme',
      { INTERNAL_DATABASE_URL: 'mysql://u:hunter2@db/internal' },
      'INTERNAL_DATABASE_URL: must be sqlite:<path> or postgres://user:password@host[:port]/database, got "mysql://u:***@db/internal"',
    ],
    [
      "the tools' role",
      {
        DATABASE_URL: 'postgres://tools:hunter2@db/app',
        INTERNAL_DATABASE_URL: 'postgres://tools:hunter2@db/app',
      },
      "INTERNAL_DATABASE_URL: connects as the role that runs the tools' SQL; ScopeDB's own tables need a role of their own, which the tools' roles cannot act as",
    ],
  ])('refuses %s in one line naming the variable', (_case, env, message) => {
    expect(refusal(env).message).toBe(message);
  });

  it('is read with every other setting, so the server refuses a bad value at start-up', () => {
    expect(() => readSettings({ AUTH_ISSUER: ISSUER, INTERNAL_DATABASE_URL: 'sqlite:' })).toThrow(
      'INTERNAL_DATABASE_URL: needs a file path',
    );
  });
});

describe(readRateLimitSettings.name, () => {
  const sut = readRateLimitSettings;

  it.each([
    ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
    ['rediss://:s3cret@cache.example.com:6380/2', 'rediss://:***@cache.example.com:6380/2'],
    ['redis://scopedb:s3cret@cache/', 'redis://scopedb:***@cache/'],
  ])('shares the limits through RATE_LIMIT_REDIS_URL=%s, logged as %s', (url, redactedUrl) => {
    expect(sut({ RATE_LIMIT_REDIS_URL: url }).redis).toEqual({
      url,
      redactedUrl,
      prefix: 'scopedb',
    });
  });

  it('keys them under RATE_LIMIT_REDIS_PREFIX', () => {
    const env = { RATE_LIMIT_REDIS_URL: 'redis://cache', RATE_LIMIT_REDIS_PREFIX: 'staging:eu-1' };

    expect(sut(env).redis).toMatchObject({ prefix: 'staging:eu-1' });
  });

  it('counts in memory when RATE_LIMIT_REDIS_URL is unset or blank', () => {
    expect(sut({}).redis).toBeUndefined();
    expect(sut({ RATE_LIMIT_REDIS_URL: ' ', RATE_LIMIT_REDIS_PREFIX: 'x' }).redis).toBeUndefined();
  });

  it.each([
    'http://cache:6379',
    'redis://',
    'redis://cache/db',
    'redis://cache/0/1',
    'redis://cache#x',
    'cache:6379',
    'rediss://u:s3cret@',
  ])('refuses RATE_LIMIT_REDIS_URL=%s in one line naming it, never echoing a password', (url) => {
    const error = configurationErrorOf({ AUTH_ISSUER: ISSUER, RATE_LIMIT_REDIS_URL: url });

    expect(error.variable).toBe('RATE_LIMIT_REDIS_URL');
    expect(error.message).toMatch(
      /^RATE_LIMIT_REDIS_URL: must be redis\[s\]:\/\/\[\[user\]:password@\]host\[:port\]\[\/db\], got "/,
    );
    expect(error.message).not.toContain('s3cret');
  });

  it.each(['*', 'has space', 'a/b', 'x'.repeat(65)])(
    'refuses RATE_LIMIT_REDIS_PREFIX=%s',
    (prefix) => {
      expect(() => sut({ RATE_LIMIT_REDIS_PREFIX: prefix })).toThrow(
        /^RATE_LIMIT_REDIS_PREFIX: must be 1-64 letters/,
      );
    },
  );
});

describe(redactUrl.name, () => {
  const sut = redactUrl;

  it.each([
    ['postgres://u:p@h/d', 'postgres://u:***@h/d'],
    ['postgres://u@h/d', 'postgres://u@h/d'],
    ['postgres://h/d', 'postgres://h/d'],
    ['postgres://u:p%40ss@h/d', 'postgres://u:***@h/d'],
    ['postgres://u:a@b/c@h/d', 'postgres://u:***@h/d'],
    [
      'postgres://h/d?sslmode=require&password=p&x=1',
      'postgres://h/d?sslmode=require&password=***&x=1',
    ],
  ])('%s -> %s', (raw, redacted) => {
    expect(sut(raw)).toBe(redacted);
  });
});
