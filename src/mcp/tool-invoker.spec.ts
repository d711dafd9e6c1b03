import {
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  ForbiddenException,
  Get,
  type INestApplication,
  Injectable,
  type NestInterceptor,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR, DiscoveryModule } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { map, type Observable, of } from 'rxjs';
import { toolContextFor, type Word, wordTool } from '../../test/support/tool-calls.js';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import { defineScopes } from '../auth/scopes.js';
import { HttpOnlyGuard } from '../common/http-only-guard.js';
import { Metrics } from '../metrics/metrics.service.js';
import { McpTool } from './mcp-tool.decorator.js';
import type { PromiseInterceptor } from './promise-interceptor.js';
import { TOOL_CONTEXT_TYPE, type ToolOutput } from './tool-context.js';
import { ToolInvokers } from './tool-invoker.js';
import { ToolRegistry } from './tool-registry.js';

const SPEC_SCOPES = defineScopes('invoker-spec', {
  read: { name: 'invoker:read', title: 'Call fixtures', description: 'Call the invoker fixtures' },
});

type Said = ToolOutput<Word>;
const declared = wordTool;

/** What ran, in order, during one call: guards, interceptors (in and out), the method. */
const trace: string[] = [];

/** A guard that counts and lets through; `type` is the context type it saw. */
abstract class CountingGuard implements CanActivate {
  calls = 0;
  types: string[] = [];
  canActivate(context: ExecutionContext): boolean {
    this.calls++;
    this.types.push(context.getType());
    trace.push(this.constructor.name);
    return true;
  }
}

/** An extension's global guard: no marker, so it runs for every tool call. */
@Injectable()
class ExtensionGuard extends CountingGuard {}

/** Says only HTTP requests concern it: left out of tool pipelines. */
@Injectable()
@HttpOnlyGuard()
class HttpGuard extends CountingGuard {}

/** A subclass of a marked guard is not marked itself (it may decide tool calls). */
@Injectable()
class HttpGuardExtended extends HttpGuard {}

@Injectable()
class ClassGuard extends CountingGuard {}

@Injectable()
class MethodGuard extends CountingGuard {}

/** Answers through a Promise, or an Observable, what the word says. */
@Injectable()
class DeferredGuard implements CanActivate {
  canActivate(context: ExecutionContext): Promise<boolean> | Observable<boolean> {
    const { word } = context.getArgByIndex<Word>(0);
    if (word.startsWith('promise')) return Promise.resolve(word.endsWith('yes'));
    return of(word.endsWith('yes'));
  }
}

/** An extension's interceptor with the Observable form only: the chain falls back to rxjs. */
@Injectable()
class ObservableOnly implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<Said> {
    trace.push('observable in');
    return next.handle().pipe(
      map((output: Said) => {
        trace.push('observable out');
        return { ...output, text: `${output.text} (observed)` };
      }),
    );
  }
}

/** An interceptor with both forms, each tracing which one ran. */
@Injectable()
class BothForms implements PromiseInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<Said> {
    trace.push('both: observable');
    return next.handle().pipe(map((output: Said) => ({ ...output, text: `${output.text}!` })));
  }

  async interceptAsync(_context: ExecutionContext, next: () => Promise<unknown>): Promise<Said> {
    trace.push('both: promise');
    const output = (await next()) as Said;
    return { ...output, text: `${output.text}!` };
  }
}

const say = (name: string, { word }: Word): Promise<Said> => {
  trace.push(name);
  return Promise.resolve({ data: { word }, text: word });
};

@Injectable()
@RequireScopes(SPEC_SCOPES.read)
@UseGuards(ClassGuard)
class Tools {
  @McpTool(declared('plain'))
  plain(input: Word): Promise<Said> {
    return say('plain', input);
  }

  @McpTool(declared('guarded'))
  @UseGuards(MethodGuard, DeferredGuard)
  guarded(input: Word): Promise<Said> {
    return say('guarded', input);
  }

