/**
 * `npm run build && node bench/tool-pipeline.mjs`: the per-call cost of a tool's guard and
 * interceptor pipeline, in microseconds, as Nest's ExternalContextCreator wraps a tool method
 * (the registry before issue 14) and as ToolInvokers binds it at start-up (after), in one process,
 * interleaved rounds, in CPU time. The enhancers are production's: two async guards that decide HTTP only
 * (as JwtAuthGuard and RateLimitGuard; marked @HttpOnlyGuard()), ScopesGuard, AuditInterceptor;
 * the audit store answers at once, so that only the pipeline is measured, not SQLite.
 *
 * Knobs (env): PIPELINE_CALLS (50000 per round), PIPELINE_ROUNDS (5).
 */
import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR, DiscoveryModule, ExternalContextCreator } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { z } from 'zod';
import { AuditInterceptor } from '../dist/audit/audit.interceptor.js';
import { AuditService } from '../dist/audit/audit.service.js';
import { RequireScopes } from '../dist/auth/require-scopes.decorator.js';
import { ScopesGuard } from '../dist/auth/scopes.guard.js';
import { defineScopes } from '../dist/auth/scopes.js';
import { HttpOnlyGuard } from '../dist/common/http-only-guard.js';
import { McpTool } from '../dist/mcp/mcp-tool.decorator.js';
import { TOOL_CONTEXT_TYPE } from '../dist/mcp/tool-context.js';
import { ToolRegistry } from '../dist/mcp/tool-registry.js';
import { Metrics } from '../dist/metrics/metrics.service.js';

const CALLS = Number(process.env.PIPELINE_CALLS ?? 50_000);
const ROUNDS = Number(process.env.PIPELINE_ROUNDS ?? 5);

const SCOPES = defineScopes('pipeline-bench', {
  read: { name: 'bench:read', title: 'Bench', description: 'Call the bench tool' },
});

/** As JwtAuthGuard and RateLimitGuard for anything but HTTP: an async yes. */
class JwtLike {
  async canActivate(context) {
    if (context.getType() !== 'http') return true;
    throw new Error('not measured');
  }
}
class RateLimitLike extends JwtLike {}
for (const guard of [JwtLike, RateLimitLike]) {
  Injectable()(guard);
  HttpOnlyGuard()(guard);
}

class Tools {
  lookup({ id }) {
    return Promise.resolve({ data: { id }, text: String(id) });
  }
}
const Id = z.object({ id: z.number() });
McpTool({
  name: 'lookup',
  title: 'Lookup',
  description: 'A key lookup',
  input: Id,
  output: Id,
  annotations: { readOnlyHint: true, destructiveHint: false },
})(Tools.prototype, 'lookup', Object.getOwnPropertyDescriptor(Tools.prototype, 'lookup'));
RequireScopes(SCOPES.read)(Tools);
Injectable()(Tools);

const done = Promise.resolve();
const instantAudit = {
  record: () => done,
  begin: () => Promise.resolve({ id: 1, row: {} }),
  complete: () => done,
};

const moduleRef = await Test.createTestingModule({
  imports: [DiscoveryModule],
  providers: [
    ToolRegistry,
    Metrics,
    Tools,
    { provide: AuditService, useValue: instantAudit },
    { provide: APP_GUARD, useClass: JwtLike },
    { provide: APP_GUARD, useClass: RateLimitLike },
    { provide: APP_GUARD, useClass: ScopesGuard },
    { provide: APP_INTERCEPTOR, useClass: AuditInterceptor },
  ],
}).compile();
const app = moduleRef.createNestApplication({ logger: false });
await app.init();

const tool = app.get(ToolRegistry).get('lookup');
const tools = app.get(Tools);
const before = app
  .get(ExternalContextCreator)
  .create(
    tools,
    tools.lookup,
    'lookup',
    undefined,
    undefined,
    undefined,
    undefined,
    { guards: true, interceptors: true, filters: false },
    TOOL_CONTEXT_TYPE,
  );
const context = {
  tool: 'lookup',
  principal: {
    subject: 'bench',
    clientId: 'bench',
    tokenId: undefined,
    name: undefined,
    email: undefined,
    scopes: new Set(['bench:read']),
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
  },
  requiredScopes: tool.requiredScopes,
  requestId: 'bench',
  remoteAddress: '127.0.0.1',
  userAgent: 'bench',
  protocolVersion: '2025-11-25',
};

/** CPU microseconds per call (user + system: wall time is the load's), one call after the other. */
async function perCall(handler) {
  const started = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) await handler({ id: i }, context);
  const { user, system } = process.cpuUsage(started);
  return (user + system) / CALLS;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const results = { 'ExternalContextCreator (before)': [], 'ToolInvokers (after)': [] };
await perCall(before);
await perCall(tool.handler);
for (let round = 0; round < ROUNDS; round++) {
  results['ExternalContextCreator (before)'].push(await perCall(before));
  results['ToolInvokers (after)'].push(await perCall(tool.handler));
}
for (const [name, rounds] of Object.entries(results))
  console.log(
    `${name.padEnd(32)} median ${median(rounds).toFixed(2)} us CPU/call  rounds ${rounds.map((us) => us.toFixed(2)).join(' ')}`,
  );
await app.close();
