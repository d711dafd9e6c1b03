import { Controller, Get, Module, Req } from '@nestjs/common';
import { APP_FILTER, NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DataSource } from 'typeorm';
import { AuditDatabase } from '../audit/audit-database.js';
import { AuditRecord } from '../audit/audit-record.entity.js';
import { AuditService } from '../audit/audit.service.js';
import { AuditLog1765000000000 } from '../audit/migrations/1765000000000-audit-log.js';
import { AuditIntents1765100000000 } from '../audit/migrations/1765100000000-audit-intents.js';
import { auditConfig, authConfig, databaseConfig } from '../config/configuration.js';
import { readSettings } from '../config/settings.js';
import { Metrics } from '../metrics/metrics.service.js';
import { OAuthChallengeFilter, quoted } from './oauth-challenge.filter.js';
import {
  AuthenticationRequiredException,
  InsufficientScopeException,
  InvalidTokenException,
} from './oauth.exceptions.js';
import type { AuthenticatedRequest, Principal } from './principal.js';
import { recordNestLogs } from '../../test/support/nest-logs.js';

describe(quoted.name, () => {
  const sut = quoted;

  it('wraps printable ASCII in double quotes', () => {
    expect(sut('db:query db:modify')).toBe('"db:query db:modify"');
    expect(sut('')).toBe('""');
  });

  it('escapes backslashes and double quotes', () => {
    expect(sut('say "hi" \\ bye')).toBe('"say \\"hi\\" \\\\ bye"');
  });

  it('replaces control characters, so no header can be split or injected', () => {
    const header = sut('a\r\nSet-Cookie: x=1\t\u0000\u007f');
    expect(header).toBe('"a??Set-Cookie: x=1???"');
    expect([...header].every((c) => c >= ' ' && c <= '~')).toBe(true);
  });

  it('replaces each non-ASCII character, astral ones included, with one "?"', () => {
    expect(sut('caf\u00e9 \u{1F512}')).toBe('"caf? ?"');
  });
});

const ISSUER = 'https://casdoor.example.com';
const RESOURCE = 'https://mcp.example.com/mcp';
const METADATA = 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp';

const alice: Principal = {
  subject: 'b1c2d3e4-0000-4000-8000-000000000001',
  clientId: 'client-1',
  tokenId: 'admin/0001',
  name: 'alice',
  email: undefined,
  scopes: new Set(['db:query', 'bad"scope']),
  expiresAt: Math.floor(Date.now() / 1000) + 600,
};

@Controller()
class RefusingController {
  @Get('no-token')
  noToken(): never {
    throw new AuthenticationRequiredException('Authentication required');
  }

  @Get('invalid')
  invalid(): never {
    throw new InvalidTokenException('the token\'s "aud" is\nwrong');
  }

  @Get('scope')
  scope(@Req() request: AuthenticatedRequest): never {
    request.user = alice;
    throw new InsufficientScopeException(
      ['db:modify', 'db:admin'],
      [...alice.scopes],
      'apply_migration',
    );
  }
}

@Module({
  controllers: [RefusingController],
  providers: [
    {
      provide: AuditDatabase,
      useFactory: async () => {
        const dataSource = new DataSource({
          type: 'better-sqlite3',
          database: ':memory:',
          entities: [AuditRecord],
          migrations: [AuditLog1765000000000, AuditIntents1765100000000],
          migrationsRun: true,
        });
        return new AuditDatabase(await dataSource.initialize());
      },
    },
    AuditService,
    Metrics,
    {
      provide: authConfig.KEY,
      useValue: readSettings({ AUTH_ISSUER: ISSUER, RESOURCE_URL: RESOURCE }).auth,
    },
    { provide: auditConfig.KEY, useValue: readSettings({ AUTH_ISSUER: ISSUER }).audit },
    { provide: databaseConfig.KEY, useValue: readSettings({ AUTH_ISSUER: ISSUER }).database },
    { provide: APP_FILTER, useClass: OAuthChallengeFilter },
  ],
})
class FilterTestModule {}