  @McpTool(declared('observed'))
  @UseInterceptors(ObservableOnly)
  observed(input: Word): Promise<Said> {
    return say('observed', input);
  }
}

@Controller('probe')
class ProbeController {
  @Get()
  probe(): { ok: true } {
    return { ok: true };
  }
}

describe(ToolInvokers.name, () => {
  let app: INestApplication;
  let baseUrl: string;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [DiscoveryModule],
      controllers: [ProbeController],
      providers: [
        ToolRegistry,
        Metrics,
        Tools,
        HttpGuard,
        HttpGuardExtended,
        ExtensionGuard,
        { provide: APP_GUARD, useExisting: HttpGuard },
        { provide: APP_GUARD, useExisting: HttpGuardExtended },
        { provide: APP_GUARD, useExisting: ExtensionGuard },
        { provide: APP_INTERCEPTOR, useClass: BothForms },
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    baseUrl = await app.getUrl();
  });
  afterAll(() => app.close());
  beforeEach(() => {
    trace.length = 0;
  });

  function call(name: string, word: string) {
    const tool = app.get(ToolRegistry).get(name);
    if (!tool) throw new Error(`no tool ${name}`);
    return tool.handler({ word }, toolContextFor(tool));
  }

  it('runs the global, class and method guards once per call, in that order, then the chain', async () => {
    await expect(call('guarded', 'promise yes')).resolves.toEqual({
      data: { word: 'promise yes' },
      text: 'promise yes!',
    });
    expect(trace).toEqual([
      'HttpGuardExtended',
      'ExtensionGuard',
      'ClassGuard',
      'MethodGuard',
      'both: promise',
      'guarded',
    ]);
    await call('plain', 'hello');
    expect(trace.filter((step) => step === 'ExtensionGuard')).toHaveLength(2);
    expect(app.get(ExtensionGuard).types.slice(-2)).toEqual([TOOL_CONTEXT_TYPE, TOOL_CONTEXT_TYPE]);
  });

  it.each([
    ['a Promise', 'promise no'],
    ['an Observable', 'observable no'],
  ])(
    'refuses with Forbidden resource when a guard answers false through %s',
    async (_how, word) => {
      await expect(call('guarded', word)).rejects.toThrow(
        new ForbiddenException('Forbidden resource'),
      );
      expect(trace).not.toContain('guarded');
      expect(trace).not.toContain('both: promise');
    },
  );

  it('lets through what a guard allows through an Observable', async () => {
    await expect(call('guarded', 'observable yes')).resolves.toMatchObject({
      text: 'observable yes!',
    });
  });

  it('leaves a guard marked @HttpOnlyGuard() out of tool calls, and runs it for HTTP', async () => {
    const http = app.get(HttpGuard);
    const before = http.calls;

    await call('plain', 'hello');
    expect(http.calls).toBe(before);

    const response = await fetch(`${baseUrl}/probe`);
    expect(response.status).toBe(200);
    expect(http.calls).toBe(before + 1);
    expect(http.types.at(-1)).toBe('http');
  });

  it('runs an extension of a marked guard, which is not marked itself', async () => {
    const extended = app.get(HttpGuardExtended);
    const before = extended.calls;

    await call('plain', 'hello');
    expect(extended.calls).toBe(before + 1);
  });

  it('chains promises when every interceptor has a promise form', async () => {
    await call('plain', 'hello');
    expect(trace).toContain('both: promise');
    expect(trace).not.toContain('both: observable');
  });

  it("falls back to Nest's Observable chain for an interceptor without one, in Nest's order", async () => {
    await expect(call('observed', 'hello')).resolves.toEqual({
      data: { word: 'hello' },
      text: 'hello (observed)!',
    });
    // The global interceptor outside the method's, both around the method.
    expect(trace.slice(-4)).toEqual([
      'both: observable',
      'observable in',
      'observed',
      'observable out',
    ]);
  });
});
