import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Controller,
  HttpCode,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  Post,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { lockSqlite } from '../../test/support/audit-outage.js';
import { auditDatabaseProvider } from '../audit/audit-database.js';
import { auditUnavailableBody } from '../audit/audit-unavailable.js';
import { AuditService } from '../audit/audit.service.js';
import { auditConfig, databaseConfig, mcpConfig } from '../config/configuration.js';
import { readSettings } from '../config/settings.js';
import { Metrics } from '../metrics/metrics.service.js';
import { OriginMiddleware } from './origin.middleware.js';

const ALLOWED = 'https://app.example.com';

/** The endpoint behind the middleware: counts what reaches it. */
@Controller('mcp')
class ReachedController {
  static reached = 0;

  @Post()
  @HttpCode(200)
  post(): { reached: true } {
    ReachedController.reached++;
    return { reached: true };
  }
}

function originSpecModule(auditPath: string) {
  const settings = readSettings({
    AUTH_ISSUER: 'https://issuer.example.com',
    AUDIT_DATABASE_URL: `sqlite:${auditPath}`,
    MCP_ALLOWED_ORIGINS: `${ALLOWED},http://localhost:5173`,
    DATABASE_BUSY_TIMEOUT_MS: '50',
  });
  @Module({
    controllers: [ReachedController],
    providers: [
      { provide: mcpConfig.KEY, useValue: settings.mcp },
      { provide: auditConfig.KEY, useValue: settings.audit },
      { provide: databaseConfig.KEY, useValue: settings.database },
      auditDatabaseProvider,
      AuditService,
      Metrics,
      OriginMiddleware,
    ],
  })
  class OriginSpecModule implements NestModule {
    configure(consumer: MiddlewareConsumer): void {
      consumer.apply(OriginMiddleware).forRoutes(ReachedController);
    }
  }
  return OriginSpecModule;
}

describe(OriginMiddleware.name, () => {
  let dir: string;
  let auditPath: string;
  let app: NestExpressApplication;
  let url: string;
  let audit: AuditService;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-origin-'));
    auditPath = join(dir, 'audit.sqlite');
    app = await NestFactory.create<NestExpressApplication>(originSpecModule(auditPath), {
      logger: false,
      forceCloseConnections: true,
    });
    await app.listen(0, '127.0.0.1');
    url = `${await app.getUrl()}/mcp`;
    audit = app.get(AuditService);
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (headers: Record<string, string> = {}) =>
    fetch(url, { method: 'POST', headers: { 'user-agent': 'origin-spec/1.0', ...headers } });
  async function recordCount(): Promise<number> {
    return (await audit.recent(1000)).length;
  }

  it('lets a request without an Origin (a native client) through, without CORS headers', async () => {
    const reached = ReachedController.reached;
    const records = await recordCount();

    const response = await post();

    expect(response.status).toBe(200);
    expect(ReachedController.reached).toBe(reached + 1);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(await recordCount()).toBe(records);
  });

  it.each([ALLOWED, 'http://localhost:5173'])(
    'lets the allowed Origin %s through, with CORS headers for it',
    async (origin) => {
      const reached = ReachedController.reached;

      const response = await post({ origin });

      expect(response.status).toBe(200);
      expect(ReachedController.reached).toBe(reached + 1);
      expect(response.headers.get('access-control-allow-origin')).toBe(origin);
      expect(response.headers.get('vary')).toBe('Origin');
      expect(response.headers.get('access-control-expose-headers')).toBe(
        'WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version, X-Request-Id',
      );
    },
  );

  it.each([
    'https://evil.example',
    'http://app.example.com',
    'https://app.example.com:8443',
    `${ALLOWED}.evil.example`,
    'null',
  ])('refuses the Origin %s with 403, before the endpoint, and records it', async (origin) => {
    const reached = ReachedController.reached;

    const response = await post({ origin });

    expect(response.status).toBe(403);
    await expect(response.json()).resolves.toEqual({
      jsonrpc: '2.0',
      error: {
        code: -32000,
        message: 'Forbidden: this Origin is not allowed to use the MCP endpoint',
      },
      id: null,
    });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(ReachedController.reached).toBe(reached);
    const [record] = await audit.recent(1);
    expect(record).toMatchObject({
      outcome: 'refused_origin',
      reason: `Origin ${origin} is not allowed`,
      subject: null,
      tool: null,
      userAgent: 'origin-spec/1.0',
      remoteAddress: '127.0.0.1',
    });
  });

  it('records at most 200 characters of a refused Origin', async () => {
    const origin = `https://${'a'.repeat(300)}.example`;

    await post({ origin });

    const [record] = await audit.recent(1);
    expect(record.reason).toBe(`Origin ${origin.slice(0, 200)} is not allowed`);
  });

  it('answers 503 when the refusal cannot be recorded (fail closed)', async () => {
    const lock = lockSqlite(auditPath);
    let response: Response;
    try {
      response = await post({ origin: 'https://evil.example' });
    } finally {
      lock.release();
    }

    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    await expect(response.json()).resolves.toEqual(auditUnavailableBody(null));
    await expect(audit.probe()).resolves.toBe(true);
  });
});
