import { hash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CanActivate, type INestApplication, Injectable, UseGuards } from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { z } from 'zod';
import { lockSqlite } from '../../test/support/audit-outage.js';
import { type LogLine, recordNestLogs } from '../../test/support/nest-logs.js';
import { auditedTools, toolContextFor } from '../../test/support/tool-calls.js';
import type { AuditRecord } from '../audit/audit-record.entity.js';
import { AuditUnavailableError } from '../audit/audit-unavailable.js';
import { AuditInterceptor } from '../audit/audit.interceptor.js';
import { AuditService } from '../audit/audit.service.js';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import { ScopesGuard } from '../auth/scopes.guard.js';
import { defineScopes } from '../auth/scopes.js';
import { MAX_JSON_DEPTH } from './json-limits.js';
import { McpTool } from './mcp-tool.decorator.js';
import { ToolCallPipeline } from './tool-call.js';
import { ToolError, type ToolOutput } from './tool-context.js';
import { ToolRegistry } from './tool-registry.js';

const SPEC_SCOPES = defineScopes('pipeline-spec', {
  read: { name: 'pipeline:read', title: 'Run fixtures', description: 'Call the fixture tools' },
  write: {
    name: 'pipeline:write',
    title: 'Write with fixtures',
    description: 'Call the fixture tools that write',
  },
});

const RunInput = z.object({
  sql: z.string().min(1),
  params: z.array(z.unknown()).optional(),
  table: z.string().optional(),
});
const RunOutput = z.object({ rows: z.number().int() });
type Run = z.output<typeof RunInput>;
type Ran = ToolOutput<z.input<typeof RunOutput>>;

const declared = (name: string, readOnlyHint = true) => ({
  name,
  title: `The ${name} fixture`,
  description: `A fixture tool (${name})`,
  input: RunInput,
  output: RunOutput,
  annotations: { readOnlyHint, destructiveHint: !readOnlyHint },
  audit: { statement: 'sql', params: 'params', table: 'table', rowCount: 'rows' } as const,
});

/** A guard that answers no (rather than throwing its own refusal). */
@Injectable()
class ClosedGuard implements CanActivate {
  canActivate(): boolean {
    return false;
  }
}

/** One tool per way a call can end. */
@Injectable()
@RequireScopes(SPEC_SCOPES.read)
class PipelineTools {
  runs = 0;

  @McpTool(declared('run'))
  run({ sql }: Run): Promise<Ran> {
    this.runs++;
    return Promise.resolve({ data: { rows: 2 }, text: `ran ${sql}` });
  }

  @McpTool(declared('tells'))
  tells(): Promise<Ran> {
    return Promise.resolve({
      data: { rows: 5 },
      text: 'ran its own statement',
      audit: { statement: 'SELECT count(*) FROM other', table: 'other', rowCount: 1 },
    });
  }

  @McpTool(declared('no_such_table'))
  noSuchTable(): Promise<Ran> {
    return Promise.reject(new ToolError('no such table: nope', 'SQLITE_ERROR'));
  }

  @McpTool(declared('refuses'))
  refuses(): Promise<Ran> {
    return Promise.reject(new ToolError('The period is empty.'));
  }

  @McpTool(declared('crashes'))
  crashes(): Promise<Ran> {
    return Promise.reject(new Error('the pool is closed'));
  }

  /** As better-sqlite3's SqliteError: not a ToolError, but with the database's code. */
  @McpTool(declared('busy'))
  busy(): Promise<Ran> {
    return Promise.reject(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }));
  }

  @McpTool(declared('drifts'))
  drifts(): Promise<Ran> {
    return Promise.resolve({ data: { rows: 'two' } as unknown as Ran['data'], text: 'two' });
  }

  @McpTool(declared('forgets'))
  forgets(): Promise<Ran> {
    return Promise.resolve({ text: 'no data' } as Ran);
  }

  @McpTool(declared('loses_audit'))
  losesAudit(): Promise<Ran> {
    return Promise.reject(new AuditUnavailableError('disk full'));
  }

  @McpTool(declared('closed'))
  @UseGuards(ClosedGuard)
  closed(): Promise<Ran> {
    this.runs++;
    return Promise.resolve({ data: { rows: 0 }, text: 'open after all' });
  }

  @McpTool(declared('writes', false))
  @RequireScopes(SPEC_SCOPES.write)
  writes(): Promise<Ran> {
    this.runs++;
    return Promise.resolve({ data: { rows: 3 }, text: '3 rows changed' });
  }
}

