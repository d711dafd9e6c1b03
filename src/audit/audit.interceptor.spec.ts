import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CallHandler,
  type ExecutionContext,
  type INestApplication,
  Injectable,
  type NestInterceptor,
  UseInterceptors,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import type { Observable } from 'rxjs';
import { z } from 'zod';
import { lockSqlite } from '../../test/support/audit-outage.js';
import { auditedTools, toolContextFor } from '../../test/support/tool-calls.js';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import { defineScopes } from '../auth/scopes.js';
import { McpTool } from '../mcp/mcp-tool.decorator.js';
import { ToolError, type ToolOutput } from '../mcp/tool-context.js';
import { ToolRegistry } from '../mcp/tool-registry.js';
import type { AuditRecord } from './audit-record.entity.js';
import { AuditUnavailableError } from './audit-unavailable.js';
import { AuditInterceptor } from './audit.interceptor.js';
import { AuditService } from './audit.service.js';

const SPEC_SCOPES = defineScopes('audit-interceptor-spec', {
  run: { name: 'audited:run', title: 'Run fixtures', description: 'Call the audited fixtures' },
});

const RunInput = z.object({ sql: z.string(), table: z.string().optional() });
const RunOutput = z.object({ rows: z.number().int() });
type Ran = ToolOutput<z.input<typeof RunOutput>>;

/** Which calls ran their method, by tool name. */
const ran: string[] = [];

/** An extension's interceptor with the Observable form only: its tools take the rxjs chain. */
@Injectable()
class PassThrough implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}

/** The same tools, named with `suffix`, behind these class interceptors. */
function toolsWith(suffix: string, ...interceptors: (new () => NestInterceptor)[]) {
  const declared = (name: string, readOnlyHint: boolean) => ({
    name: `${name}${suffix}`,
    title: `The ${name} fixture`,
    description: `A fixture tool (${name})`,
    input: RunInput,
    output: RunOutput,
    annotations: { readOnlyHint, destructiveHint: !readOnlyHint },
    audit: { statement: 'sql', table: 'table', rowCount: 'rows' } as const,
  });
  const run = (name: string, outcome: () => Promise<Ran>) => {
    ran.push(`${name}${suffix}`);
    return outcome();
  };

  @Injectable()
  @RequireScopes(SPEC_SCOPES.run)
  @UseInterceptors(...interceptors)
  class Tools {
    @McpTool(declared('read', true))
    read(): Promise<Ran> {
      return run('read', () =>
        Promise.resolve({
          data: { rows: 2 },
          text: 'two rows',
          audit: { statement: 'SELECT id FROM t', table: 't' },
        }),
      );
    }

    @McpTool(declared('read_fails', true))
    readFails(): Promise<Ran> {
      return run('read_fails', () => Promise.reject(new ToolError('no such table: t')));
    }

    @McpTool(declared('write', false))
    write(): Promise<Ran> {
      return run('write', () => Promise.resolve({ data: { rows: 3 }, text: '3 rows changed' }));
    }

    @McpTool(declared('write_fails', false))
    writeFails(): Promise<Ran> {
      return run('write_fails', () => Promise.reject(new Error('constraint failed')));
    }
  }
  return Tools;
}

const PromiseTools = toolsWith('');
const ObservableTools = toolsWith('_rx', PassThrough);

/** A record without what differs between two calls of one case (identity, time, tool name). */
function comparable(record: AuditRecord): Partial<AuditRecord> {
  const kept: Partial<AuditRecord> = {
    ...record,
    durationMs: record.durationMs === null ? null : 0,
  };
  for (const varying of ['id', 'time', 'tool', 'requestId'] as const) delete kept[varying];
  return kept;
}

describe(AuditInterceptor.name, () => {
  let dir: string;
  let auditPath: string;
  let app: INestApplication;
  let audit: AuditService;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-audit-interceptor-'));
    auditPath = join(dir, 'audit.sqlite');
    const moduleRef = await auditedTools(auditPath, [
      PromiseTools,
      ObservableTools,
      { provide: APP_INTERCEPTOR, useClass: AuditInterceptor },
    ]).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    audit = app.get(AuditService);
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });
  function call(name: string): Promise<unknown> {
    const tool = app.get(ToolRegistry).get(name);
    if (!tool) throw new Error(`no tool ${name}`);
    return tool.handler({ sql: 'DELETE FROM t WHERE id = 1', table: 't' }, toolContextFor(tool));
  }

  /** The call's outcome (settled) and the records it added, in each form. */
  async function inBothForms(name: string) {
    ran.length = 0;
    const forms = [];
    const tools: (string | null)[][] = [];
    for (const tool of [name, `${name}_rx`]) {
      const [before] = await audit.recent(1);
      const outcome = await call(tool).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      const added = (await audit.recent(10)).filter((record) => record.id > (before?.id ?? 0));
      forms.push({ outcome, records: added.map(comparable) });
      tools.push(added.map((record) => record.tool));
    }
    const [promised, observed] = forms;
    expect(tools[1]).toEqual(tools[0].map((tool) => `${tool}_rx`));
    expect(ran).toEqual([name, `${name}_rx`]);
    return { promised, observed };
  }

  it.each([
    ['a read', 'read', 'success'],
    ['a failed read', 'read_fails', 'tool_error'],
    ['a write (its intent completed)', 'write', 'success'],
    ['a failed write (its intent completed)', 'write_fails', 'tool_error'],
  ])(
    'records %s identically in its promise and its Observable form',
    async (_case, name, outcome) => {
      const { promised, observed } = await inBothForms(name);

      expect(observed).toEqual(promised);
      expect(promised.records).toHaveLength(1);
      expect(promised.records[0]).toMatchObject({ outcome, subject: 'user-1', tableName: 't' });
    },
  );

  it("records what a read told it ran, and a write's declared statement", async () => {
    const { promised: read } = await inBothForms('read');
    const { promised: write } = await inBothForms('write');

    expect(read.records[0]).toMatchObject({ sqlText: 'SELECT id FROM t', rowCount: 2 });
    expect(write.records[0]).toMatchObject({ sqlText: 'DELETE FROM t WHERE id = 1', rowCount: 3 });
  });

  it('fails closed in both forms: no answer without a record, no write before its intent', async () => {
    ran.length = 0;
    const [before] = await audit.recent(1);
    const lock = lockSqlite(auditPath);
    try {
      for (const name of ['read', 'read_rx', 'write', 'write_rx'])
        await expect(call(name)).rejects.toBeInstanceOf(AuditUnavailableError);
    } finally {
      lock.release();
    }
    // The reads ran, their records failed; the writes never ran.
    expect(ran).toEqual(['read', 'read_rx']);
    await expect(audit.probe()).resolves.toBe(true);
    expect((await audit.recent(1))[0]?.id).toBe(before?.id);
  });
});
