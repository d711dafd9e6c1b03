import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { CallToolResult } from '@modelcontextprotocol/server';
import { AppModule } from '../../src/app.module.js';
import type { Principal } from '../../src/auth/principal.js';
import { ToolCallPipeline } from '../../src/mcp/tool-call.js';
import { ToolRegistry } from '../../src/mcp/tool-registry.js';
import { applyTestSettings } from './app.js';
import { type AuditRow, readAuditRows } from './audit-rows.js';
import { textOf } from './tool-client.js';

export interface ToolHarness {
  app: INestApplication;
  registry: ToolRegistry;
  /** The application database (a SQLite file of its own). */
  databasePath: string;
  /**
   * Calls a tool as `tools/call` would once past the HTTP layer: through ToolCallPipeline (input
   * validation, guards, the audit interceptor, the method, output validation), as a principal
   * holding `scopes` (by default every scope the server declares).
   */
  call(name: string, args: unknown, scopes?: readonly string[]): Promise<CallToolResult>;
  /** The structured result of a call that must succeed. */
  ok(name: string, args: unknown, scopes?: readonly string[]): Promise<Record<string, unknown>>;
  /** The error text of a call that must fail. */
  refused(name: string, args: unknown, scopes?: readonly string[]): Promise<string>;
  /** The audit log, oldest first. */
  auditRows(): AuditRow[];
  close(): Promise<void>;
}

/**
 * The whole application (AppModule, real SQLite files, the real audit store and engine), built
 * with Nest's testing module and not listening: a tool's spec calls it in milliseconds, without
 * HTTP, tokens or an issuer. HTTP, OAuth and the MCP protocol have their own e2e specs.
 */
export async function startToolHarness(
  env: Record<string, string | undefined> = {},
): Promise<ToolHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'scopedb-harness-'));
  const databasePath = join(dir, 'app.sqlite');
  const auditPath = join(dir, 'audit.sqlite');
  applyTestSettings({
    // Required, never contacted: the harness holds its principals already verified.
    AUTH_ISSUER: 'http://127.0.0.1:9/harness-issuer',
    DATABASE_URL: `sqlite:${databasePath}`,
    INTERNAL_DATABASE_URL: `sqlite:${join(dir, 'internal.sqlite')}`,
    AUDIT_DATABASE_URL: `sqlite:${auditPath}`,
    ...env,
  });
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot({ logLevel: 'silent' })],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  const registry = app.get(ToolRegistry);
  const pipeline = app.get(ToolCallPipeline);
  const everyScope = registry.scopesSupported();

  async function call(name: string, args: unknown, scopes: readonly string[] = everyScope) {
    const tool = registry.get(name);
    if (!tool) throw new Error(`no tool is named ${name}`);
    const principal: Principal = {
      subject: 'harness-user',
      clientId: 'harness-client',
      tokenId: undefined,
      name: 'Harness',
      email: undefined,
      scopes: new Set(scopes),
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
    };
    return pipeline.call(tool, args, {
      tool: name,
      principal,
      requiredScopes: tool.requiredScopes,
      requestId: randomUUID(),
      remoteAddress: '127.0.0.1',
      userAgent: 'tool-harness',
      protocolVersion: undefined,
    });
  }

  return {
    app,
    registry,
    databasePath,
    call,
    async ok(name, args, scopes) {
      const result = await call(name, args, scopes);
      if (result.isError) throw new Error(`${name} failed: ${textOf(result)}`);
      return result.structuredContent as Record<string, unknown>;
    },
    async refused(name, args, scopes) {
      const result = await call(name, args, scopes);
      if (!result.isError) throw new Error(`${name} succeeded: ${textOf(result)}`);
      return textOf(result);
    },
    auditRows: () => readAuditRows(auditPath),
    async close() {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
