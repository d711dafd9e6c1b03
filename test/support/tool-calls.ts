import type { Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Test, type TestingModuleBuilder } from '@nestjs/testing';
import { z } from 'zod';
import { auditDatabaseProvider } from '../../src/audit/audit-database.js';
import { AuditService } from '../../src/audit/audit.service.js';
import { auditConfig, databaseConfig } from '../../src/config/configuration.js';
import { readSettings } from '../../src/config/settings.js';
import type { ToolContext, ToolOutput } from '../../src/mcp/tool-context.js';
import type { RegisteredTool } from '../../src/mcp/tool-registry.js';
import { ToolRegistry } from '../../src/mcp/tool-registry.js';
import { Metrics } from '../../src/metrics/metrics.service.js';

/**
 * What the MCP layer hands a tool call once past HTTP: a verified principal (user-1 of client-1,
 * holding `scopes`, by default the tool's own) and the request's details.
 */
export function toolContextFor(
  tool: RegisteredTool,
  { scopes = tool.requiredScopes, userAgent = 'unit-spec' } = {},
): ToolContext {
  return {
    tool: tool.name,
    principal: {
      subject: 'user-1',
      clientId: 'client-1',
      tokenId: 'token-1',
      name: 'Ada',
      email: undefined,
      scopes: new Set(scopes),
      expiresAt: Math.floor(Date.now() / 1000) + 600,
    },
    requiredScopes: tool.requiredScopes,
    requestId: `request-${tool.name}`,
    remoteAddress: '203.0.113.7',
    userAgent,
    protocolVersion: '2025-11-25',
  };
}

/**
 * A testing module with ToolRegistry over these providers and the real audit store, a SQLite
 * file at `auditPath` (a locked file fails a write at once: busy timeout 50 ms).
 */
export function auditedTools(auditPath: string, providers: Provider[]): TestingModuleBuilder {
  const settings = readSettings({
    AUTH_ISSUER: 'https://issuer.example.com',
    AUDIT_DATABASE_URL: `sqlite:${auditPath}`,
    DATABASE_BUSY_TIMEOUT_MS: '50',
  });
  return Test.createTestingModule({
    imports: [DiscoveryModule],
    providers: [
      { provide: auditConfig.KEY, useValue: settings.audit },
      { provide: databaseConfig.KEY, useValue: settings.database },
      auditDatabaseProvider,
      AuditService,
      Metrics,
      ToolRegistry,
      ...providers,
    ],
  });
}

/** The input and output of the word fixtures: a tool that gives back its word. */
export const Word = z.object({ word: z.string() });
export type Word = z.infer<typeof Word>;

/** The @McpTool options of a read-only word fixture of this name. */
export const wordTool = (name: string) => ({
  name,
  title: `The ${name} fixture`,
  description: `Gives back its word (${name})`,
  input: Word,
  output: Word,
  annotations: { readOnlyHint: true, destructiveHint: false },
});

export const echo = ({ word }: Word): Promise<ToolOutput<Word>> =>
  Promise.resolve({ data: { word }, text: word });