const EVERY_SCOPE = ['pipeline:read', 'pipeline:write'];
const paramsHash = (params: unknown) => hash('sha256', JSON.stringify(params), 'hex');
const nested = (levels: number): unknown =>
  JSON.parse(`${'['.repeat(levels)}1${']'.repeat(levels)}`);

describe(ToolCallPipeline.name, () => {
  let dir: string;
  let auditPath: string;
  let app: INestApplication;
  let sut: ToolCallPipeline;
  let audit: AuditService;
  let tools: PipelineTools;
  let logs: { lines: LogLine[]; restore(): void };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scopedb-tool-call-'));
    auditPath = join(dir, 'audit.sqlite');
    const moduleRef = await auditedTools(auditPath, [
      ToolCallPipeline,
      PipelineTools,
      { provide: APP_GUARD, useClass: ScopesGuard },
      { provide: APP_INTERCEPTOR, useClass: AuditInterceptor },
    ]).compile();
    logs = recordNestLogs();
    app = moduleRef.createNestApplication();
    await app.init();
    sut = app.get(ToolCallPipeline);
    audit = app.get(AuditService);
    tools = app.get(PipelineTools);
  });
  afterAll(async () => {
    await app.close();
    logs.restore();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    logs.lines.length = 0;
  });

  function call(name: string, args: unknown, scopes: readonly string[] = EVERY_SCOPE) {
    const tool = app.get(ToolRegistry).get(name);
    if (!tool) throw new Error(`no tool ${name}`);
    return sut.call(tool, args, toolContextFor(tool, { scopes, userAgent: 'pipeline-spec' }));
  }
  const failure = (text: string) => ({ isError: true, content: [{ type: 'text', text }] });
  async function lastRecord(): Promise<AuditRecord> {
    const [record] = await audit.recent(1);
    return record;
  }
  const errorsLogged = () =>
    logs.lines.filter((line) => line.level === 'error').map((line) => line.message);

  describe('success', () => {
    it('answers the text and the structured result, and records the call', async () => {
      const args = { sql: 'SELECT * FROM t WHERE id = ?', params: [7], table: 't' };

      await expect(call('run', args)).resolves.toEqual({
        content: [{ type: 'text', text: 'ran SELECT * FROM t WHERE id = ?' }],
        structuredContent: { rows: 2 },
      });
      expect(await lastRecord()).toMatchObject({
        outcome: 'success',
        tool: 'run',
        subject: 'user-1',
        clientId: 'client-1',
        requiredScopes: 'pipeline:read',
        grantedScopes: 'pipeline:read pipeline:write',
        sqlText: 'SELECT * FROM t WHERE id = ?',
        paramsHash: paramsHash([7]),
        tableName: 't',
        rowCount: 2,
        requestId: 'request-run',
        remoteAddress: '203.0.113.7',
        userAgent: 'pipeline-spec',
        protocolVersion: '2025-11-25',
      });
    });

    it('records what the method told it ran (ToolOutput.audit) over the declared fields', async () => {
      await call('tells', { sql: 'SELECT 1', params: [1], table: 't' });

      expect(await lastRecord()).toMatchObject({
        outcome: 'success',
        sqlText: 'SELECT count(*) FROM other',
        paramsHash: paramsHash([1]),
        tableName: 'other',
        rowCount: 1,
      });
    });

    it("records a write as its intent completed with the write's outcome", async () => {
      const before = await lastRecord();

      await expect(call('writes', { sql: 'DELETE FROM t', table: 't' })).resolves.toMatchObject({
        structuredContent: { rows: 3 },
      });
      expect(await lastRecord()).toMatchObject({
        outcome: 'success',
        tool: 'writes',
        requiredScopes: 'pipeline:write pipeline:read',
        sqlText: 'DELETE FROM t',
        tableName: 't',
        rowCount: 3,
      });
      // One record: the intent, completed in place.
      expect((await audit.recent(2))[1].id).toBe(before.id);
    });
  });

  describe('input refused', () => {
    it.each<[string, unknown, string, Partial<AuditRecord>]>([
      [
        'a schema issue',
        { sql: 42, params: [1], table: 't' },
        'sql: Invalid input: expected string, received number',
        { sqlText: null, paramsHash: paramsHash([1]), tableName: 't' },
      ],
      [
        'no arguments',
        undefined,
        'sql: Invalid input: expected string, received undefined',
        { sqlText: null, paramsHash: null, tableName: null },
      ],
      [
        'a `__proto__` key given as JSON (which zod would drop silently)',
        JSON.parse('{"sql":"SELECT 1","params":[1],"table":"t","__proto__":{"admin":true}}'),
        '__proto__: the key "__proto__" is not accepted (nor are __proto__, constructor, prototype, in any object)',
        { sqlText: 'SELECT 1', paramsHash: paramsHash([1]), tableName: 't' },
      ],
      [
        'a reserved key deep in the parameters',
        { sql: 'SELECT 1', params: [{ constructor: 1 }] },
        'params.0.constructor: the key "constructor" is not accepted (nor are __proto__, constructor, prototype, in any object)',
        { sqlText: 'SELECT 1', paramsHash: paramsHash([{ constructor: 1 }]), tableName: null },
      ],
      [
        'arguments nested too deep (recorded without what they would run: not hashed)',
        { sql: 'SELECT 1', params: nested(MAX_JSON_DEPTH), table: 't' },
        `nested deeper than ${MAX_JSON_DEPTH} levels`,
        { sqlText: null, paramsHash: null, tableName: null },
      ],
    ])(
      'is an isError result for %s, recorded as a tool_error',
      async (_case, args, issue, attempt) => {
        const runs = tools.runs;
        const message = `Input validation error: Invalid arguments for tool run: ${issue}`;

        await expect(call('run', args)).resolves.toEqual(failure(message));
        expect(tools.runs).toBe(runs);
        expect(await lastRecord()).toMatchObject({
          outcome: 'tool_error',
          tool: 'run',
          reason: message,
          subject: 'user-1',
          requiredScopes: 'pipeline:read',
          requestId: 'request-run',
          ...attempt,
        });
      },
    );
  });

  describe('the tool fails', () => {
    it.each([
      ['a ToolError with its code', 'no_such_table', 'SQLITE_ERROR', 'no such table: nope'],
      ['a ToolError without a code', 'refuses', undefined, 'The period is empty.'],
      ["a driver's error with its code", 'busy', 'SQLITE_BUSY', 'database is locked'],
    ])(
      'answers %s as `Error [CODE]: message`, recorded, not logged',
      async (_case, name, code, message) => {
        await expect(call(name, { sql: 'SELECT 1' })).resolves.toEqual(
          failure(`Error${code ? ` [${code}]` : ''}: ${message}`),
        );
        expect(await lastRecord()).toMatchObject({
          outcome: 'tool_error',
          tool: name,
          reason: message,
          sqlText: 'SELECT 1',
        });
        expect(errorsLogged()).toEqual([]);
      },
    );

    it('answers any other error as `Error: message`, and logs it as a defect', async () => {
      await expect(call('crashes', { sql: 'SELECT 1' })).resolves.toEqual(
        failure('Error: the pool is closed'),
      );
      expect(await lastRecord()).toMatchObject({
        outcome: 'tool_error',
        tool: 'crashes',
        reason: 'the pool is closed',
      });
      expect(logs.lines).toContainEqual({
        level: 'error',
        message: 'tool crashes failed',
        context: 'ToolCall',
      });
    });
  });

  describe('output refused', () => {
    it('answers a result its output schema refuses as an isError result, and logs it', async () => {
      const message =
        'Output validation error: Invalid structured content for tool drifts: ' +
        'rows: Invalid input: expected number, received string';

      await expect(call('drifts', { sql: 'SELECT 1' })).resolves.toEqual(failure(message));
      expect(errorsLogged()).toEqual([
        `PipelineTools.drifts returned what its output schema refuses: ${message}`,
      ]);
      // It ran (its record), and its caller got an error instead of its result (a second one).
      const [answered, ran] = await audit.recent(2);
      expect([ran.outcome, ran.tool, answered.outcome, answered.tool, answered.reason]).toEqual([
        'success',
        'drifts',
        'tool_error',
        'drifts',
        message,
      ]);
    });

    it('answers a result without data as the SDK does', async () => {
      const message =
        'Output validation error: Tool forgets has an output schema but no structured content was provided';

      await expect(call('forgets', { sql: 'SELECT 1' })).resolves.toEqual(failure(message));
      expect(errorsLogged()).toEqual([
        `PipelineTools.forgets returned what its output schema refuses: ${message}`,
      ]);
    });
  });

  describe('scope refused in the pipeline', () => {
    it('answers Forbidden, records the refusal with what it would run, and does not run', async () => {
      const runs = tools.runs;
      const args = { sql: 'DELETE FROM t', params: [], table: 't' };

      await expect(call('writes', args, ['pipeline:read'])).resolves.toEqual(
        failure('Forbidden: The tool writes requires the scope pipeline:write'),
      );
      expect(tools.runs).toBe(runs);
      expect(await lastRecord()).toMatchObject({
        outcome: 'refused_scope',
        tool: 'writes',
        reason: 'The tool writes requires the scope pipeline:write',
        requiredScopes: 'pipeline:write pipeline:read',
        grantedScopes: 'pipeline:read',
        sqlText: 'DELETE FROM t',
        paramsHash: paramsHash([]),
        tableName: 't',
      });
      expect(logs.lines).toContainEqual({
        level: 'warn',
        message:
          'tool writes refused in its pipeline: The tool writes requires the scope pipeline:write sub=user-1',
        context: 'ToolCall',
      });
    });
  });

  describe('a guard answers no', () => {
    it("answers Nest's Forbidden resource as an error result, and does not run", async () => {
      const runs = tools.runs;

      await expect(call('closed', { sql: 'SELECT 1' })).resolves.toEqual(
        failure('Error: Forbidden resource'),
      );
      expect(tools.runs).toBe(runs);
    });
  });

  describe('fail closed', () => {
    it('rejects with the AuditUnavailableError a tool or interceptor throws: no answer at all', async () => {
      const before = await lastRecord();

      await expect(call('loses_audit', { sql: 'SELECT 1' })).rejects.toThrow(
        new AuditUnavailableError('disk full'),
      );
      expect((await lastRecord()).id).toBe(before.id);
    });

    it('rejects when the record of a call or of its refusal cannot be written', async () => {
      const lock = lockSqlite(auditPath);
      try {
        await expect(call('run', { sql: 'SELECT 1' })).rejects.toBeInstanceOf(
          AuditUnavailableError,
        );
        await expect(call('run', { sql: 42 })).rejects.toBeInstanceOf(AuditUnavailableError);
        const runs = tools.runs;
        await expect(call('writes', { sql: 'DELETE FROM t' })).rejects.toBeInstanceOf(
          AuditUnavailableError,
        );
        // A write runs only once its intent is committed.
        expect(tools.runs).toBe(runs);
      } finally {
        lock.release();
      }
      await expect(audit.probe()).resolves.toBe(true);
      await expect(call('run', { sql: 'SELECT 2' })).resolves.toMatchObject({
        structuredContent: { rows: 2 },
      });
    });
  });
});