describe(OAuthChallengeFilter.name, () => {
  let app: NestExpressApplication;
  let baseUrl: string;
  let audit: AuditService;

  beforeAll(async () => {
    app = await NestFactory.create<NestExpressApplication>(FilterTestModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    baseUrl = await app.getUrl();
    audit = app.get(AuditService);
  });

  afterAll(async () => {
    await app.close();
  });

  it('answers a request without a token with 401 and a challenge without an error code', async () => {
    const response = await fetch(`${baseUrl}/no-token`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(
      `Bearer realm="MCP Server", resource_metadata="${METADATA}", scope="db:query"`,
    );
    expect(response.headers.get('cache-control')).toBe('no-store');
    await expect(response.json()).resolves.toEqual({
      error: 'unauthorized',
      message: 'Authentication required',
    });
    const [record] = await audit.recent(1);
    expect(record).toMatchObject({ outcome: 'refused_no_token', subject: null, tool: null });
  });

  it('answers an invalid token with 401 invalid_token and a safely quoted description', async () => {
    const unsigned = ['{"alg":"none"}', '{"sub":"mallory","azp":"evil-client"}']
      .map((part) => Buffer.from(part).toString('base64url'))
      .join('.');
    const response = await fetch(`${baseUrl}/invalid`, {
      headers: { authorization: `Bearer ${unsigned}.` },
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(
      'Bearer realm="MCP Server", error="invalid_token", ' +
        `error_description="the token's \\"aud\\" is?wrong", resource_metadata="${METADATA}", scope="db:query"`,
    );
    await expect(response.json()).resolves.toMatchObject({ error: 'invalid_token' });
    const [record] = await audit.recent(1);
    expect(record).toMatchObject({
      outcome: 'refused_invalid_token',
      subject: 'mallory',
      subjectUnverified: true,
      clientId: 'evil-client',
    });
  });

  it('answers a missing scope with 403 insufficient_scope and the union of granted and required scopes', async () => {
    const response = await fetch(`${baseUrl}/scope`, {
      headers: { 'user-agent': 'filter-spec/1.0', 'mcp-protocol-version': '2025-11-25' },
    });
    expect(response.status).toBe(403);
    expect(response.headers.get('www-authenticate')).toBe(
      'Bearer realm="MCP Server", error="insufficient_scope", ' +
        'error_description="The tool apply_migration requires the scopes db:modify db:admin", ' +
        `resource_metadata="${METADATA}", scope="db:query db:modify db:admin"`,
    );
    await expect(response.json()).resolves.toEqual({
      error: 'insufficient_scope',
      error_description: 'The tool apply_migration requires the scopes db:modify db:admin',
      message: 'The tool apply_migration requires the scopes db:modify db:admin',
      required_scopes: ['db:modify', 'db:admin'],
    });
    const [record] = await audit.recent(1);
    expect(record).toMatchObject({
      outcome: 'refused_scope',
      subject: alice.subject,
      subjectUnverified: false,
      tool: 'apply_migration',
      requiredScopes: 'db:modify db:admin',
      grantedScopes: 'db:query bad"scope',
      principalName: 'alice',
      principalEmail: null,
      userAgent: 'filter-spec/1.0',
      protocolVersion: '2025-11-25',
      remoteAddress: '127.0.0.1',
      sqlText: null,
      paramsHash: null,
    });
  });

  it('logs the first 401 of an OAuth flow (no credentials at all) at debug, every other refusal as a warning', async () => {
    const logs = recordNestLogs();
    try {
      await fetch(`${baseUrl}/no-token`);
      await fetch(`${baseUrl}/no-token?access_token=abc`);
      await fetch(`${baseUrl}/no-token`, { headers: { authorization: 'Basic YTpi' } });
      await fetch(`${baseUrl}/invalid`, { headers: { authorization: 'Bearer abc' } });
      await fetch(`${baseUrl}/scope`);
    } finally {
      logs.restore();
    }

    expect(
      logs.lines
        .filter((line) => line.context === 'Refusal')
        .map((line) => [line.level, line.message.split(' sub=')[0]]),
    ).toEqual([
      ['debug', '401 no_token GET /no-token'],
      ['warn', '401 no_token GET /no-token'],
      ['warn', '401 no_token GET /no-token'],
      ['warn', '401 invalid_token GET /invalid'],
      ['warn', '403 insufficient_scope GET /scope'],
    ]);
    const outcomes = (await audit.recent(5)).map((record) => record.outcome);
    expect(outcomes.sort()).toEqual([
      'refused_invalid_token',
      'refused_no_token',
      'refused_no_token',
      'refused_no_token',
      'refused_scope',
    ]);
  });
});
